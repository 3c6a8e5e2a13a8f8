package transport

import (
	"errors"
	"unsafe"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Message types of the UDP/DTLS message layer (RFC 7252 §3). They stay inside the transport.
const (
	typeCON uint8 = 0
	typeNON uint8 = 1
	typeACK uint8 = 2
	typeRST uint8 = 3
)

// proxyingNotSupported is 5.05, the answer to a request carrying Proxy-Uri or Proxy-Scheme.
const proxyingNotSupported Code = 5<<5 | 5

var errMalformed = errors.New("transport: malformed datagram")

// frame is one decoded datagram: the message layer fields plus, for non-empty messages, the
// request or response as the layers above see it.
type frame struct {
	typ uint8
	mid uint16
	// msg is nil for an Empty message (code 0.00).
	msg *Message
	// reject is non-zero when a request must be refused with this code without reaching the
	// handler: 4.02 for an unrecognised or invalid critical option (RFC 7252 §5.4.1, §5.4.3,
	// §5.4.5), 4.00 for a reserved block size (RFC 7959 §2.2), 5.05 for proxy options.
	reject Code
}

// decode parses one datagram with go-coap's UDP coder and converts it. The returned Message
// owns its memory: nothing in it aliases data.
func decode(data []byte) (frame, error) {
	var f frame
	if len(data) < 4 || data[0]>>6 != 1 {
		return f, errMalformed
	}
	f.typ = (data[0] >> 4) & 3
	f.mid = uint16(data[2])<<8 | uint16(data[3])
	code := Code(data[1])
	if code == 0 {
		// RFC 7252 §4.1: an Empty message is the 4-byte header alone.
		if len(data) != 4 {
			return f, errMalformed
		}
		return f, nil
	}
	switch code >> 5 {
	case 0, 2, 4, 5:
	default: // classes 1, 6, 7 are reserved
		return f, errMalformed
	}
	// go-coap's decoder makes the option slice escape: 16 options (512 bytes, on the heap) are
	// more than any LwM2M request carries, and a datagram with more is decoded again below.
	var optBuf [16]message.Option
	cm := message.Message{Options: optBuf[:0]}
	_, err := coder.DefaultCoder.Decode(data, &cm)
	if errors.Is(err, message.ErrOptionsTooSmall) {
		cm = message.Message{Options: make(message.Options, 0, len(data))}
		_, err = coder.DefaultCoder.Decode(data, &cm)
	}
	if err != nil {
		return f, errMalformed
	}
	m := NewMessage(code)
	f.msg = m
	if len(cm.Token) > 0 {
		m.Token = append([]byte(nil), cm.Token...)
	}
	if len(cm.Payload) > 0 {
		m.Payload = append([]byte(nil), cm.Payload...)
	}
	f.reject = convertOptions(cm.Options, m)
	return f, nil
}

// convertOptions fills m from opts and reports the code to reject a request with, if any.
func convertOptions(opts message.Options, m *Message) Code {
	var (
		reject   Code
		pathBuf  [128]byte // on the stack: a /fw/{token} path or a registration's fits, and only m.Path is allocated
		path     = pathBuf[:0]
		hasPath  bool
		seenOnce uint64 // bit per non-repeatable option id < 64 already seen
	)
	bad := func(c Code) {
		if reject == 0 {
			reject = c
		}
	}
	for _, o := range opts {
		id := o.ID
		critical := id&1 == 1
		if critical {
			if _, known := message.CoapOptionDefs[id]; known && !message.VerifyOptLen(id, len(o.Value)) {
				bad(BadOption) // §5.4.3: a critical option with a bad length is unrecognised
				continue
			}
		}
		if id < 64 && nonRepeatable(id) {
			if seenOnce&(1<<id) != 0 {
				if critical {
					bad(BadOption) // §5.4.5
				}
				continue // elective: keep the first occurrence
			}
			seenOnce |= 1 << id
		}
		switch id {
		case message.IfMatch, message.URIHost, message.IfNoneMatch, message.URIPort,
			message.MaxAge, message.LocationQuery, message.Echo, message.NoResponse, message.RequestTag:
			// understood, not used by lwota
		case message.ETag:
			m.ETag = append([]byte(nil), o.Value...)
		case message.Observe:
			m.Observe = int64(decodeUint(o.Value))
		case message.LocationPath:
			m.LocationPath = append(m.LocationPath, string(o.Value))
		case message.URIPath:
			hasPath = true
			path = append(path, '/')
			path = append(path, o.Value...)
		case message.ContentFormat:
			m.ContentFormat = int(decodeUint(o.Value))
		case message.URIQuery:
			m.Query = append(m.Query, string(o.Value))
		case message.Accept:
			m.Accept = int(decodeUint(o.Value))
		case message.Block1, message.Block2:
			b := decodeBlock(decodeUint(o.Value))
			if b.SZX == 7 {
				bad(BadRequest) // RFC 7959 §2.2: SZX 7 is reserved
				continue
			}
			if id == message.Block1 {
				m.Block1 = b
			} else {
				m.Block2 = b
			}
		case message.Size1:
			m.Size1 = int64(decodeUint(o.Value))
		case message.Size2:
			m.Size2 = int64(decodeUint(o.Value))
		case message.ProxyURI, message.ProxyScheme:
			bad(proxyingNotSupported)
		default:
			if critical { // includes Q-Block1/Q-Block2 (RFC 9177), which lwota does not speak
				bad(BadOption)
			}
		}
	}
	if hasPath {
		m.Path = string(path)
	}
	return reject
}

func nonRepeatable(id message.OptionID) bool {
	switch id {
	case message.URIHost, message.IfNoneMatch, message.Observe, message.URIPort, message.ContentFormat,
		message.MaxAge, message.Accept, message.Block2, message.Block1, message.Size2, message.Size1,
		message.ETag: // ETag repeats only in requests, and lwota uses one
		return true
	}
	return false
}

func decodeUint(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

func decodeBlock(v uint32) Block {
	return Block{Set: true, Num: v >> 4, More: v&8 != 0, SZX: uint8(v & 7)}
}

func encodeBlock(b Block) uint32 {
	v := b.Num<<4 | uint32(b.SZX&7)
	if b.More {
		v |= 8
	}
	return v
}

// emptyMessage returns the 4 bytes of an Empty ACK or RST for mid.
func emptyMessage(typ uint8, mid uint16) []byte {
	return []byte{1<<6 | typ<<4, 0, byte(mid >> 8), byte(mid)}
}

// encode renders m as a datagram of type typ with message id mid, appending to dst.
func encode(dst []byte, typ uint8, mid uint16, m *Message) ([]byte, error) {
	var (
		optBuf [24]message.Option
		uints  [40]byte
	)
	opts := appendOptions(optBuf[:0], &uints, m)
	size := 4 + len(m.Token) + 1 + len(m.Payload)
	for _, o := range opts {
		size += len(o.Value) + 5
	}
	cm := message.Message{
		Token:     m.Token,
		Options:   opts,
		Code:      codes.Code(m.Code),
		Payload:   m.Payload,
		MessageID: int32(mid),
		Type:      message.Type(typ),
	}
	start := len(dst)
	if cap(dst)-start < size {
		nd := make([]byte, start, start+size)
		copy(nd, dst)
		dst = nd
	}
	n, err := coder.DefaultCoder.Encode(cm, dst[start:start+size])
	if err != nil {
		return dst, err
	}
	return dst[:start+n], nil
}

// appendOptions appends m's options to opts in ascending id order, as the coders expect.
// Integer option values are written into uints and alias it.
func appendOptions(opts []message.Option, uints *[40]byte, m *Message) []message.Option {
	nu := 0
	addUint := func(id message.OptionID, v uint32) {
		n, _ := message.EncodeUint32(uints[nu:nu+4], v)
		opts = append(opts, message.Option{ID: id, Value: uints[nu : nu+n : nu+n]})
		nu += n
	}
	// Options in ascending id order, as the coder expects.
	if len(m.ETag) > 0 {
		opts = append(opts, message.Option{ID: message.ETag, Value: m.ETag})
	}
	if m.Observe >= 0 {
		addUint(message.Observe, uint32(m.Observe)&0xffffff)
	}
	for _, s := range m.LocationPath {
		opts = append(opts, message.Option{ID: message.LocationPath, Value: stringBytes(s)})
	}
	for p := m.Path; p != ""; {
		if p[0] == '/' {
			p = p[1:]
		}
		if p == "" {
			break
		}
		seg := p
		for i := 0; i < len(p); i++ {
			if p[i] == '/' {
				seg = p[:i]
				break
			}
		}
		opts = append(opts, message.Option{ID: message.URIPath, Value: stringBytes(seg)})
		p = p[len(seg):]
	}
	if m.ContentFormat >= 0 {
		addUint(message.ContentFormat, uint32(m.ContentFormat))
	}
	if m.MaxAge > 0 {
		addUint(message.MaxAge, m.MaxAge)
	}
	for _, q := range m.Query {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: stringBytes(q)})
	}
	if m.Accept >= 0 {
		addUint(message.Accept, uint32(m.Accept))
	}
	if m.Block2.Set {
		addUint(message.Block2, encodeBlock(m.Block2))
	}
	if m.Block1.Set {
		addUint(message.Block1, encodeBlock(m.Block1))
	}
	if m.Size2 >= 0 {
		addUint(message.Size2, uint32(m.Size2))
	}
	if m.Size1 >= 0 {
		addUint(message.Size1, uint32(m.Size1))
	}
	return opts
}

// stringBytes views s as bytes without copying; the coder only reads option values.
func stringBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
