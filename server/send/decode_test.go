package send_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/send"
)

func rec(path string, v lwm2m.Value) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v}
}

func encode(t testing.TB, f lwm2m.ContentFormat, recs ...lwm2m.Record) []byte {
	t.Helper()
	b, err := codec.Encode(f, lwm2m.RootPath, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	model := lwm2m.NewModel()
	state := rec("/5/0/3", lwm2m.Integer(2))
	tests := []struct {
		name    string
		format  lwm2m.ContentFormat
		payload []byte
		max     int
		want    error // nil: decodes to state
	}{
		{"SenML CBOR", lwm2m.FormatSenMLCBOR, encode(t, lwm2m.FormatSenMLCBOR, state), 0, nil},
		{"SenML JSON", lwm2m.FormatSenMLJSON, encode(t, lwm2m.FormatSenMLJSON, state), 0, nil},
		{"LwM2M CBOR", lwm2m.FormatLwM2MCBOR, encode(t, lwm2m.FormatLwM2MCBOR, state), 0, nil},
		{"TLV", lwm2m.FormatTLV, []byte{0xc1, 0x03, 0x02}, 0, send.ErrFormat},
		{"text", lwm2m.FormatText, []byte("2"), 0, send.ErrFormat},
		{"empty", lwm2m.FormatSenMLCBOR, nil, 0, send.ErrPayload},
		{"empty pack", lwm2m.FormatSenMLJSON, []byte(`[]`), 0, send.ErrPayload},
		{"object instance", lwm2m.FormatSenMLJSON, []byte(`[{"n":"/5/0","v":1}]`), 0, send.ErrPayload},
		{"no value", lwm2m.FormatSenMLJSON, []byte(`[{"n":"/5/0/3"}]`), 0, send.ErrPayload},
		{"garbage", lwm2m.FormatSenMLCBOR, []byte{0xff, 0x00}, 0, send.ErrPayload},
		{"over the record limit", lwm2m.FormatSenMLJSON, []byte(`[{"n":"/5/0/3","v":1},{"n":"/5/0/5","v":0}]`), 1, send.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := send.Decode(tc.format, tc.payload, model, tc.max)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil || len(recs) != 1 || recs[0].Path != state.Path || recs[0].Value.Int != 2 {
				t.Fatalf("Decode = %+v, %v", recs, err)
			}
		})
	}
}

// Group keeps one latest value per resource: the newest record of a path, the instances of a
// multiple resource together and in order.
func TestGroup(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	old := rec("/5/0/3", lwm2m.Integer(1))
	old.Time = t0
	newer := rec("/5/0/3", lwm2m.Integer(2))
	newer.Time = t0.Add(time.Minute)
	got := send.Group([]lwm2m.Record{
		newer, old,
		rec("/3/0/7/1", lwm2m.Integer(3300)), rec("/3/0/7/0", lwm2m.Integer(5000)),
	})
	if len(got) != 2 {
		t.Fatalf("Group: %d resources, want 2: %+v", len(got), got)
	}
	if s := got[lwm2m.MustParsePath("/5/0/3")]; len(s) != 1 || s[0].Value.Int != 2 {
		t.Errorf("/5/0/3: %+v, want the newer record only", s)
	}
	if v := got[lwm2m.MustParsePath("/3/0/7")]; len(v) != 2 || v[0].Path.String() != "/3/0/7/0" || v[1].Path.String() != "/3/0/7/1" {
		t.Errorf("/3/0/7: %+v, want both instances in order", v)
	}
}

// FuzzDecode: no payload makes Decode panic, and what it accepts is resources with values.
func FuzzDecode(f *testing.F) {
	state := rec("/5/0/3", lwm2m.Integer(2))
	for _, fm := range send.Formats {
		f.Add(uint16(fm), encode(f, fm, state, rec("/5/0/5", lwm2m.Integer(1)), rec("/3/0/3", lwm2m.String("1.0.0"))))
	}
	f.Add(uint16(lwm2m.FormatSenMLJSON), []byte(`[{"bn":"/5/0/","n":"3","v":2,"bt":1.7e9},{"n":"5","v":0}]`))
	f.Add(uint16(lwm2m.FormatTLV), []byte{0xc1, 0x03, 0x02})
	model := lwm2m.NewModel()
	f.Fuzz(func(t *testing.T, format uint16, payload []byte) {
		recs, err := send.Decode(lwm2m.ContentFormat(format), payload, model, 64)
		if err != nil {
			return
		}
		if len(recs) == 0 || len(recs) > 64 {
			t.Fatalf("accepted %d records", len(recs))
		}
		for _, r := range recs {
			if r.Path.Len() < 3 || r.Value.Type == lwm2m.TypeNone {
				t.Fatalf("accepted %+v", r)
			}
		}
		send.Group(recs)
	})
}
