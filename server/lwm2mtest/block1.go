package lwm2mtest

import (
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// maxBlock1Body bounds a request body reassembled from Block1 blocks (the package has its own
// bound, MaxPackageSize, in push).
const maxBlock1Body = 1 << 20

// block1Body is a request body arriving in Block1 blocks (RFC 7959 §2.3), keyed by method and
// path: the server sends a write larger than the device takes in one message (over TCP, more
// than the base Max-Message-Size of 1152 bytes) block by block, each with a new token.
type block1Body struct {
	body []byte
}

// reassemble takes one block of a request that is not a package push; with d.mu held. It
// returns the answer to send now (2.31 Continue, or an error), or nil when r now holds the
// whole body.
func (d *Device) reassemble(r *request) *response {
	szx, num, more, err := blockwise.DecodeBlockOption(uint32(r.block1))
	if err != nil || szx > blockwise.SZX1024 {
		resp := errorResponse(errBadRequest)
		return &resp
	}
	key := codeString(r.code) + " " + r.path.String()
	b := d.block1[key]
	if num == 0 {
		b = &block1Body{}
		d.block1[key] = b
	}
	if b == nil || num*int64(blockSize(szx)) != int64(len(b.body)) || len(b.body)+len(r.body) > maxBlock1Body {
		delete(d.block1, key)
		return &response{code: codes.RequestEntityIncomplete, observe: -1}
	}
	b.body = append(b.body, r.body...)
	if more {
		return &response{code: codes.Continue, observe: -1,
			opts: []message.Option{uintOption(message.Block1, uint32(r.block1))}}
	}
	delete(d.block1, key)
	r.body, r.block1, r.size1 = b.body, -1, -1
	return nil
}
