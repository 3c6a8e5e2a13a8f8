package tlv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

// deviceTLV is the Device object instance example of LwM2M Core §7.4.3 (1.0: §6.4.3.1).
const deviceTLV = `
C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
C8 02 09 33 34 35 30 30 30 31 32 33
C3 03 31 2E 30
86 06 41 00 01 41 01 05
88 07 08 42 00 0E D8 42 01 13 88
87 08 41 00 7D 42 01 03 84
C1 09 64
C1 0A 0F
83 0B 41 00 00
C4 0D 51 82 42 8F
C6 0E 2B 30 32 3A 30 30
C1 10 55`

// accessControlTLV is the multiple object instance example (Object 2, two instances,
// one resource instance with a 16-bit identifier) of the same clause.
const accessControlTLV = `
08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F
08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F`

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

func path(s string) lwm2m.Path { return lwm2m.MustParsePath(s) }

func TestCore_7_4_3_DeviceInstance(t *testing.T) {
	data := unhex(t, deviceTLV)
	got, err := Decode(path("/3/0"), data, codectest.NewModel())
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d := codectest.Diff(got, codectest.Device()); d != "" {
		t.Fatalf("Decode:\n%s", d)
	}
	enc, err := Encode(path("/3/0"), codectest.Device())
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("Encode:\n got %X\nwant %X", enc, data)
	}
}

func TestCore_7_4_3_MultipleObjectInstances(t *testing.T) {
	data := unhex(t, accessControlTLV)
	want := []lwm2m.Record{
		{Path: path("/2/0/0"), Value: lwm2m.Integer(1)},
		{Path: path("/2/0/1"), Value: lwm2m.Integer(0)},
		{Path: path("/2/0/2/127"), Value: lwm2m.Integer(7)},
		{Path: path("/2/0/3"), Value: lwm2m.Integer(127)},
		{Path: path("/2/2/0"), Value: lwm2m.Integer(3)},
		{Path: path("/2/2/1"), Value: lwm2m.Integer(0)},
		{Path: path("/2/2/2/127"), Value: lwm2m.Integer(7)},
		{Path: path("/2/2/2/310"), Value: lwm2m.Integer(1)},
		{Path: path("/2/2/3"), Value: lwm2m.Integer(127)},
	}
	got, err := Decode(path("/2"), data, codectest.NewModel())
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d := codectest.Diff(got, want); d != "" {
		t.Fatalf("Decode:\n%s", d)
	}
	enc, err := Encode(path("/2"), want)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("Encode:\n got %X\nwant %X", enc, data)
	}
}

// Every request depth answers with the TLV shape the spec gives it.
func TestCore_7_4_3_RequestDepths(t *testing.T) {
	m := codectest.NewModel()
	tests := []struct {
		name string
		base string
		hex  string
		want []lwm2m.Record
	}{
		{"resource", "/3/0/9", "C1 09 64", []lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(100)}}},
		{"multiple resource", "/3/0/6", "86 06 41 00 01 41 01 05", []lwm2m.Record{
			{Path: path("/3/0/6/0"), Value: lwm2m.Integer(1)}, {Path: path("/3/0/6/1"), Value: lwm2m.Integer(5)}}},
		{"resource instance", "/3/0/6/1", "41 01 05", []lwm2m.Record{{Path: path("/3/0/6/1"), Value: lwm2m.Integer(5)}}},
		{"object with one instance", "/3", "03 00 C1 09 64", []lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(100)}}},
		{"16-bit identifiers", "/3/0", "E1 01 2C 07", []lwm2m.Record{{Path: path("/3/0/300"), Value: lwm2m.Opaque([]byte{7})}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := unhex(t, tc.hex)
			got, err := Decode(path(tc.base), data, m)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := codectest.Diff(got, tc.want); d != "" {
				t.Fatalf("Decode:\n%s", d)
			}
			enc, err := Encode(path(tc.base), tc.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("Encode:\n got %X\nwant %X", enc, data)
			}
		})
	}
}

