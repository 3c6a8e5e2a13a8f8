package transport

import (
	"fmt"
	"slices"
	"testing"
)

// A firmware block request (GET /fw/{50-character token} with Block2 and an 8-byte token) is
// decoded with four allocations: the Message, the token's copy, the path string and go-coap's
// option slice (which its decoder makes escape). The path is assembled in a buffer on the
// stack; before, growing it on the heap was one more per block served.
func TestDecodeBlockRequestAllocations(t *testing.T) {
	m := req(GET, "/fw/AWtJ4BBqb2IxlRG7vFYaT1hFG8SHBdBTRgAWtJ4BBqb2IxlRG7vF", 1, 2, 3, 4, 5, 6, 7, 8)
	m.Block2 = Block{Set: true, Num: 5, SZX: 6}
	d := datagram(t, typeCON, 7, m)
	f, err := decode(d)
	if err != nil || f.msg.Path != m.Path || string(f.msg.Token) != string(m.Token) || f.msg.Block2.Num != 5 {
		t.Fatalf("decode: %+v, %v", f.msg, err)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = decode(d) }); n > 4 {
		t.Errorf("decode of a block request: %.0f allocations, want at most 4", n)
	}
}

// A datagram with more options than decode's first buffer holds is decoded again with room for
// them all: none is lost.
func TestDecodeManyOptions(t *testing.T) {
	for _, n := range []int{15, 16, 17, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := req(POST, "/rd")
			for i := range n {
				m.Query = append(m.Query, fmt.Sprintf("q%d=%d", i, i))
			}
			f, err := decode(datagram(t, typeCON, 1, m))
			if err != nil || f.reject != 0 {
				t.Fatalf("decode: %v, reject %v", err, f.reject)
			}
			if !slices.Equal(f.msg.Query, m.Query) || f.msg.Path != "/rd" {
				t.Fatalf("path %q, query %q, want /rd and %q", f.msg.Path, f.msg.Query, m.Query)
			}
		})
	}
}
