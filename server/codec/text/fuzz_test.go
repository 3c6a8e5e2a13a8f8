package text

import (
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

// FuzzDecode reads arbitrary text as every data type: no panics, and whatever decodes
// must encode and decode back to the same value.
func FuzzDecode(f *testing.F) {
	m := codectest.NewModel()
	f.Fuzz(func(t *testing.T, data []byte) {
		for res := uint16(0); res <= 9; res++ {
			p := lwm2m.NewPath(codectest.AllTypesObject, 0, res)
			recs, err := Decode(p, data, m)
			if err != nil {
				continue
			}
			enc, err := Encode(p, recs)
			if err != nil {
				t.Fatalf("%s: re-encode %s: %v", p, recs[0].Value, err)
			}
			again, err := Decode(p, enc, m)
			if err != nil {
				t.Fatalf("%s: decode of re-encoded %q: %v", p, enc, err)
			}
			if d := codectest.Diff(again, recs); d != "" {
				t.Fatalf("%s: round trip differs:\n%s", p, d)
			}
		}
	})
}
