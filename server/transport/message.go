package transport

import (
	"fmt"
	"net/netip"
)

// Code is a CoAP request method or response code (class.detail packed as class<<5 | detail).
type Code uint8

// The codes lwota uses (RFC 7252 §12.1, RFC 7959, RFC 8132).
const (
	GET    Code = 1
	POST   Code = 2
	PUT    Code = 3
	DELETE Code = 4
	FETCH  Code = 5
	IPATCH Code = 7

	Created                  Code = 2<<5 | 1
	Deleted                  Code = 2<<5 | 2
	Valid                    Code = 2<<5 | 3
	Changed                  Code = 2<<5 | 4
	Content                  Code = 2<<5 | 5
	Continue                 Code = 2<<5 | 31
	BadRequest               Code = 4 << 5 // 4.00
	Unauthorized             Code = 4<<5 | 1
	BadOption                Code = 4<<5 | 2
	Forbidden                Code = 4<<5 | 3
	NotFound                 Code = 4<<5 | 4
	MethodNotAllowed         Code = 4<<5 | 5
	NotAcceptable            Code = 4<<5 | 6
	RequestEntityIncomplete  Code = 4<<5 | 8
	PreconditionFailed       Code = 4<<5 | 12
	RequestEntityTooLarge    Code = 4<<5 | 13
	UnsupportedContentFormat Code = 4<<5 | 15
	TooManyRequests          Code = 4<<5 | 29
	InternalServerError      Code = 5 << 5 // 5.00
	NotImplemented           Code = 5<<5 | 1
	ServiceUnavailable       Code = 5<<5 | 3
)

// IsRequest reports whether c is a method code (class 0, non-empty).
func (c Code) IsRequest() bool { return c != 0 && c>>5 == 0 }

// IsSuccess reports a 2.xx response.
func (c Code) IsSuccess() bool { return c>>5 == 2 }

// String renders "2.05"; methods render by name.
func (c Code) String() string {
	switch c {
	case GET:
		return "GET"
	case POST:
		return "POST"
	case PUT:
		return "PUT"
	case DELETE:
		return "DELETE"
	case FETCH:
		return "FETCH"
	case IPATCH:
		return "iPATCH"
	}
	return fmt.Sprintf("%d.%02d", c>>5, c&0x1f)
}

// Block is a Block1 or Block2 option value (RFC 7959 §2.2).
type Block struct {
	Set  bool   // the option is present
	Num  uint32 // block number
	More bool   // more blocks follow
	SZX  uint8  // size exponent: size = 16 << SZX, 0..6
}

// Size is the block size in bytes.
func (b Block) Size() int { return 16 << b.SZX }

// SZXFor returns the largest SZX whose size does not exceed n (n >= 16).
func SZXFor(n int) uint8 {
	var szx uint8
	for szx < 6 && 16<<(szx+1) <= n {
		szx++
	}
	return szx
}

// Message is a CoAP request or response as the LwM2M layers see it: the options lwota uses,
// already parsed. The transport owns message types, message ids, retransmission and deduplication,
// so none of that is here. Integer options that are absent are -1.
type Message struct {
	Code          Code
	Token         []byte
	Path          string   // Uri-Path segments joined, with a leading "/" ("/rd/abc"); "" when absent
	Query         []string // Uri-Query values ("ep=dev1", "lt=300", "Q")
	LocationPath  []string // Location-Path segments of a response ("rd", "abc")
	ContentFormat int      // Content-Format, -1 when absent
	Accept        int      // Accept, -1 when absent
	Observe       int64    // Observe, -1 when absent
	Block1        Block
	Block2        Block
	Size1         int64 // -1 when absent
	Size2         int64 // -1 when absent
	ETag          []byte
	// MaxAge is the Max-Age option of a response in seconds; 0 leaves it out (a response
	// that must not be cached is never sent by lwota).
	MaxAge  uint32
	Payload []byte
	// Sent, on a handler's response, is called once the response has been written (or was
	// not written: a NON answer that could not be rendered), so that work which must follow the
	// answer on the wire (the Bootstrap Server's first request after 2.04) starts only then.
	Sent func()
}

// NewMessage returns a message with code c and every integer option marked absent.
func NewMessage(c Code) *Message {
	return &Message{Code: c, ContentFormat: -1, Accept: -1, Observe: -1, Size1: -1, Size2: -1}
}

// Network names the link a peer speaks over.
type Network string

// The networks lwota listens on.
const (
	UDP  Network = "udp"
	DTLS Network = "dtls"
)

// Addr is where a peer is reached: its network and its address. It is comparable and small,
// so registrations can keep it without holding a transport session.
type Addr struct {
	Network  Network
	AddrPort netip.AddrPort
}

func (a Addr) String() string { return string(a.Network) + "://" + a.AddrPort.String() }

// Peer is the sender of a message as the transport authenticated it.
type Peer struct {
	Addr Addr
	// Identity is the DTLS PSK identity or certificate subject; empty for NoSec UDP.
	Identity string
}
