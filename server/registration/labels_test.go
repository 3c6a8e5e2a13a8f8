package registration_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/registration"
)

func TestValidateLabels(t *testing.T) {
	many := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name    string
		labels  map[string]string
		wantErr string // "" when valid; else a part of the message
	}{
		{"none", nil, ""},
		{"empty", map[string]string{}, ""},
		{"typical", map[string]string{"cell": "c17", "region": "eu", "hw.rev": "B-2", "batch_no": "2026-11"}, ""},
		{"empty value", map[string]string{"flag": ""}, ""},
		{"any UTF-8 value", map[string]string{"site": "Zürich, 'Halle 3' 50%"}, ""},
		{"longest key and value", map[string]string{strings.Repeat("a", 63): strings.Repeat("é", 128)}, ""},
		{"64 labels", many(64), ""},
		{"65 labels", many(65), "65 labels, at most 64"},
		{"empty key", map[string]string{"": "x"}, `key "" must be 1 to 63`},
		{"key too long", map[string]string{strings.Repeat("a", 64): "x"}, "must be 1 to 63"},
		{"upper case", map[string]string{"Cell": "x"}, `key "Cell" may only hold`},
		{"slash", map[string]string{"a/b": "x"}, "may only hold"},
		{"value too long", map[string]string{"k": strings.Repeat("v", 257)}, "257 bytes, at most 256"},
		{"value not UTF-8", map[string]string{"k": "\xc3"}, "not valid UTF-8"},
		{"first bad key in order", map[string]string{"B": "x", "A": "x"}, `key "A"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := registration.ValidateLabels(tc.labels)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ValidateLabels: %v", err)
			case tc.wantErr != "" && (!errors.Is(err, registration.ErrInvalidLabels) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ValidateLabels: err = %v, want ErrInvalidLabels saying %q", err, tc.wantErr)
			}
		})
	}
}
