package codec_test

import (
	"errors"
	"testing"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

// Decode(Encode(x)) == x for every type, in every format that can carry it.
func TestRoundTripEveryFormat(t *testing.T) {
	m := codectest.NewModel()
	multi := []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR}
	sets := []struct {
		name string
		base lwm2m.Path
		recs []lwm2m.Record
	}{
		{"device instance", lwm2m.NewPath(3, 0), codectest.Device()},
		{"device object", lwm2m.NewPath(3), codectest.Device()},
		{"all types instance", lwm2m.NewPath(codectest.AllTypesObject, 1), codectest.AllTypes()},
		{"multiple resource", lwm2m.NewPath(3, 0, 7), codectest.Device()[6:8]},
	}
	for _, f := range multi {
		for _, s := range sets {
			t.Run(f.Name()+"/"+s.name, func(t *testing.T) {
				checkRoundTrip(t, f, s.base, s.recs, m)
			})
		}
	}
	single := []lwm2m.ContentFormat{lwm2m.FormatText, lwm2m.FormatCBOR, lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR}
	for _, f := range single {
		for _, rec := range codectest.AllTypes() {
			t.Run(f.Name()+"/"+rec.Value.Type.String(), func(t *testing.T) {
				checkRoundTrip(t, f, rec.Path, []lwm2m.Record{rec}, m)
			})
		}
	}
	opaque := codectest.AllTypes()[5]
	checkRoundTrip(t, lwm2m.FormatOpaque, opaque.Path, []lwm2m.Record{opaque}, m)
}

func checkRoundTrip(t *testing.T, f lwm2m.ContentFormat, base lwm2m.Path, recs []lwm2m.Record, r codec.Resolver) {
	t.Helper()
	enc, err := codec.Encode(f, base, recs)
	if err != nil {
		t.Fatalf("%s Encode: %v", f.Name(), err)
	}
	got, err := codec.Decode(f, base, enc, r)
	if err != nil {
		t.Fatalf("%s Decode: %v", f.Name(), err)
	}
	if d := codectest.Diff(got, recs); d != "" {
		t.Fatalf("%s round trip:\n%s", f.Name(), d)
	}
}

// Without a model, TLV gives opaque bytes and plain text gives strings.
func TestDecodeWithoutModel(t *testing.T) {
	p := lwm2m.NewPath(3, 0, 9)
	tests := []struct {
		f    lwm2m.ContentFormat
		data string
		want lwm2m.Value
	}{
		{lwm2m.FormatTLV, "\xC1\x09\x64", lwm2m.Opaque([]byte{0x64})},
		{lwm2m.FormatText, "100", lwm2m.String("100")},
		{lwm2m.FormatSenMLJSON, `[{"bn":"/3/0/9","v":100}]`, lwm2m.Integer(100)},
	}
	for _, tc := range tests {
		got, err := codec.Decode(tc.f, p, []byte(tc.data), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.f.Name(), err)
		}
		if d := codectest.Diff(got, []lwm2m.Record{{Path: p, Value: tc.want}}); d != "" {
			t.Errorf("%s:\n%s", tc.f.Name(), d)
		}
	}
}

func TestUnsupportedFormat(t *testing.T) {
	for _, f := range []lwm2m.ContentFormat{lwm2m.FormatLinkFormat, lwm2m.FormatJSONOld, 9999} {
		if _, err := codec.Decode(f, lwm2m.NewPath(3, 0), nil, nil); !errors.Is(err, codec.ErrUnsupportedFormat) {
			t.Errorf("Decode %d: %v", f, err)
		}
		if _, err := codec.Encode(f, lwm2m.NewPath(3, 0), nil); !errors.Is(err, codec.ErrUnsupportedFormat) {
			t.Errorf("Encode %d: %v", f, err)
		}
	}
}
