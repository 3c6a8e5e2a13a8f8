package linkformat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRFC6690_Parse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Link
	}{
		{"empty payload", "", nil},
		{"LwM2M Register objects (Transport §6.2)", `</1/0>,</3/0>,</5>;ver=1.1`, []Link{
			{Target: "/1/0"}, {Target: "/3/0"}, {Target: "/5", Params: []Param{{Key: "ver", Value: "1.1", HasValue: true}}}}},
		{"root with quoted rt and ct", `</>;rt="oma.lwm2m";ct=11542,</3/0>`, []Link{
			{Target: "/", Params: []Param{{Key: "rt", Value: "oma.lwm2m", HasValue: true}, {Key: "ct", Value: "11542", HasValue: true}}},
			{Target: "/3/0"}}},
		{"quoted list with spaces", `</>;ct="60 110 112 11542"`, []Link{
			{Target: "/", Params: []Param{{Key: "ct", Value: "60 110 112 11542", HasValue: true}}}}},
		{"escapes in quoted string", `</a>;title="say \"hi\" \\ bye"`, []Link{
			{Target: "/a", Params: []Param{{Key: "title", Value: `say "hi" \ bye`, HasValue: true}}}}},
		{"parameter without value (Q)", `</3/0>;Q;ver=1.0`, []Link{
			{Target: "/3/0", Params: []Param{{Key: "Q"}, {Key: "ver", Value: "1.0", HasValue: true}}}}},
		{"Discover answer with attributes (Core §5.4.2)", `</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/6>;dim=2,</3/0/7>;gt=50;lt=42.2;st=0.5`, []Link{
			{Target: "/3/0", Params: []Param{{Key: "pmin", Value: "10", HasValue: true}, {Key: "pmax", Value: "60", HasValue: true}}},
			{Target: "/3/0/1"},
			{Target: "/3/0/6", Params: []Param{{Key: "dim", Value: "2", HasValue: true}}},
			{Target: "/3/0/7", Params: []Param{{Key: "gt", Value: "50", HasValue: true}, {Key: "lt", Value: "42.2", HasValue: true}, {Key: "st", Value: "0.5", HasValue: true}}}}},
		{"whitespace and newlines between links", " </1/0> ,\n\t</3/0> ; ver = 1.1 ;Q\r\n", []Link{
			{Target: "/1/0"}, {Target: "/3/0", Params: []Param{{Key: "ver", Value: "1.1", HasValue: true}, {Key: "Q"}}}}},
		{"alternate path", `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>`, []Link{
			{Target: "/lwm2m", Params: []Param{{Key: "rt", Value: "oma.lwm2m", HasValue: true}}}, {Target: "/lwm2m/1/0"}}},
		{"empty quoted value", `</a>;x=""`, []Link{{Target: "/a", Params: []Param{{Key: "x", Value: "", HasValue: true}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tc.want)
			}
			again, err := Parse(Format(got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("Format round trip: %q -> %#v, %v", Format(got), again, err)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	links := []Link{
		{Target: "/", Params: []Param{{Key: "rt", Value: "oma.lwm2m", HasValue: true}, {Key: "ct", Value: "11542", HasValue: true}}},
		{Target: "/3/0", Params: []Param{{Key: "ver", Value: "1.1", HasValue: true}, {Key: "Q"}}},
		{Target: "/5", Params: []Param{{Key: "title", Value: `a "b"`, HasValue: true}, {Key: "ct", Value: "60 110", HasValue: true}}},
	}
	want := `</>;rt="oma.lwm2m";ct=11542,</3/0>;ver=1.1;Q,</5>;title="a \"b\"";ct="60 110"`
	if got := string(Format(links)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParam(t *testing.T) {
	links, err := Parse([]byte(`</3/0>;ver=1.1;Q;ver=2`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := links[0].Param("ver"); !ok || v != "1.1" {
		t.Errorf("ver = %q, %v; want the first", v, ok)
	}
	if v, ok := links[0].Param("Q"); !ok || v != "" {
		t.Errorf("Q = %q, %v", v, ok)
	}
	if _, ok := links[0].Param("rt"); ok {
		t.Error("rt found")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"no angle brackets", `/3/0`, ErrSyntax},
		{"unterminated target", `</3/0`, ErrSyntax},
		{"missing comma", `</1/0></3/0>`, ErrSyntax},
		{"trailing comma", `</1/0>,`, ErrSyntax},
		{"empty param name", `</1/0>;=1`, ErrSyntax},
		{"missing value", `</1/0>;ver=`, ErrSyntax},
		{"unterminated quote", `</1/0>;rt="oma`, ErrSyntax},
		{"dangling escape", `</1/0>;rt="oma\`, ErrSyntax},
		{"control char in quotes", "</1/0>;rt=\"a\x01\"", ErrSyntax},
		{"space in target", `</1 /0>`, ErrSyntax},
		{"junk after param", `</1/0>;ver=1.1 x`, ErrSyntax},
		{"too large", "<" + strings.Repeat("a", MaxSize) + ">", ErrTooLarge},
		{"too many links", strings.TrimSuffix(strings.Repeat("<a>,", MaxLinks+1), ","), ErrTooManyLinks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(strings.TrimSuffix(strings.Repeat("<a>,", MaxLinks), ","))); err != nil {
		t.Fatalf("exactly MaxLinks: %v", err)
	}
}