// Clients that wrap an instance's resources in the instance TLV are accepted.
func TestDecodeInstanceWrapped(t *testing.T) {
	got, err := Decode(path("/3/0"), unhex(t, "08 00 03 C1 09 64"), codectest.NewModel())
	if err != nil {
		t.Fatal(err)
	}
	if d := codectest.Diff(got, []lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(100)}}); d != "" {
		t.Fatal(d)
	}
}

// Core §7.4.3 lets lengths live in the type byte or in 8, 16 or 24 bits.
func TestCore_7_4_3_LengthTypes(t *testing.T) {
	for _, n := range []int{0, 7, 8, 255, 256, 65535, 65536, 70000} {
		val := bytes.Repeat([]byte{'x'}, n)
		recs := []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.String(string(val))}}
		enc, err := Encode(path("/3/0/0"), recs)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		var wantType byte
		switch {
		case n < 8:
			wantType = 0xC0 | byte(n)
		case n < 256:
			wantType = 0xC8
		case n < 65536:
			wantType = 0xD0
		default:
			wantType = 0xD8
		}
		if enc[0] != wantType {
			t.Errorf("%d bytes: type byte %02X, want %02X", n, enc[0], wantType)
		}
		got, err := Decode(path("/3/0/0"), enc, codectest.NewModel())
		if err != nil || codectest.Diff(got, recs) != "" {
			t.Errorf("%d bytes: round trip failed: %v", n, err)
		}
	}
	if _, err := Encode(path("/3/0/0"), []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.Opaque(make([]byte, 1<<24))}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("16 MiB value: err %v, want ErrTooLarge", err)
	}
}

// Appendix C: integers 1/2/4/8 bytes, floats 4/8, booleans one byte, objlnk 4 bytes.
func TestCore_AppendixC_ValueEncodings(t *testing.T) {
	o := uint16(codectest.AllTypesObject)
	tests := []struct {
		name string
		res  uint16
		v    lwm2m.Value
		hex  string
	}{
		{"integer 1 byte", 1, lwm2m.Integer(-128), "80"},
		{"integer 2 bytes", 1, lwm2m.Integer(128), "0080"},
		{"integer 4 bytes", 1, lwm2m.Integer(-32769), "FFFF7FFF"},
		{"integer 8 bytes", 1, lwm2m.Integer(1 << 31), "0000000080000000"},
		{"unsigned 1 byte", 2, lwm2m.Unsigned(255), "FF"},
		{"unsigned 2 bytes", 2, lwm2m.Unsigned(256), "0100"},
		{"unsigned 8 bytes", 2, lwm2m.Unsigned(1<<64 - 1), "FFFFFFFFFFFFFFFF"},
		{"float 4 bytes", 3, lwm2m.Float(1.5), "3FC00000"},
		{"float 8 bytes", 3, lwm2m.Float(0.1), "3FB999999999999A"},
		{"boolean", 4, lwm2m.Boolean(true), "01"},
		{"opaque", 5, lwm2m.Opaque([]byte{0xde, 0xad}), "DEAD"},
		{"time", 6, lwm2m.Value{Type: lwm2m.TypeTime, Int: 1367491215}, "5182428F"},
		{"objlnk", 7, lwm2m.Objlnk(3, 65535), "0003FFFF"},
		{"string", 0, lwm2m.String("ok"), "6F6B"},
		{"corelnk", 8, lwm2m.Corelnk("</3>"), "3C2F333E"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := lwm2m.NewPath(o, 0, tc.res)
			enc, err := encodeValue(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ToUpper(hex.EncodeToString(enc)); got != tc.hex {
				t.Fatalf("encode: %s, want %s", got, tc.hex)
			}
			v, err := decodeValue(p, enc, codectest.NewModel())
			if err != nil {
				t.Fatal(err)
			}
			if !v.Equal(tc.v) {
				t.Fatalf("decode: %s, want %s", v, tc.v)
			}
		})
	}
}

// Without a model (or for a resource it does not know) TLV values stay opaque bytes.
func TestDecodeUntyped(t *testing.T) {
	got, err := Decode(path("/3/0/9"), unhex(t, "C1 09 64"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Opaque([]byte{0x64})}}
	if d := codectest.Diff(got, want); d != "" {
		t.Fatal(d)
	}
}

