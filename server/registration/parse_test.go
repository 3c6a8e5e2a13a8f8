package registration

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name    string
		query   []string
		want    params
		wantErr error
	}{
		{"core 1.2 register", []string{"ep=urn:imei:1", "lt=300", "lwm2m=1.2", "b=U", "Q"},
			params{endpoint: "urn:imei:1", lifetime: 300, hasLifetime: true, version: "1.2", binding: "U", hasBinding: true, queue: true}, nil},
		{"1.0 queue binding", []string{"ep=a", "b=UQ"}, params{endpoint: "a", binding: "UQ", hasBinding: true}, nil},
		{"unknown params ignored", []string{"ep=a", "future=1"}, params{endpoint: "a"}, nil},
		{"bad lifetime", []string{"ep=a", "lt=soon"}, params{}, ErrBadRequest},
		{"negative lifetime", []string{"ep=a", "lt=-5"}, params{}, ErrBadRequest},
		{"Q with value", []string{"ep=a", "Q=1"}, params{}, ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseQuery(tc.query)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidEndpoint(t *testing.T) {
	tests := []struct {
		ep string
		ok bool
	}{
		{"urn:imei:490154203237518", true},
		{"urn:dev:ops:32473-IoTDevice-1234", true},
		{"sensor ünïcode", true},
		{"", false},
		{strings.Repeat("a", 256), false},
		{"a/b", false},
		{"a\x00b", false},
		{"a?b", false},
		{string([]byte{0xff, 0xfe}), false},
		{strings.Repeat("é", 127), true}, // 254 bytes
		{"a#b", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false},    // C1 control (NEL)
		{"a\u202eb", false},    // right-to-left override
		{"a\u200bb", false},    // zero-width space
		{"a\u00a0b", false},    // no-break space: only the ASCII space is allowed
		{"dev 1 (hall)", true}, // the ASCII space and punctuation
	}
	for _, tc := range tests {
		err := validEndpoint(tc.ep, 255)
		if (err == nil) != tc.ok {
			t.Errorf("validEndpoint(%q) = %v, want ok=%v", tc.ep, err, tc.ok)
		}
	}
}

func TestValidBinding(t *testing.T) {
	for _, b := range []string{"U", "UQ", "S", "SQ", "US", "UQS", "N", "T", "UN"} {
		if err := validBinding(b); err != nil {
			t.Errorf("binding %q refused: %v", b, err)
		}
	}
	for _, b := range []string{"", "X", "u", "U Q"} {
		if err := validBinding(b); !errors.Is(err, ErrBadRequest) {
			t.Errorf("binding %q accepted", b)
		}
	}
}

// Core 1.2 §6.2.1.1 shows object lists with and without an alternate path and with ct= on the root link.
func TestParseObjectList(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		root     string
		formats  []uint16
		objects  []string // path;ver
		wantErr  error
		maxLinks int
	}{
		{name: "instances", payload: "</1/0>,</3/0>,</5/0>", root: "/", objects: []string{"/1/0;", "/3/0;", "/5/0;"}},
		{name: "versions and root link", payload: `</>;rt="oma.lwm2m";ct="110 112 11542",</1>;ver=1.1,</1/0>,</3/0>,</5>;ver=1.2,</5/0>`,
			root: "/", formats: []uint16{110, 112, 11542}, objects: []string{"/1;1.1", "/1/0;", "/3/0;", "/5;1.2", "/5/0;"}},
		{name: "single ct", payload: `</>;rt="oma.lwm2m";ct=60,</3/0>`, root: "/", formats: []uint16{60}, objects: []string{"/3/0;"}},
		{name: "alternate path", payload: `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>,</other/1>`, root: "/lwm2m", objects: []string{"/1/0;", "/3/0;"}},
		{name: "empty payload", payload: "", root: "/"},
		{name: "resource link refused", payload: "</3/0/1>", wantErr: ErrBadRequest},
		{name: "not a path", payload: "</three/0>", wantErr: ErrBadRequest},
		{name: "id too large", payload: "</70000/0>", wantErr: ErrBadRequest},
		{name: "garbage", payload: "<<<", wantErr: ErrBadRequest},
		{name: "bad ct", payload: `</>;rt="oma.lwm2m";ct=tlv`, wantErr: ErrBadRequest},
		{name: "too many links", payload: "</1/0>,</3/0>,</5/0>", maxLinks: 2, wantErr: ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.maxLinks
			if max == 0 {
				max = 100
			}
			ol, err := parseObjectList([]byte(tc.payload), max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ol.rootPath != tc.root {
				t.Errorf("root = %q, want %q", ol.rootPath, tc.root)
			}
			if len(ol.formats) != len(tc.formats) {
				t.Fatalf("formats = %v, want %v", ol.formats, tc.formats)
			}
			for i := range tc.formats {
				if ol.formats[i] != tc.formats[i] {
					t.Errorf("formats = %v, want %v", ol.formats, tc.formats)
				}
			}
			var got []string
			for _, o := range ol.objects {
				got = append(got, o.Path.String()+";"+o.Version)
			}
			if strings.Join(got, ",") != strings.Join(tc.objects, ",") {
				t.Errorf("objects = %v, want %v", got, tc.objects)
			}
		})
	}
}
