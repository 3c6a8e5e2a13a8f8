package codec

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/lwm2m"
)

func paths(ss ...string) []lwm2m.Path {
	out := make([]lwm2m.Path, len(ss))
	for i, s := range ss {
		out[i] = lwm2m.MustParsePath(s)
	}
	return out
}

// TestCore_6_3_1_ReadCompositePathList checks the FETCH body of Read-Composite (LwM2M 1.1
// Core §5.4.3, Transport §6.3.1 example): names only, absolute, in both SenML encodings.
func TestCore_6_3_1_ReadCompositePathList(t *testing.T) {
	want := paths("/3/0/3", "/5/0/3", "/5/0/5")
	tests := []struct {
		name   string
		format lwm2m.ContentFormat
		wire   string // exact encoding
	}{
		{"senml-json", lwm2m.FormatSenMLJSON, `[{"n":"/3/0/3"},{"n":"/5/0/3"},{"n":"/5/0/5"}]`},
		// [{0: "/3/0/3"}, {0: "/5/0/3"}, {0: "/5/0/5"}]
		{"senml-cbor", lwm2m.FormatSenMLCBOR, "83a100662f332f302f33a100662f352f302f33a100662f352f302f35"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodePaths(tc.format, want)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			if tc.format == lwm2m.FormatSenMLCBOR {
				got = hex.EncodeToString(b)
			}
			if got != tc.wire {
				t.Fatalf("encoded %s, want %s", got, tc.wire)
			}
			back, err := DecodePaths(tc.format, b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back, want) {
				t.Fatalf("decoded %v, want %v", back, want)
			}
		})
	}
}

func TestDecodePathsErrors(t *testing.T) {
	many := "[" + strings.Repeat(`{"n":"/3/0/1"},`, MaxPaths) + `{"n":"/3/0/2"}]`
	tests := []struct {
		name   string
		format lwm2m.ContentFormat
		body   string
		want   error
	}{
		{"empty list", lwm2m.FormatSenMLJSON, `[]`, ErrPathList},
		{"value in a path list", lwm2m.FormatSenMLJSON, `[{"n":"/3/0/3","vs":"x"}]`, ErrPathList},
		{"root", lwm2m.FormatSenMLJSON, `[{"n":"/"}]`, ErrPathList},
		{"too many", lwm2m.FormatSenMLJSON, many, ErrPathList},
		{"not senml", lwm2m.FormatSenMLJSON, `{"n":"/3"}`, nil},
		{"tlv", lwm2m.FormatTLV, `[]`, ErrUnsupportedFormat},
		{"lwm2m cbor", lwm2m.FormatLwM2MCBOR, `[]`, ErrUnsupportedFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePaths(tc.format, []byte(tc.body))
			if err == nil {
				t.Fatalf("decoded %v, want an error", got)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodePathsErrors(t *testing.T) {
	if _, err := EncodePaths(lwm2m.FormatSenMLCBOR, nil); !errors.Is(err, ErrPathList) {
		t.Fatalf("no paths: %v", err)
	}
	if _, err := EncodePaths(lwm2m.FormatSenMLCBOR, []lwm2m.Path{lwm2m.RootPath}); !errors.Is(err, ErrPathList) {
		t.Fatalf("root: %v", err)
	}
	if _, err := EncodePaths(lwm2m.FormatTLV, paths("/3/0/3")); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("tlv: %v", err)
	}
}

// FuzzDecodePaths: whatever decodes as a path list encodes back to the same list; nothing panics.
func FuzzDecodePaths(f *testing.F) {
	f.Add(uint8(0), []byte(`[{"n":"/3/0/3"},{"n":"/5/0/3"},{"bn":"/5/0/","n":"5"}]`))
	cbor, _ := hex.DecodeString("83a100662f332f302f33a100662f352f302f33a100662f352f302f35")
	f.Add(uint8(1), cbor)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		format := lwm2m.FormatSenMLJSON
		if which%2 == 1 {
			format = lwm2m.FormatSenMLCBOR
		}
		ps, err := DecodePaths(format, data)
		if err != nil {
			return
		}
		enc, err := EncodePaths(format, ps)
		if err != nil {
			t.Fatalf("re-encode %v: %v", ps, err)
		}
		again, err := DecodePaths(format, enc)
		if err != nil || !slices.Equal(again, ps) {
			t.Fatalf("round trip %v -> %v (%v)", ps, again, err)
		}
	})
}
