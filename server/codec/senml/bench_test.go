package senml

import (
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

func benchEncode(b *testing.B, encode func(lwm2m.Path, []lwm2m.Record) ([]byte, error)) {
	recs := codectest.Device()
	base := lwm2m.NewPath(3, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encode(base, recs); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecode(b *testing.B, encode func(lwm2m.Path, []lwm2m.Record) ([]byte, error),
	decode func(lwm2m.Path, []byte, Resolver) ([]lwm2m.Record, error)) {
	base := lwm2m.NewPath(3, 0)
	data, err := encode(base, codectest.Device())
	if err != nil {
		b.Fatal(err)
	}
	m := codectest.NewModel()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(base, data, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDeviceJSON(b *testing.B) { benchEncode(b, EncodeJSON) }
func BenchmarkEncodeDeviceCBOR(b *testing.B) { benchEncode(b, EncodeCBOR) }
func BenchmarkDecodeDeviceJSON(b *testing.B) { benchDecode(b, EncodeJSON, DecodeJSON) }
func BenchmarkDecodeDeviceCBOR(b *testing.B) { benchDecode(b, EncodeCBOR, DecodeCBOR) }
