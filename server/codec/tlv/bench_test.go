package tlv

import (
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

func BenchmarkEncodeDevice(b *testing.B) {
	recs := codectest.Device()
	base := lwm2m.NewPath(3, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(base, recs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeDevice(b *testing.B) {
	base := lwm2m.NewPath(3, 0)
	data, err := Encode(base, codectest.Device())
	if err != nil {
		b.Fatal(err)
	}
	m := codectest.NewModel()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(base, data, m); err != nil {
			b.Fatal(err)
		}
	}
}
