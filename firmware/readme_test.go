package firmware_test

import (
	"bytes"
	"os"
	"testing"
)

// TestREADME keeps the package README's sections.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"## Name", "## Behaviour", "## Configuration", "## Metrics", "## Examples"} {
		if !bytes.Contains(b, []byte("\n"+h+"\n")) {
			t.Errorf("README.md lacks section %q", h)
		}
	}
}
