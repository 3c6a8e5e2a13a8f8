package senml

import (
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

// The two decoders get one target each (Go allows one corpus per target name):
// testdata/fuzz/FuzzDecodeJSON and testdata/fuzz/FuzzDecodeCBOR.

func FuzzDecodeJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeJSON, EncodeJSON)
	})
}

func FuzzDecodeCBOR(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, DecodeCBOR, EncodeCBOR)
	})
}

// roundTrip asserts that whatever decodes (with and without the model) encodes and
// decodes back to the same records; decoding must never panic.
func roundTrip(t *testing.T, data []byte,
	decode func(lwm2m.Path, []byte, Resolver) ([]lwm2m.Record, error),
	encode func(lwm2m.Path, []lwm2m.Record) ([]byte, error)) {
	t.Helper()
	for _, r := range []Resolver{codectest.NewModel(), nil} {
		recs, err := decode(lwm2m.RootPath, data, r)
		if err != nil {
			continue
		}
		enc, err := encode(lwm2m.RootPath, recs)
		if err != nil {
			t.Fatalf("re-encode of %d records: %v", len(recs), err)
		}
		again, err := decode(lwm2m.RootPath, enc, r)
		if err != nil {
			t.Fatalf("decode of re-encoded %q: %v", enc, err)
		}
		if d := codectest.Diff(again, recs); d != "" {
			t.Fatalf("round trip differs:\n%s\nre-encoded: %q", d, enc)
		}
	}
}
