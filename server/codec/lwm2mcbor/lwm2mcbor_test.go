package lwm2mcbor

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

func path(s string) lwm2m.Path { return lwm2m.MustParsePath(s) }

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

// LwM2M 1.2 Core §7.4.6: the same resource /13/26/1 = 42 written with every allowed
// mix of nested maps, array keys and indefinite lengths decodes to one record.
func TestCore_7_4_6_PathForms(t *testing.T) {
	tests := []struct{ name, hex string }{
		{"one array key {[13,26,1]: 42}", "A1 83 0D 18 1A 01 18 2A"},
		{"nested maps {13:{26:{1:42}}}", "A1 0D A1 18 1A A1 01 18 2A"},
		{"single-element arrays {[13]:{[26]:{[1]:42}}}", "A1 81 0D A1 81 18 1A A1 81 01 18 2A"},
		{"indefinite map and array", "BF 9F 0D 18 1A 01 FF 18 2A FF"},
		{"indefinite nested maps", "BF 0D BF 18 1A BF 01 18 2A FF FF FF"},
		{"split prefix {[13,26]:{1:42}}", "A1 82 0D 18 1A A1 01 18 2A"},
	}
	want := []lwm2m.Record{{Path: path("/13/26/1"), Value: lwm2m.Integer(42)}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(path("/13/26/1"), unhex(t, tc.hex), nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := codectest.Diff(got, want); d != "" {
				t.Fatal(d)
			}
		})
	}
	enc, err := Encode(path("/13/26/1"), want)
	if err != nil {
		t.Fatal(err)
	}
	if w := unhex(t, tests[0].hex); !bytes.Equal(enc, w) {
		t.Fatalf("Encode = %X, want %X (longest single key)", enc, w)
	}
}

// Two resources of one instance: shared prefix keys, full-path keys, and a mix.
func TestCore_7_4_6_TwoResources(t *testing.T) {
	want := []lwm2m.Record{
		{Path: path("/13/26/1"), Value: lwm2m.Integer(42)},
		{Path: path("/13/26/2"), Value: lwm2m.Integer(21)},
	}
	for name, h := range map[string]string{
		"{[13,26]: {1: 42, 2: 21}}":           "A1 82 0D 18 1A A2 01 18 2A 02 15",
		"{[13,26,1]: 42, [13,26,2]: 21}":      "A2 83 0D 18 1A 01 18 2A 83 0D 18 1A 02 15",
		"{[13,26]: {1: 42}, [13,26,2]: 21}":   "A2 82 0D 18 1A A1 01 18 2A 83 0D 18 1A 02 15",
		"{[13,26,1]: 42, [13,26]: {[2]: 21}}": "A2 83 0D 18 1A 01 18 2A 82 0D 18 1A A1 81 02 15",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(path("/13/26"), unhex(t, h), nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := codectest.Diff(got, want); d != "" {
				t.Fatal(d)
			}
		})
	}
	enc, err := Encode(path("/13/26"), want)
	if err != nil {
		t.Fatal(err)
	}
	if w := unhex(t, "A1 82 0D 18 1A A2 01 18 2A 02 15"); !bytes.Equal(enc, w) {
		t.Fatalf("Encode = %X, want %X", enc, w)
	}
}

// Encode folds every single-child chain into an array key and nests where paths fork.
func TestEncodeCompression(t *testing.T) {
	recs := []lwm2m.Record{
		{Path: path("/3/0/0"), Value: lwm2m.String("OMA")},
		{Path: path("/3/0/6/0"), Value: lwm2m.Integer(1)},
		{Path: path("/3/0/6/1"), Value: lwm2m.Integer(5)},
	}
	// {[3, 0]: {0: "OMA", 6: {0: 1, 1: 5}}}
	want := unhex(t, "A1 82 03 00 A2 00 63 4F 4D 41 06 A2 00 01 01 05")
	enc, err := Encode(path("/3/0"), recs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, want) {
		t.Fatalf("Encode = %X, want %X", enc, want)
	}
	// Two objects fork at the root: {3: ..., 5: ...} keep their own chains.
	recs = append(recs, lwm2m.Record{Path: path("/5/0/3"), Value: lwm2m.Integer(0)})
	enc, err = Encode(lwm2m.RootPath, recs)
	if err != nil {
		t.Fatal(err)
	}
	// {[3, 0]: {...}, [5, 0, 3]: 0}
	want = unhex(t, "A2 82 03 00 A2 00 63 4F 4D 41 06 A2 00 01 01 05 83 05 00 03 00")
	if !bytes.Equal(enc, want) {
		t.Fatalf("Encode = %X, want %X", enc, want)
	}
}

