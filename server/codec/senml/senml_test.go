package senml

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/codec/codectest"
	"github.com/lwota/lwota/server/lwm2m"
)

func path(s string) lwm2m.Path { return lwm2m.MustParsePath(s) }

// deviceJSON is the Read /3/0 answer of LwM2M Core §7.4.4 (SenML JSON).
const deviceJSON = `
[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
 {"n":"1","vs":"Lightweight M2M Client"},
 {"n":"2","vs":"345000123"},
 {"n":"3","vs":"1.0"},
 {"n":"6/0","v":1},
 {"n":"6/1","v":5},
 {"n":"7/0","v":3800},
 {"n":"7/1","v":5000},
 {"n":"8/0","v":125},
 {"n":"8/1","v":900},
 {"n":"9","v":100},
 {"n":"10","v":15},
 {"n":"11/0","v":0},
 {"n":"13","v":1367491215},
 {"n":"14","vs":"+02:00"},
 {"n":"16","vs":"U"}]`

func TestCore_7_4_4_DeviceInstanceJSON(t *testing.T) {
	// The example's layout is one record per line; the encoder writes no whitespace.
	data := []byte(strings.TrimSpace(strings.ReplaceAll(deviceJSON, "\n ", "")))
	got, err := DecodeJSON(path("/3/0"), data, codectest.NewModel())
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d := codectest.Diff(got, codectest.Device()); d != "" {
		t.Fatalf("Decode:\n%s", d)
	}
	enc, err := EncodeJSON(path("/3/0"), codectest.Device())
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("Encode:\n got %s\nwant %s", enc, data)
	}
}

