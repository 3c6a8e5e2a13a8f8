package keyring_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/credentials/keyring"
)

// FuzzParseClusterKey: whatever the flag or environment holds, the cluster key is either exactly
// 32 bytes whose hex is the input (trimmed, any case), or an ErrInvalid error.
func FuzzParseClusterKey(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(" " + strings.Repeat("0F", 32) + "\n")
	f.Add(strings.Repeat("a", 63))
	f.Fuzz(func(t *testing.T, s string) {
		key, err := keyring.ParseClusterKey(s)
		if err != nil {
			if key != nil {
				t.Fatalf("%q: key %x with error %v", s, key, err)
			}
			return
		}
		if len(key) != keyring.KeyLen || !strings.EqualFold(hex.EncodeToString(key), strings.TrimSpace(s)) {
			t.Fatalf("%q: key %x", s, key)
		}
	})
}