func TestRoundTrip(t *testing.T) {
	m := codectest.NewModel()
	sets := map[string]struct {
		base string
		recs []lwm2m.Record
	}{
		"device":    {"/3/0", codectest.Device()},
		"all types": {"/", codectest.AllTypes()},
		"instance":  {"/32769/1", codectest.AllTypes()},
		"null":      {"/3/0", []lwm2m.Record{{Path: path("/3/0/0")}}},
	}
	for name, s := range sets {
		t.Run(name, func(t *testing.T) {
			enc, err := Encode(path(s.base), s.recs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(path(s.base), enc, m)
			if err != nil {
				t.Fatal(err)
			}
			// Decode sorts by path; AllTypes and Device are already in path order.
			if d := codectest.Diff(got, s.recs); d != "" {
				t.Fatal(d)
			}
		})
	}
	// Self-describing kinds survive without a model; Time rides on tag 1.
	recs := []lwm2m.Record{
		{Path: path("/1/0/0"), Value: lwm2m.Integer(-5)},
		{Path: path("/1/0/1"), Value: lwm2m.Float(1.5)},
		{Path: path("/1/0/2"), Value: lwm2m.Boolean(false)},
		{Path: path("/1/0/3"), Value: lwm2m.Opaque([]byte{1})},
		{Path: path("/1/0/4"), Value: lwm2m.Time(time.Unix(1700000000, 0))},
		{Path: path("/1/0/5"), Value: lwm2m.Unsigned(1<<64 - 1)},
		{Path: path("/1/0/6"), Value: lwm2m.String("x")},
	}
	enc, err := Encode(lwm2m.RootPath, recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(lwm2m.RootPath, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := codectest.Diff(got, recs); d != "" {
		t.Fatal(d)
	}
}

// LwM2M 1.1 plain CBOR (60): one bare item for one resource.
func TestCore_7_4_6_PlainCBORSingle(t *testing.T) {
	m := codectest.NewModel()
	got, err := DecodeSingle(path("/3/0/13"), unhex(t, "1A 51 82 42 8F"), m)
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{{Path: path("/3/0/13"), Value: lwm2m.Time(time.Unix(1367491215, 0))}}
	if d := codectest.Diff(got, want); d != "" {
		t.Fatal(d)
	}
	enc, err := EncodeSingle(path("/3/0/13"), want)
	if err != nil {
		t.Fatal(err)
	}
	if w := unhex(t, "C1 1A 51 82 42 8F"); !bytes.Equal(enc, w) {
		t.Fatalf("EncodeSingle = %X, want %X", enc, w)
	}
	if _, err := DecodeSingle(path("/3/0"), enc, m); !errors.Is(err, ErrNotResource) {
		t.Fatalf("instance base: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	m := codectest.NewModel()
	tests := []struct {
		name string
		base string
		hex  string
		want error
	}{
		{"not CBOR", "/", "FF", ErrSyntax},
		{"top level array", "/", "80", ErrSyntax},
		{"trailing bytes", "/", "A0 00", ErrSyntax},
		{"text key", "/", "A1 61 33 01", ErrBadKey},
		{"negative key", "/", "A1 20 01", ErrBadKey},
		{"empty array key", "/", "A1 80 01", ErrBadKey},
		{"array key with text", "/", "A1 82 03 61 30 01", ErrBadKey},
		{"id 65535", "/", "A1 83 03 00 19 FF FF 01", ErrBadKey},
		{"five ids in one key", "/", "A1 85 01 02 03 04 05 01", ErrTooDeep},
		{"five levels of maps", "/", "A1 01 A1 02 A1 03 A1 04 A1 05 01", ErrTooDeep},
		{"value on instance", "/", "A1 82 03 00 05", ErrNotResource},
		{"outside base", "/3/1", "A1 83 03 00 09 01", ErrNotUnderBase},
		{"duplicate through two forms", "/", "A2 83 03 00 09 01 03 A1 00 A1 09 02", ErrDuplicate},
		{"value and its instance", "/", "A2 83 03 00 06 01 84 03 00 06 00 02", ErrDuplicate},
		{"duplicate map key", "/", "A2 83 03 00 09 01 83 03 00 09 02", ErrSyntax},
		{"boolean for integer", "/", "A1 83 03 00 09 F5", ErrWrongKind},
		{"unknown tag", "/", "A1 83 03 00 09 D8 2A 01", ErrSyntax},
		{"array value", "/", "A1 83 03 00 09 80", ErrSyntax},
		{"bad objlnk text", "/", "A1 83 19 80 01 00 07 61 78", ErrWrongKind},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(path(tc.base), unhex(t, tc.hex), m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "lwm2mcbor: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeTooMany(t *testing.T) {
	recs := make([]lwm2m.Record, 0, 10001)
	for i := 0; i <= 10000; i++ {
		recs = append(recs, lwm2m.Record{Path: lwm2m.NewPath(3, 0, 6, uint16(i)), Value: lwm2m.Integer(1)})
	}
	enc, err := Encode(lwm2m.RootPath, recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(lwm2m.RootPath, enc, nil); !errors.Is(err, ErrTooMany) {
		t.Fatalf("err = %v, want ErrTooMany", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		base string
		recs []lwm2m.Record
		want error
	}{
		{"outside base", "/3/1", codectest.Device(), ErrNotUnderBase},
		{"instance record", "/", []lwm2m.Record{{Path: path("/3/0"), Value: lwm2m.Integer(1)}}, ErrNotResource},
		{"duplicate", "/", []lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(1)}, {Path: path("/3/0/9"), Value: lwm2m.Integer(1)}}, ErrDuplicate},
		{"value and instances", "/", []lwm2m.Record{{Path: path("/3/0/6"), Value: lwm2m.Integer(1)}, {Path: path("/3/0/6/0"), Value: lwm2m.Integer(1)}}, ErrDuplicate},
		{"invalid UTF-8", "/", []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.String("\xff")}}, ErrNotRepresentable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Encode(path(tc.base), tc.recs); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
