package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/tcp/coder"

	"github.com/lwota/lwota/server/transport"
)

// Signal codes of RFC 8323 §5 (class 7).
const (
	codeCSM     = transport.Code(codes.CSM)     // 7.01
	codePing    = transport.Code(codes.Ping)    // 7.02
	codePong    = transport.Code(codes.Pong)    // 7.03
	codeRelease = transport.Code(codes.Release) // 7.04
	codeAbort   = transport.Code(codes.Abort)   // 7.05
)

// Options of the CSM signal (RFC 8323 §5.3).
const (
	optMaxMessageSize    = message.TCPMaxMessageSize    // 2
	optBlockWiseTransfer = message.TCPBlockWiseTransfer // 4
)

// BaseMaxMessageSize is the Max-Message-Size a peer is held to until its CSM says otherwise
// (RFC 8323 §5.3.1).
const BaseMaxMessageSize = 1152

var (
	// ErrFrame is a frame that does not decode: a reserved token length, options that do not
	// parse, a length beyond the limit.
	ErrFrame = errors.New("tcp: malformed frame")
	// ErrFrameTooLarge is a frame longer than the Max-Message-Size lwota announced.
	ErrFrameTooLarge = errors.New("tcp: frame exceeds Max-Message-Size")
	// ErrBadCSM is a CSM carrying an option lwota must understand and does not, or a bad value.
	ErrBadCSM = errors.New("tcp: bad CSM")
)

// frame is one CoAP-over-TCP message: a request, a response or a signal.
type frame struct {
	code    transport.Code
	token   []byte
	opts    message.Options // signal options for class 7, CoAP options otherwise
	payload []byte
}

func (f frame) signal() bool { return f.code>>5 == 7 }

// readFrame reads one frame of at most max bytes (header included) from r. The frame owns its
// memory.
func readFrame(r *bufio.Reader, max uint32) (frame, error) {
	// The header is at most 1 (len/tkl) + 4 (extended length) + 1 (code) + 8 (token) bytes.
	head, err := r.Peek(1)
	if err != nil {
		return frame{}, err
	}
	extra := 0
	switch head[0] >> 4 {
	case 13:
		extra = 1
	case 14:
		extra = 2
	case 15:
		extra = 4
	}
	tkl := int(head[0] & 0x0f)
	if tkl > 8 {
		return frame{}, fmt.Errorf("%w: token length %d", ErrFrame, tkl)
	}
	hdrLen := 1 + extra + 1 + tkl
	hb, err := r.Peek(hdrLen)
	if err != nil {
		return frame{}, unexpected(err)
	}
	var h coder.MessageHeader
	if _, err := coder.DefaultCoder.DecodeHeader(hb, &h); err != nil {
		if errors.Is(err, coder.ErrMessageTooLong) {
			return frame{}, ErrFrameTooLarge
		}
		return frame{}, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	if h.MessageLength > max {
		return frame{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, h.MessageLength, max)
	}
	buf := make([]byte, h.MessageLength)
	if _, err := io.ReadFull(r, buf); err != nil {
		return frame{}, unexpected(err)
	}
	m := message.Message{Options: make(message.Options, 0, 8)}
	_, err = coder.DefaultCoder.Decode(buf, &m)
	if errors.Is(err, message.ErrOptionsTooSmall) {
		m = message.Message{Options: make(message.Options, 0, len(buf))}
		_, err = coder.DefaultCoder.Decode(buf, &m)
	}
	if err != nil {
		return frame{}, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	// Options and payload alias buf, which this frame owns alone.
	return frame{code: transport.Code(m.Code), token: m.Token, opts: m.Options, payload: m.Payload}, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// encodeFrame renders a frame.
func encodeFrame(f frame) ([]byte, error) {
	m := message.Message{Code: codes.Code(f.code), Token: f.token, Options: f.opts, Payload: f.payload}
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		return nil, err
	}
	return b, nil
}

// csm is what a peer's Capabilities and Settings Message said.
type csm struct {
	maxMessageSize uint32
	blockWise      bool
}

// parseCSM reads the options of a CSM (RFC 8323 §5.3). An unknown critical option makes the
// CSM bad: the receiver must abort the connection (§5.3); unknown elective ones are ignored.
func parseCSM(opts message.Options) (csm, error) {
	c := csm{maxMessageSize: BaseMaxMessageSize}
	for _, o := range opts {
		switch o.ID {
		case optMaxMessageSize:
			if len(o.Value) > 4 {
				return c, fmt.Errorf("%w: Max-Message-Size of %d bytes", ErrBadCSM, len(o.Value))
			}
			var v uint32
			for _, b := range o.Value {
				v = v<<8 | uint32(b)
			}
			c.maxMessageSize = v
		case optBlockWiseTransfer:
			if len(o.Value) != 0 {
				return c, fmt.Errorf("%w: Block-Wise-Transfer carries a value", ErrBadCSM)
			}
			c.blockWise = true
		default:
			if o.ID&1 == 1 {
				return c, fmt.Errorf("%w: unknown critical option %d", ErrBadCSM, o.ID)
			}
		}
	}
	return c, nil
}

// csmFrame is lwota's own CSM: the largest frame it takes, and that it speaks block-wise.
func csmFrame(maxMessageSize uint32) frame {
	v := make([]byte, 4)
	n, _ := message.EncodeUint32(v, maxMessageSize)
	return frame{code: codeCSM, opts: message.Options{
		{ID: optMaxMessageSize, Value: v[:n]},
		{ID: optBlockWiseTransfer},
	}}
}
