package api

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

func TestDecodeWriteValues(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   string
		want   lwm2m.Value
		errMsg string // substring of the error message; "" means success
	}{
		{name: "model unsigned", path: "/1/0/1", body: `{"value":86400}`, want: lwm2m.Unsigned(86400)},
		{name: "model boolean", path: "/1/0/6", body: `{"value":true}`, want: lwm2m.Boolean(true)},
		{name: "model string", path: "/1/0/7", body: `{"value":"UQ"}`, want: lwm2m.String("UQ")},
		{name: "model integer", path: "/3/0/9", body: `{"value":-3}`, want: lwm2m.Integer(-3)},
		{name: "model float takes integers", path: "/3303/0/5700", body: `{"value":21}`, want: lwm2m.Float(21)},
		{name: "model float exponent", path: "/3303/0/5700", body: `{"value":2.15e1}`, want: lwm2m.Float(21.5)},
		{name: "model float infinity", path: "/3303/0/5700", body: `{"value":"-Infinity"}`, want: lwm2m.Float(math.Inf(-1))},
		{name: "model opaque padded", path: "/5/0/0", body: `{"value":"aGVsbG8="}`, want: lwm2m.Opaque([]byte("hello"))},
		{name: "model opaque unpadded", path: "/5/0/0", body: `{"value":"aGVsbG8"}`, want: lwm2m.Opaque([]byte("hello"))},
		{name: "model opaque empty", path: "/5/0/0", body: `{"value":""}`, want: lwm2m.Opaque([]byte{})},
		{name: "model time seconds", path: "/3/0/13", body: `{"value":0}`, want: lwm2m.Time(time.Unix(0, 0))},
		{name: "model time RFC 3339 with offset", path: "/3/0/13", body: `{"value":"2026-03-01T13:00:00+01:00"}`, want: lwm2m.Time(testNow)},
		{name: "model objlnk", path: "/16/0/0", body: `{"value":"65535:65535"}`, want: lwm2m.Objlnk(65535, 65535)},
		{name: "explicit type wins", path: "/1/0/1", body: `{"value":"60","type":"string"}`, want: lwm2m.String("60")},
		{name: "explicit DDF type name", path: "/1/0/1", body: `{"value":60,"type":"Unsigned Integer"}`, want: lwm2m.Unsigned(60)},
		{name: "guess big integer is unsigned", path: "/9999/0/0", body: `{"value":18446744073709551615}`, want: lwm2m.Unsigned(math.MaxUint64)},
		{name: "guess huge integer is float", path: "/9999/0/0", body: `{"value":18446744073709551616}`, want: lwm2m.Float(18446744073709551616)},
		{name: "resource instance", path: "/3/0/13/2", body: `{"value":5}`, want: lwm2m.Time(time.Unix(5, 0))},

		{name: "unsigned negative", path: "/1/0/1", body: `{"value":-1}`, errMsg: `/1/0/1: "-1" does not fit type unsigned`},
		{name: "integer overflow", path: "/3/0/9", body: `{"value":9223372036854775808}`, errMsg: "does not fit type integer"},
		{name: "integer fraction", path: "/3/0/9", body: `{"value":1.5}`, errMsg: "does not fit type integer"},
		{name: "float overflow", path: "/3303/0/5700", body: `{"value":1e400}`, errMsg: "does not fit type float"},
		{name: "float junk string", path: "/3303/0/5700", body: `{"value":"inf"}`, errMsg: `want a number, "NaN"`},
		{name: "boolean as number", path: "/1/0/6", body: `{"value":1}`, errMsg: "does not fit type boolean"},
		{name: "objlnk too large", path: "/16/0/0", body: `{"value":"65536:0"}`, errMsg: "object:instance"},
		{name: "objlnk extra part", path: "/16/0/0", body: `{"value":"3:0:1"}`, errMsg: "object:instance"},
		{name: "time fraction", path: "/3/0/13", body: `{"value":1.5}`, errMsg: "Unix seconds"},
		{name: "object value", path: "/9999/0/0", body: `{"value":{"a":1}}`, errMsg: "objects and arrays"},
		{name: "explicit none", path: "/9999/0/0", body: `{"value":1,"type":"none"}`, errMsg: "cannot be written"},
		{name: "executable", path: "/5/0/2", body: `{"value":1}`, errMsg: "/5/0/2 is executable"},
		{name: "missing value", path: "/3/0/9", body: `{"type":"integer"}`, errMsg: `needs "records"`},
		{name: "long value is shortened", path: "/3/0/9", body: `{"value":"` + strings.Repeat("z", 100) + `"}`, errMsg: `zzz..." does not fit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := lwm2m.MustParsePath(tt.path)
			recs, err := decodeWrite([]byte(tt.body), p, testTypes)
			if tt.errMsg != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, tt.errMsg) {
					t.Fatalf("error %v, want a 400 containing %q", err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].Path != p || !recs[0].Value.Equal(tt.want) {
				t.Fatalf("records %v, want %s=%v", recs, p, tt.want)
			}
		})
	}
}

func TestDecodeWriteRecordIndexInError(t *testing.T) {
	_, err := decodeWrite([]byte(`{"records":[{"path":"/3/0/9","value":1},{"path":"/3/0/13","value":"soon"}]}`), lwm2m.MustParsePath("/3/0"), testTypes)
	if err == nil || !strings.HasPrefix(err.(*apiError).Message, "records[1]: /3/0/13:") {
		t.Fatalf("error %v, want it to name records[1]", err)
	}
}

// FuzzDecodeWrite feeds write bodies to the JSON → records conversion. It must never panic, every record
// it accepts must be a resource under the target with a real type, and rendering the records the way
// responses do and decoding that again must give the same records.
func FuzzDecodeWrite(f *testing.F) {
	seeds := []struct{ body, path string }{
		{`{"value":300}`, "/1/0/1"},
		{`{"value":"2026-03-01T12:00:00Z"}`, "/3/0/13"},
		{`{"value":"AAEC/w==","type":"opaque"}`, "/5/0/0"},
		{`{"records":[{"path":"/16/0/0","value":"3:0"},{"path":"/16/0/1","value":"</3/0>"}]}`, "/16/0"},
		{`{"records":[{"path":"/10241/0/1","value":1.5e3},{"path":"/10241/0/2","value":true},{"path":"/10241/0/3","value":"x"}]}`, "/10241"},
		{`{"records":[{"path":"/3303/0/5700","value":"NaN"}]}`, "/3303/0"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.path)
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		target, err := lwm2m.ParsePath(path)
		if err != nil {
			return
		}
		recs, err := decodeWrite(body, target, testTypes)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("error %v is not a 400 *apiError", err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatalf("no records and no error")
		}
		for _, r := range recs {
			if r.Path.Len() < 3 || !r.Path.HasPrefix(target) || r.Value.Type == lwm2m.TypeNone {
				t.Fatalf("accepted record %s=%v under %s", r.Path, r.Value, target)
			}
		}
		again, err := json.Marshal(map[string]any{"records": recordsJSON(recs)})
		if err != nil {
			t.Fatalf("rendering %v: %v", recs, err)
		}
		back, err := decodeWrite(again, target, testTypes)
		if err != nil {
			t.Fatalf("decoding the rendering %s: %v", again, err)
		}
		if len(back) != len(recs) {
			t.Fatalf("round trip: %v became %v", recs, back)
		}
		for i := range recs {
			if back[i].Path != recs[i].Path || !back[i].Value.Equal(recs[i].Value) {
				t.Fatalf("round trip: %s=%v became %s=%v (via %s)", recs[i].Path, recs[i].Value, back[i].Path, back[i].Value, again)
			}
		}
	})
}