// RFC 8428 §4.5: names are bn+n; times are bt+t; the base fields carry forward.
func TestRFC8428_4_5_BaseFields(t *testing.T) {
	tests := []struct {
		name string
		base string
		json string
		want []lwm2m.Record
	}{
		{"single resource in bn", "/3/0/0", `[{"bn":"/3/0/0","vs":"Open Mobile Alliance"}]`,
			[]lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.String("Open Mobile Alliance")}}},
		{"composite with absolute names", "/", `[{"n":"/3/0/9","v":100},{"n":"/1/0/1","v":86400}]`,
			[]lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(100)}, {Path: path("/1/0/1"), Value: lwm2m.Integer(86400)}}},
		{"base name changes mid pack", "/", `[{"bn":"/3/0/","n":"9","v":1},{"bn":"/3/1/","n":"9","v":2},{"n":"10","v":3}]`,
			[]lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(1)}, {Path: path("/3/1/9"), Value: lwm2m.Integer(2)}, {Path: path("/3/1/10"), Value: lwm2m.Integer(3)}}},
		{"base time plus time", "/3303/0", `[{"bn":"/3303/0/5700","bt":1700000000,"t":-5,"v":22.5},{"t":0,"v":23.0}]`,
			[]lwm2m.Record{
				{Path: path("/3303/0/5700"), Value: lwm2m.Float(22.5), Time: time.Unix(1699999995, 0)},
				{Path: path("/3303/0/5700"), Value: lwm2m.Float(23), Time: time.Unix(1700000000, 0)}}},
		{"base value", "/3/0", `[{"bn":"/3/0/","bv":100,"n":"9","v":-1}]`,
			[]lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(99)}}},
		{"name only (Read-Composite request)", "/", `[{"n":"/3/0"},{"n":"/1/0/1"}]`,
			[]lwm2m.Record{{Path: path("/3/0")}, {Path: path("/1/0/1")}}},
		{"objlnk as vlo", "/3/0", `[{"bn":"/3/0/22/","n":"0","vlo":"4:0"}]`,
			[]lwm2m.Record{{Path: path("/3/0/22/0"), Value: lwm2m.Objlnk(4, 0)}}},
		{"boolean and data", "/", `[{"n":"/32769/0/4","vb":true},{"n":"/32769/0/5","vd":"AAH-_w"}]`,
			[]lwm2m.Record{{Path: path("/32769/0/4"), Value: lwm2m.Boolean(true)}, {Path: path("/32769/0/5"), Value: lwm2m.Opaque([]byte{0, 1, 0xfe, 0xff})}}},
		{"padded standard base64", "/", `[{"n":"/32769/0/5","vd":"AAH+/w=="}]`,
			[]lwm2m.Record{{Path: path("/32769/0/5"), Value: lwm2m.Opaque([]byte{0, 1, 0xfe, 0xff})}}},
		{"unknown labels ignored", "/", `[{"n":"/3/0/9","v":1,"u":"%","ut":5,"bver":10}]`,
			[]lwm2m.Record{{Path: path("/3/0/9"), Value: lwm2m.Integer(1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeJSON(path(tc.base), []byte(tc.json), codectest.NewModel())
			if err != nil {
				t.Fatal(err)
			}
			if d := codectest.Diff(got, tc.want); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// RFC 8428 §4.5.3: times below 2**28 count from now.
func TestRFC8428_4_5_3_RelativeTime(t *testing.T) {
	before := time.Now()
	got, err := DecodeJSON(lwm2m.RootPath, []byte(`[{"n":"/3/0/9","v":1,"t":-60}]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := got[0].Time.Sub(before); d < -61*time.Second || d > -59*time.Second {
		t.Fatalf("relative time off by %v", d)
	}
}

// The model turns SenML's number and string kinds into Time, Unsigned, Objlnk, Corelnk.
func TestModelTyping(t *testing.T) {
	o := "/32769/0/"
	js := `[{"n":"` + o + `2","v":5},{"n":"` + o + `3","v":2},{"n":"` + o + `6","v":1700000000},{"n":"` + o + `7","vs":"3:1"},{"n":"` + o + `8","vs":"</3>"}]`
	got, err := DecodeJSON(lwm2m.RootPath, []byte(js), codectest.NewModel())
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{
		{Path: path(o + "2"), Value: lwm2m.Unsigned(5)},
		{Path: path(o + "3"), Value: lwm2m.Float(2)},
		{Path: path(o + "6"), Value: lwm2m.Time(time.Unix(1700000000, 0))},
		{Path: path(o + "7"), Value: lwm2m.Objlnk(3, 1)},
		{Path: path(o + "8"), Value: lwm2m.Corelnk("</3>")},
	}
	if d := codectest.Diff(got, want); d != "" {
		t.Fatal(d)
	}
}

// senmlCBOROneRecord is [{-2: "/3/0/", 0: "0", 3: "Open Mobile Alliance"}], RFC 8428 §6
// integer labels, with keys in the order a device might send them.
const senmlCBOROneRecord = "81 A3 21 65 2F332F302F 00 61 30 03 74 4F70656E204D6F62696C6520416C6C69616E6365"

func TestRFC8428_6_CBORLabels(t *testing.T) {
	data, _ := hex.DecodeString(strings.Join(strings.Fields(senmlCBOROneRecord), ""))
	got, err := DecodeCBOR(path("/3/0"), data, codectest.NewModel())
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.String("Open Mobile Alliance")}}
	if d := codectest.Diff(got, want); d != "" {
		t.Fatal(d)
	}
	enc, err := EncodeCBOR(path("/3/0"), want)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic encoding sorts the keys bytewise: 0 (n), 3 (vs), -2 (bn).
	wantEnc, _ := hex.DecodeString("81A3006130037" + "44F70656E204D6F62696C6520416C6C69616E6365" + "21652F332F302F")
	if !bytes.Equal(enc, wantEnc) {
		t.Fatalf("Encode:\n got %X\nwant %X", enc, wantEnc)
	}
	// Objlnk travels under the text label "vlo".
	enc, err = EncodeCBOR(lwm2m.RootPath, []lwm2m.Record{{Path: path("/3/0/22/0"), Value: lwm2m.Objlnk(4, 0)}})
	if err != nil || !bytes.Contains(enc, []byte("\x63vlo\x634:0")) {
		t.Fatalf("vlo: %X %v", enc, err)
	}
}

// Every type survives both SenML encodings, given the model to type numbers and strings.
func TestRoundTrip(t *testing.T) {
	type codec struct {
		name   string
		encode func(lwm2m.Path, []lwm2m.Record) ([]byte, error)
		decode func(lwm2m.Path, []byte, Resolver) ([]lwm2m.Record, error)
	}
	codecs := []codec{{"json", EncodeJSON, DecodeJSON}, {"cbor", EncodeCBOR, DecodeCBOR}}
	stamped := codectest.AllTypes()
	for i := range stamped {
		stamped[i].Time = time.Unix(1700000000, int64(i)*250e6)
	}
	sets := map[string]struct {
		base string
		recs []lwm2m.Record
	}{
		"device instance":   {"/3/0", codectest.Device()},
		"device object":     {"/3", codectest.Device()},
		"all types":         {"/32769/1", codectest.AllTypes()},
		"all types at root": {"/", codectest.AllTypes()},
		"timestamped":       {"/32769", stamped},
		"single resource":   {"/3/0/0", codectest.Device()[:1]},
		"resource instance": {"/3/0/6/1", codectest.Device()[5:6]},
	}
	for _, c := range codecs {
		for name, set := range sets {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				enc, err := c.encode(path(set.base), set.recs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.decode(path(set.base), enc, codectest.NewModel())
				if err != nil {
					t.Fatalf("%v\n%s", err, enc)
				}
				if d := codectest.Diff(got, set.recs); d != "" {
					t.Fatalf("%s\n%s", d, enc)
				}
			})
		}
	}
	// CBOR keeps float widths and NaN payloads exactly, without a model.
	for _, f := range []float64{math.Float64frombits(0x7ff8000000000001), math.Inf(-1), 1.5, 0.1, math.Copysign(0, -1)} {
		recs := []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.Float(f)}}
		enc, err := EncodeCBOR(lwm2m.RootPath, recs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCBOR(lwm2m.RootPath, enc, nil)
		if err != nil || codectest.Diff(got, recs) != "" {
			t.Errorf("float %v: %v %v", f, got, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	m := codectest.NewModel()
	tests := []struct {
		name string
		base string
		json string
		want error
	}{
		{"not JSON", "/", `[{`, ErrSyntax},
		{"not an array", "/", `{"n":"/3/0/0"}`, ErrSyntax},
		{"record not an object", "/", `[1]`, ErrSyntax},
		{"null record", "/", `[null]`, ErrSyntax},
		{"trailing data", "/", `[]x`, ErrSyntax},
		{"v is a string", "/", `[{"n":"/3/0/9","v":"1"}]`, ErrSyntax},
		{"vs is null", "/", `[{"n":"/3/0/0","vs":null}]`, ErrSyntax},
		{"vd not base64", "/", `[{"n":"/3/0/0","vd":"***"}]`, ErrSyntax},
		{"number out of range", "/", `[{"n":"/3/0/9","v":1e999}]`, ErrSyntax},
		{"relative name", "/", `[{"n":"3/0/9","v":1}]`, ErrBadName},
		{"name not a path", "/", `[{"n":"/3/zero/9","v":1}]`, ErrBadName},
		{"too deep", "/", `[{"n":"/3/0/9/0/1","v":1}]`, ErrBadName},
		{"id 65535", "/", `[{"n":"/3/0/65535","v":1}]`, ErrBadName},
		{"double slash", "/", `[{"bn":"/3/0/","n":"/9","v":1}]`, ErrBadName},
		{"outside base", "/3/1", `[{"n":"/3/0/9","v":1}]`, ErrNotUnderBase},
		{"two values", "/", `[{"n":"/3/0/9","v":1,"vs":"1"}]`, ErrMultipleValues},
		{"value on instance", "/", `[{"n":"/3/0","v":1}]`, ErrNotResource},
		{"boolean for integer", "/", `[{"n":"/3/0/9","vb":true}]`, ErrWrongKind},
		{"fraction for integer", "/", `[{"n":"/3/0/9","v":1.5}]`, ErrWrongKind},
		{"negative for unsigned", "/", `[{"n":"/32769/0/2","v":-1}]`, ErrWrongKind},
		{"bad vlo", "/", `[{"n":"/32769/0/7","vlo":"3-1"}]`, ErrWrongKind},
		{"must-understand label", "/", `[{"n":"/3/0/9","v":1,"x_":1}]`, ErrMustUnderstand},
		{"time out of range", "/", `[{"n":"/3/0/9","v":1,"t":1e300}]`, ErrBadTime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeJSON(path(tc.base), []byte(tc.json), m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "senml: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	cbors := []struct {
		name string
		hex  string
		want error
	}{
		{"not CBOR", "FF", ErrSyntax},
		{"not an array", "A0", ErrSyntax},
		{"trailing bytes", "8000", ErrSyntax},
		{"name is a number", "81A10001", ErrSyntax},
		{"vb is a number", "81A2006A2F33322F302F342F30 0401", ErrSyntax},
		{"v is a tag", "81A2 00662F332F302F39 02C11A00000001", ErrSyntax},
		{"too deep nesting", strings.Repeat("81", 40) + "80", ErrTooMany},
	}
	for _, tc := range cbors {
		t.Run("cbor "+tc.name, func(t *testing.T) {
			data, err := hex.DecodeString(strings.ReplaceAll(tc.hex, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeCBOR(lwm2m.RootPath, data, m); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeTooMany(t *testing.T) {
	js := "[" + strings.Repeat(`{"n":"/3/0/9","v":1},`, 10000) + `{"n":"/3/0/9","v":1}]`
	if _, err := DecodeJSON(lwm2m.RootPath, []byte(js), nil); !errors.Is(err, ErrTooMany) {
		t.Fatalf("json: %v", err)
	}
	recs := make([]lwm2m.Record, 10001)
	for i := range recs {
		recs[i] = lwm2m.Record{Path: path("/3/0/9"), Value: lwm2m.Integer(1)}
	}
	enc, err := EncodeCBOR(lwm2m.RootPath, recs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeCBOR(lwm2m.RootPath, enc, nil); !errors.Is(err, ErrTooMany) {
		t.Fatalf("cbor: %v", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := EncodeJSON(path("/3/1"), codectest.Device()); !errors.Is(err, ErrNotUnderBase) {
		t.Errorf("outside base: %v", err)
	}
	if _, err := EncodeJSON(lwm2m.RootPath, []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.Float(math.NaN())}}); !errors.Is(err, ErrNotRepresentable) {
		t.Errorf("NaN in JSON: %v", err)
	}
	if _, err := EncodeCBOR(lwm2m.RootPath, []lwm2m.Record{{Path: path("/3/0/0"), Value: lwm2m.String("\xff")}}); !errors.Is(err, ErrNotRepresentable) {
		t.Errorf("invalid UTF-8: %v", err)
	}
}
