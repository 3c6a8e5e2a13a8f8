package selector

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var fleet = map[string]Device{
	"a": {Endpoint: "urn:imei:350000000000001", Manufacturer: "Acme", Model: "X100", DeviceType: "meter",
		FirmwareVersion: "1.4.1", Labels: map[string]string{"region": "eu", "cell": "c1"}, Online: true},
	"b": {Endpoint: "urn:imei:351111111111111", Manufacturer: "Acme", Model: "X200", DeviceType: "meter",
		FirmwareVersion: "1.10.0", Labels: map[string]string{"region": "us"}},
	"c": {Endpoint: "sim-000007", Manufacturer: "Other", Model: "X100", DeviceType: "tracker",
		FirmwareVersion: "", Labels: nil, Online: true},
}

func TestMatch(t *testing.T) {
	tests := []struct {
		query string
		want  string // the fleet keys that match, in order
	}{
		{`model = "X100"`, "ac"},
		{`model != "X100"`, "b"},
		{`model in ("X100", "X200")`, "abc"},
		{`model not in ("X100")`, "b"},
		{`endpoint ^= "urn:imei:35"`, "ab"},
		{`endpoint ^= ""`, "abc"},
		{`manufacturer = "Acme" and device_type = "meter"`, "ab"},
		{`firmware < "1.4.2"`, "a"},      // "" (c) never compares
		{`firmware >= "1.4.2"`, "b"},     // 1.10.0 > 1.4.2: numeric segments
		{`firmware <= "1.4.1"`, "a"},     //
		{`firmware > "1.4"`, "ab"},       // 1.4.1 > 1.4: the shorter is smaller
		{`not firmware < "1.4.2"`, "bc"}, // not is plain negation
		{`firmware = "1.10"`, ""},        // = is exact text, not version equality
		{`labels.region = "eu"`, "a"},    //
		{`labels.region != "eu"`, "bc"},  // a missing label is != anything
		{`labels.region not in ("eu")`, "bc"},
		{`labels.region in ("eu", "us")`, "ab"},
		{`has labels.cell`, "a"},
		{`not has labels.region`, "c"},
		{`online`, "ac"},
		{`not online`, "b"},
		{`online and model = "X100" or model = "X200"`, "abc"},  // and binds tighter
		{`online and (model = "X100" or model = "X200")`, "ac"}, //
		{`model = "X200" or online and labels.region = "eu"`, "ab"},
		{`not (online or has labels.region)`, ""},
		{`not not online`, "ac"},
		{"model\t=\n\"X100\"", "ac"},
		{`endpoint = "sim-\u0030\U000000300007"`, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s, err := Parse(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, k := range []string{"a", "b", "c"} {
				if s.Match(fleet[k]) {
					got += k
				}
			}
			if got != tt.want {
				t.Errorf("matches %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEscapes(t *testing.T) {
	s, err := Parse(`labels.note = "a\"b\\c\n\t\r\u00e9\U0001F600"`)
	if err != nil {
		t.Fatal(err)
	}
	d := Device{Labels: map[string]string{"note": "a\"b\\c\n\t\ré😀"}}
	if !s.Match(d) {
		t.Errorf("%s does not match %q", s, d.Labels["note"])
	}
	if got, want := s.String(), `labels.note = "a\"b\\c\n\t\ré😀"`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{`model="X100"`, `model = "X100"`},
		{`(model = "X100")`, `model = "X100"`},
		{`online and (has labels.a and (labels.b = "1"))`, `online and has labels.a and labels.b = "1"`},
		{`online and (has labels.a or labels.b = "1")`, `online and (has labels.a or labels.b = "1")`},
		{`(online and has labels.a) or labels.b = "1"`, `online and has labels.a or labels.b = "1"`},
		{`not (online)`, `not online`},
		{`not (online and online)`, `not (online and online)`},
		{`model in("a","b")`, `model in ("a", "b")`},
		{`model not in ( "a" )`, `model not in ("a")`},
		{`labels.k8s.io/zone ^= "eu-"`, `labels.k8s.io/zone ^= "eu-"`},
		{`firmware>="1.4"`, `firmware >= "1.4"`},
		{`labels.x = "\u0001\u00a0"`, `labels.x = "\u0001\u00a0"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.String(); got != tt.want {
				t.Errorf("String = %s, want %s", got, tt.want)
			}
			again, err := Parse(s.String())
			if err != nil || again.String() != tt.want {
				t.Errorf("round trip: %v, %v", again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, `selector: column 1: empty query`},
		{`   `, `selector: column 4: empty query`},
		{`model = X100`, `selector: column 9: expected a value after '=', found X100 (values are quoted: "X100")`},
		{`model = "X100" and `, `selector: column 20: expected a condition, found the end of the query`},
		{`firmwre < "1"`, `selector: column 1: unknown field "firmwre"`},
		{`model < "1"`, `selector: column 7: '<' compares versions and applies to firmware only`},
		{`model == "1"`, `selector: column 7: use '=' for equality, not '=='`},
		{`model = "1" && online`, `selector: column 13: unexpected '&': write 'and' or 'or'`},
		{`!online`, `selector: column 1: unexpected '!': write 'not' to negate`},
		{`model = 'x'`, `selector: column 9: strings are written in double quotes`},
		{`model = "x`, `selector: column 9: string is not closed`},
		{`model = "\x"`, `selector: column 10: invalid escape \x`},
		{`model = "\u12"`, `selector: column 10: escape \u needs 4 hex digits`},
		{`model = "\ud800"`, `selector: column 10: escape \ud800 is not a valid character`},
		{"model = \"a\tb\"", `selector: column 11: control character '\t' in a string`},
		{`(online`, `selector: column 8: expected ')' to close the '(' at column 1, found the end of the query`},
		{`online)`, `selector: column 7: unexpected ')' without a matching '('`},
		{`online model = "x"`, `selector: column 8: expected 'and', 'or' or the end of the query, found model`},
		{`model in "a"`, `selector: column 10: expected '(' to start the list`},
		{`model in ()`, `selector: column 11: expected a quoted value in the list, found ')'`},
		{`model in ("a" "b")`, `selector: column 15: expected ',' or ')' in the list opened at column 10`},
		{`model not "a"`, `selector: column 11: expected 'in' after 'model not'`},
		{`model`, `selector: column 6: expected an operator after model`},
		{`has model`, `selector: column 5: expected a label after 'has'`},
		{`labels. = "x"`, `selector: column 1: expected a label key after 'labels.'`},
		{`"X100"`, `selector: column 1: expected a field before the value "X100"`},
		{`and online`, `selector: column 1: expected a condition, found 'and'`},
		{`model = "é" and é`, `selector: column 17: unexpected character 'é'`},
		{"model = \"\xff\"", `selector: column 10: invalid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %q\nwant prefix %q", err, tt.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	long := `model = "` + strings.Repeat("x", MaxQueryLen) + `"`
	deepParens := strings.Repeat("(", MaxDepth+1) + "online" + strings.Repeat(")", MaxDepth+1)
	deepNots := strings.Repeat("not ", MaxDepth+1) + "online"
	for name, q := range map[string]string{"length": long, "parentheses": deepParens, "nots": deepNots} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(q)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("err = %v, want ErrLimit", err)
			}
		})
	}
	ok := strings.Repeat("(", MaxDepth) + "online" + strings.Repeat(")", MaxDepth)
	if _, err := Parse(ok); err != nil {
		t.Errorf("depth %d refused: %v", MaxDepth, err)
	}
	if _, err := Parse(strings.Repeat("not ", MaxDepth) + "online"); err != nil {
		t.Errorf("%d nots refused: %v", MaxDepth, err)
	}
}

func TestEndpoints(t *testing.T) {
	s, err := Endpoints([]string{"b", "a", "b", `we"ird`})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), `endpoint in ("b", "a", "we\"ird")`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	if eps, ok := s.Explicit(); !ok || fmt.Sprint(eps) != `[b a we"ird]` {
		t.Errorf("Explicit = %q, %v", eps, ok)
	}
	if !s.Match(Device{Endpoint: "a"}) || s.Match(Device{Endpoint: "c"}) {
		t.Error("Match disagrees with the list")
	}
	again, err := Parse(s.String())
	if err != nil || again.String() != s.String() {
		t.Errorf("round trip: %v, %v", again, err)
	}
	if p, _ := Parse(`not endpoint in ("a")`); p != nil {
		if _, ok := p.Explicit(); ok {
			t.Error("a negated list is not explicit")
		}
	}

	many := make([]string, MaxEndpoints+1)
	for i := range many {
		many[i] = fmt.Sprintf("ep-%d", i)
	}
	if _, err := Endpoints(many[:MaxEndpoints]); err != nil {
		t.Errorf("%d endpoints refused: %v", MaxEndpoints, err)
	}
	for name, eps := range map[string][]string{"too many": many, "empty": nil, "blank": {"a", ""}, "utf8": {"\xff"}} {
		t.Run(name, func(t *testing.T) {
			if _, err := Endpoints(eps); err == nil {
				t.Fatal("accepted")
			} else if name == "too many" && !errors.Is(err, ErrLimit) {
				t.Errorf("err = %v, want ErrLimit", err)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.4.2", "1.4.2", 0},
		{"1.4.2", "1.4.10", -1},
		{"1.10", "1.9", 1},
		{"01.2", "1.2", 0},
		{"1.4", "1.4.0", -1},
		{"2", "10", -1},
		{"1.4.a", "1.4.b", -1},
		{"1.4.2-rc1", "1.4.2", 1}, // lexical: not semver pre-release order
		{"1.4.x", "1.4.2", 1},     // "x" > "2" byte-wise
		{"99999999999999999999999", "100000000000000000000000", -1},
		{"", "0", -1},
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			if got := CompareVersions(tt.a, tt.b); got != tt.want {
				t.Errorf("= %d, want %d", got, tt.want)
			}
			if got := CompareVersions(tt.b, tt.a); got != -tt.want {
				t.Errorf("reversed = %d, want %d", got, -tt.want)
			}
		})
	}
}