func TestRoundTripAllTypes(t *testing.T) {
	recs := codectest.AllTypes()
	base := lwm2m.NewPath(codectest.AllTypesObject)
	enc, err := Encode(base, recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(base, enc, codectest.NewModel())
	if err != nil {
		t.Fatal(err)
	}
	if d := codectest.Diff(got, recs); d != "" {
		t.Fatal(d)
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
		{"root base", "/", "C1 09 64", ErrBadBase},
		{"header cut after type", "/3/0", "C1", ErrTruncated},
		{"16-bit id cut", "/3/0", "E1 01", ErrTruncated},
		{"length field cut", "/3/0", "C8 00", ErrTruncated},
		{"24-bit length field cut", "/3/0", "D8 00 00 01", ErrTruncated},
		{"value past end", "/3/0", "C4 09 64", ErrTruncated},
		{"nested value past end", "/3", "08 00 04 C1 09 64", ErrTruncated},
		{"inner length past outer", "/3", "08 00 03 C2 09 64 65", ErrTruncated},
		{"id 65535", "/3/0", "E1 FF FF 64", ErrInvalidID},
		{"resource instance in instance", "/3/0", "41 00 01", ErrNesting},
		{"object instance in instance", "/3/0", "08 00 03 C1 09 64 08 01 00", ErrNesting},
		{"resource under object", "/3", "C1 09 64", ErrNesting},
		{"resource inside multiple", "/3/0", "86 06 C1 00 01 41 01 05", ErrNesting},
		{"instance id mismatch", "/3/0", "08 01 03 C1 09 64", ErrBadBase},
		{"resource id mismatch", "/3/0/9", "C1 0A 64", ErrBadBase},
		{"resource instance id mismatch", "/3/0/6/1", "41 00 05", ErrBadBase},
		{"duplicate resource", "/3/0", "C1 09 64 C1 09 64", ErrDuplicate},
		{"integer of 3 bytes", "/3/0/9", "C3 09 00 00 01", ErrBadValue},
		{"empty integer", "/3/0/9", "C0 09", ErrBadValue},
		{"boolean 2", "/32769/0/4", "C1 04 02", ErrBadValue},
		{"float of 2 bytes", "/32769/0/3", "C2 03 00 00", ErrBadValue},
		{"objlnk of 3 bytes", "/32769/0/7", "C3 07 00 00 00", ErrBadValue},
		{"string not UTF-8", "/3/0/0", "C2 00 C3 28", ErrBadValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(path(tc.base), unhex(t, tc.hex), m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "tlv: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeTooManyRecords(t *testing.T) {
	var data []byte
	for i := 0; i <= 10000; i++ {
		data = append(data, 0x61, byte(i>>8), byte(i), 0x00)
	}
	if _, err := Decode(path("/3/0/6"), data, nil); !errors.Is(err, ErrTooMany) {
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
		{"root base", "/", codectest.Device(), ErrBadBase},
		{"outside base", "/3/1", codectest.Device(), ErrNotUnderBase},
		{"instance record", "/3", []lwm2m.Record{{Path: path("/3/0"), Value: lwm2m.Integer(1)}}, ErrNotUnderBase},
		{"no value", "/3/0", []lwm2m.Record{{Path: path("/3/0/4")}}, ErrNoValue},
		{"single and multiple", "/3/0", []lwm2m.Record{
			{Path: path("/3/0/6"), Value: lwm2m.Integer(1)}, {Path: path("/3/0/6/0"), Value: lwm2m.Integer(1)}}, ErrMixed},
		{"duplicate", "/3/0", []lwm2m.Record{
			{Path: path("/3/0/9"), Value: lwm2m.Integer(1)}, {Path: path("/3/0/9"), Value: lwm2m.Integer(1)}}, ErrDuplicate},
		{"two for a resource instance", "/3/0/6/0", []lwm2m.Record{
			{Path: path("/3/0/6/0"), Value: lwm2m.Integer(1)}, {Path: path("/3/0/6/0/"), Value: lwm2m.Integer(2)}}, ErrDuplicate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Encode(path(tc.base), tc.recs); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
