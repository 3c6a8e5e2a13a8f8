package selector

import (
	"errors"
	"testing"
)

// FuzzParse checks that no input panics the parser, and that every selector it accepts prints a
// canonical form that parses back to the same canonical form (unless the canonical form has
// grown past MaxQueryLen: spacing and escapes can lengthen a query that was near the limit).
func FuzzParse(f *testing.F) {
	for _, q := range []string{
		`model = "X100"`,
		`online and (labels.region = "eu" or not has labels.cell)`,
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		s, err := Parse(q)
		if err != nil {
			return
		}
		canon := s.String()
		again, err := Parse(canon)
		if err != nil {
			if len(canon) > MaxQueryLen && errors.Is(err, ErrLimit) {
				return
			}
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", q, canon, err)
		}
		if got := again.String(); got != canon {
			t.Fatalf("round trip of %q: %q, then %q", q, canon, got)
		}
		d := Device{Endpoint: "e", Model: "X100", FirmwareVersion: "1.4.2", Labels: map[string]string{"region": "eu"}, Online: true}
		if s.Match(d) != again.Match(d) {
			t.Fatalf("%q and its canonical form %q disagree", q, canon)
		}
	})
}
