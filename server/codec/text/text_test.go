package text

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

func path(s string) lwm2m.Path { return lwm2m.MustParsePath(s) }

// Core §7.4.1: a single resource as plain text, typed by the model.
func TestCore_7_4_1_PlainText(t *testing.T) {
	o := "/32769/0/"
	tests := []struct {
		name string
		path string
		text string
		want lwm2m.Value
	}{
		{"manufacturer string", "/3/0/0", "Open Mobile Alliance", lwm2m.String("Open Mobile Alliance")},
		{"integer", "/3/0/9", "100", lwm2m.Integer(100)},
		{"negative integer", o + "1", "-1099511627776", lwm2m.Integer(-1 << 40)},
		{"unsigned above int64", o + "2", "18446744073709551615", lwm2m.Unsigned(math.MaxUint64)},
		{"float", o + "3", "-0.1", lwm2m.Float(-0.1)},
		{"boolean 1", o + "4", "1", lwm2m.Boolean(true)},
		{"boolean 0", o + "4", "0", lwm2m.Boolean(false)},
		{"opaque as base64", o + "5", "AAH+/w==", lwm2m.Opaque([]byte{0, 1, 0xfe, 0xff})},
		{"time", "/3/0/13", "1367491215", lwm2m.Value{Type: lwm2m.TypeTime, Int: 1367491215}},
		{"objlnk", o + "7", "3:65535", lwm2m.Objlnk(3, 65535)},
		{"corelnk", o + "8", "</3/0>", lwm2m.Corelnk("</3/0>")},
		{"resource instance", "/3/0/7/1", "5000", lwm2m.Integer(5000)},
	}
	m := codectest.NewModel()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := path(tc.path)
			got, err := Decode(p, []byte(tc.text), m)
			if err != nil {
				t.Fatal(err)
			}
			want := []lwm2m.Record{{Path: p, Value: tc.want}}
			if d := codectest.Diff(got, want); d != "" {
				t.Fatal(d)
			}
			enc, err := Encode(p, want)
			if err != nil {
				t.Fatal(err)
			}
			if string(enc) != tc.text {
				t.Fatalf("Encode = %q, want %q", enc, tc.text)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	m := codectest.NewModel()
	for text, want := range map[string]lwm2m.Value{
		" 100\n": lwm2m.Integer(100),
	} {
		got, err := Decode(path("/3/0/9"), []byte(text), m)
		if err != nil || !got[0].Value.Equal(want) {
			t.Errorf("%q: %v %v", text, got, err)
		}
	}
	got, err := Decode(path("/32769/0/4"), []byte("true"), m)
	if err != nil || !got[0].Value.Equal(lwm2m.Boolean(true)) {
		t.Errorf("true: %v %v", got, err)
	}
	// Unknown resources and a nil model read as strings, kept byte for byte.
	got, err = Decode(path("/3/0/9"), []byte(" 100 "), nil)
	if err != nil || !got[0].Value.Equal(lwm2m.String(" 100 ")) {
		t.Errorf("untyped: %v %v", got, err)
	}
}

// Core §7.4.2: opaque carries the raw bytes of one resource.
func TestCore_7_4_2_Opaque(t *testing.T) {
	p := path("/5/0/0")
	data := []byte{0, 0xff, 'x'}
	got, err := DecodeOpaque(p, data)
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{{Path: p, Value: lwm2m.Opaque(data)}}
	if d := codectest.Diff(got, want); d != "" {
		t.Fatal(d)
	}
	enc, err := EncodeOpaque(p, want)
	if err != nil || !bytes.Equal(enc, data) {
		t.Fatalf("EncodeOpaque = %X, %v", enc, err)
	}
	if _, err := EncodeOpaque(p, []lwm2m.Record{{Path: p, Value: lwm2m.String("x")}}); !errors.Is(err, ErrNoValue) {
		t.Fatalf("string as opaque: %v", err)
	}
}

func TestErrors(t *testing.T) {
	m := codectest.NewModel()
	decode := []struct {
		name string
		path string
		text string
		want error
	}{
		{"object path", "/3", "x", ErrBadBase},
		{"instance path", "/3/0", "x", ErrBadBase},
		{"root", "/", "x", ErrBadBase},
		{"not an integer", "/3/0/9", "1.5", ErrBadValue},
		{"integer overflow", "/3/0/9", "9223372036854775808", ErrBadValue},
		{"negative unsigned", "/32769/0/2", "-1", ErrBadValue},
		{"boolean 2", "/32769/0/4", "2", ErrBadValue},
		{"bad base64", "/32769/0/5", "!!", ErrBadValue},
		{"objlnk without colon", "/32769/0/7", "3", ErrBadValue},
		{"objlnk id too big", "/32769/0/7", "3:65536", ErrBadValue},
		{"not UTF-8", "/3/0/0", "\xc3\x28", ErrBadValue},
	}
	for _, tc := range decode {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(path(tc.path), []byte(tc.text), m); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := DecodeOpaque(path("/5/0"), nil); !errors.Is(err, ErrBadBase) {
		t.Errorf("opaque on instance: %v", err)
	}
	p := path("/3/0/9")
	encode := []struct {
		name string
		recs []lwm2m.Record
		want error
	}{
		{"no records", nil, ErrRecords},
		{"two records", []lwm2m.Record{{Path: p, Value: lwm2m.Integer(1)}, {Path: p, Value: lwm2m.Integer(1)}}, ErrRecords},
		{"other path", []lwm2m.Record{{Path: path("/3/0/10"), Value: lwm2m.Integer(1)}}, ErrRecords},
		{"no value", []lwm2m.Record{{Path: p}}, ErrNoValue},
	}
	for _, tc := range encode {
		t.Run("encode "+tc.name, func(t *testing.T) {
			if _, err := Encode(p, tc.recs); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
