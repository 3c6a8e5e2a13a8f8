package linkformat

import (
	"reflect"
	"testing"
)

// FuzzDecode: Parse never panics, and what it accepts formats back into text that
// parses to the same links.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		links, err := Parse(data)
		if err != nil {
			return
		}
		out := Format(links)
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format) of %q: %v", out, err)
		}
		if !reflect.DeepEqual(again, links) {
			t.Fatalf("round trip differs:\n got %#v\nwant %#v", again, links)
		}
	})
}
