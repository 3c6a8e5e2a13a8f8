package transfer

import (
	"fmt"
	"testing"
	"time"
)

// A device sends its token with each of an image's blocks: Parse computes the HMAC once and
// then knows the token (no MAC, so no allocation beyond the job ID it returns). Before, each
// block paid hmac.New and SHA-256 (a sixth of the server CPU per block in lwota bench pull).
// Retired secrets and expiry still apply: TestTokenRotation, TestTokens.
func TestParseRemembersVerifiedTokens(t *testing.T) {
	tk := NewTokens(testSecret, nil)
	tok, err := tk.Mint("job-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Parse(tok); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if job, err := tk.Parse(tok); err != nil || job != "job-1" {
			t.Fatalf("Parse = %q, %v", job, err)
		}
	})
	if allocs > 1 {
		t.Errorf("Parse of a verified token: %.0f allocations, want at most 1 (the job ID): the MAC is computed again", allocs)
	}
}

// The remembered tokens are bounded: past maxVerified the set starts again, and every token
// still parses.
func TestVerifiedTokensBounded(t *testing.T) {
	tk := NewTokens(testSecret, nil)
	var first string
	for i := range maxVerified + 10 {
		tok, err := tk.Mint(fmt.Sprintf("job-%d", i), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = tok
		}
		if _, err := tk.Parse(tok); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	set := tk.secrets.Load()
	set.mu.RLock()
	n := len(set.verified)
	set.mu.RUnlock()
	if n > maxVerified {
		t.Errorf("%d tokens remembered, want at most %d", n, maxVerified)
	}
	if job, err := tk.Parse(first); err != nil || job != "job-0" {
		t.Errorf("the first token after the set started again: %q, %v", job, err)
	}
}

// BenchmarkParseToken is the per-block token check of a download in progress (a token seen
// before), beside BenchmarkParseTokenFirst, the first block's full HMAC check.
func BenchmarkParseToken(b *testing.B) { benchParse(b, false) }

func BenchmarkParseTokenFirst(b *testing.B) { benchParse(b, true) }

// benchParse parses one token b.N times; first forgets the verified tokens before each.
func benchParse(b *testing.B, first bool) {
	tk := NewTokens(testSecret, nil)
	tok, err := tk.Mint("job-1", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if first {
			tk.SetSecrets(testSecret) // a new set: nothing verified yet
		}
		if _, err := tk.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}
