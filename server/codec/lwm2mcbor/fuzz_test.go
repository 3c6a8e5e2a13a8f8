package lwm2mcbor

import (
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

// FuzzDecode: no panics, and whatever decodes must encode and decode back to the same
// records, with and without the model.
func FuzzDecode(f *testing.F) {
	m := codectest.NewModel()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range []Resolver{m, nil} {
			recs, err := Decode(lwm2m.RootPath, data, r)
			if err != nil {
				continue
			}
			enc, err := Encode(lwm2m.RootPath, recs)
			if err != nil {
				t.Fatalf("re-encode of %d records: %v", len(recs), err)
			}
			again, err := Decode(lwm2m.RootPath, enc, r)
			if err != nil {
				t.Fatalf("decode of re-encoded %X: %v", enc, err)
			}
			if d := codectest.Diff(again, recs); d != "" {
				t.Fatalf("round trip differs:\n%s", d)
			}
		}
	})
}
