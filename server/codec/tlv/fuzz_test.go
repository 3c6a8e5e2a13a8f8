package tlv

import (
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

// FuzzDecode feeds arbitrary bytes to every request depth: no panics, and whatever
// decodes must encode and decode back to the same records.
func FuzzDecode(f *testing.F) {
	m := codectest.NewModel()
	bases := []lwm2m.Path{
		lwm2m.NewPath(3), lwm2m.NewPath(3, 0), lwm2m.NewPath(3, 0, 6), lwm2m.NewPath(3, 0, 6, 1),
		lwm2m.NewPath(codectest.AllTypesObject, 0), lwm2m.NewPath(2),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, base := range bases {
			for _, r := range []Resolver{m, nil} {
				recs, err := Decode(base, data, r)
				if err != nil || len(recs) == 0 {
					continue
				}
				enc, err := Encode(base, recs)
				if err != nil {
					t.Fatalf("base %s: re-encode of %d records: %v", base, len(recs), err)
				}
				again, err := Decode(base, enc, r)
				if err != nil {
					t.Fatalf("base %s: decode of re-encoded %X: %v", base, enc, err)
				}
				if d := codectest.Diff(again, recs); d != "" {
					t.Fatalf("base %s: round trip differs:\n%s", base, d)
				}
			}
		}
	})
}
