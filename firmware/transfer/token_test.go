package transfer

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestTokens(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	tk := NewTokens(testSecret, clk.now)
	tok, err := tk.Mint("job-0123456789ab", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != MaxTokenLen {
		t.Errorf("token %q is %d characters, want %d", tok, len(tok), MaxTokenLen)
	}
	if job, err := tk.Parse(tok); err != nil || job != "job-0123456789ab" {
		t.Fatalf("Parse = %q, %v", job, err)
	}
	clk.add(59 * time.Second)
	if _, err := tk.Parse(tok); err != nil {
		t.Fatalf("at 59 s: %v", err)
	}
	clk.add(time.Second)
	if _, err := tk.Parse(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("at 60 s: err = %v, want ErrExpired", err)
	}
	if _, err := NewTokens([]byte("another secret, also 32 bytes.."), clk.now).Parse(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other secret: err = %v, want ErrInvalid", err)
	}

	// The wire format, golden: version 1, expiry 1800003600, "job1", the MAC (testdata seed).
	clk.t = time.Unix(1_800_000_000, 0)
	if job, err := tk.Parse("AWtJ4BBqb2IxlRG7vFYaT1hFG8SHBdBTRg"); err != nil || job != "job1" {
		t.Fatalf("golden token: %q, %v", job, err)
	}

	tests := []struct {
		name   string
		secret []byte
		job    string
		ttl    time.Duration
	}{
		{"empty job", testSecret, "", time.Minute},
		{"long job", testSecret, strings.Repeat("j", 17), time.Minute},
		{"zero ttl", testSecret, "j", 0},
		{"short secret", []byte("short"), "j", time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewTokens(tc.secret, nil).Mint(tc.job, tc.ttl); err == nil {
				t.Fatal("Mint succeeded")
			}
		})
	}
}

func TestTokenTampering(t *testing.T) {
	tk := NewTokens(testSecret, nil)
	tok, err := tk.Mint("job1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			if _, err := tk.Parse(base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("byte %d bit %d flipped: err = %v", i, bit, err)
			}
		}
	}
	for _, bad := range []string{"", "A", tok[:len(tok)-1], tok + "A", tok + "=", strings.Repeat("A", 200), "!!!!"} {
		if _, err := tk.Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// FuzzParseToken: Parse never panics, and what it accepts re-mints to a token naming the same job.
func FuzzParseToken(f *testing.F) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	tk := NewTokens(testSecret, clk.now)
	for _, job := range []string{"j", "job1", "0123456789abcdef"} {
		tok, err := tk.Mint(job, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		job, err := tk.Parse(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("Parse(%q): unexpected error %v", tok, err)
			}
			return
		}
		if len(job) == 0 || len(job) > MaxJobIDLen {
			t.Fatalf("Parse(%q) accepted job %q", tok, job)
		}
	})
}

// The committed seed corpus stays in sync with the tokens minted above (testSecret, fixed clock).
func TestFuzzCorpusPresent(t *testing.T) {
	ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzParseToken"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("testdata/fuzz/FuzzParseToken: %d seeds, %v", len(ents), err)
	}
}

// A token minted again for the same job and expiry is the same token: a device told the URI
// again after a restart resumes the download it had started.
func TestMintUntilIsStable(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	tk := NewTokens(testSecret, clk.now)
	until := clk.t.Add(time.Hour)
	a, err := tk.MintUntil("job1", until)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(10 * time.Minute)
	b, err := tk.MintUntil("job1", until)
	if err != nil || a != b {
		t.Fatalf("minted again: %q, %v; want %q", b, err, a)
	}
	if c, _ := tk.MintUntil("job2", until); c == a {
		t.Fatal("another job got the same token")
	}
	if _, err := tk.MintUntil("job1", clk.t.Add(-time.Second)); err == nil {
		t.Fatal("an expiry in the past was minted")
	}
}

// A rotation: the new secret mints, the old one still verifies the tokens it minted until they
// expire, and once it is dropped its tokens are ErrInvalid.
func TestTokenRotation(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	oldSecret, newSecret := testSecret, []byte("fedcba9876543210fedcba9876543210")
	tk := NewTokens(oldSecret, clk.now)
	old, err := tk.Mint("job-old", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tk.SetSecrets(newSecret, oldSecret)
	fresh, err := tk.Mint("job-old", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old {
		t.Fatal("the rotated secret minted the old token")
	}
	if _, err := NewTokens(newSecret, clk.now).Parse(fresh); err != nil {
		t.Fatalf("the new token is not the new secret's: %v", err)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if job, err := tk.Parse(tok); err != nil || job != "job-old" {
			t.Errorf("%s token after the rotation: %q, %v", name, job, err)
		}
	}
	tk.SetSecrets(newSecret) // the old secret retired
	if _, err := tk.Parse(old); !errors.Is(err, ErrInvalid) {
		t.Errorf("old token after its secret was retired: %v, want ErrInvalid", err)
	}
	if _, err := tk.Parse(fresh); err != nil {
		t.Errorf("new token after the retirement: %v", err)
	}
	// A short accepted secret verifies nothing (and does not break the others).
	tk.SetSecrets(newSecret, []byte("short"))
	if _, err := tk.Parse(fresh); err != nil {
		t.Errorf("with a short accepted secret: %v", err)
	}
}

// A token minted with a secret this node does not hold yet (rotated on another node) makes
// Parse call the refresh hook once and check again; a hook that finds nothing new leaves it
// ErrInvalid.
func TestTokenRefresh(t *testing.T) {
	newSecret := []byte("fedcba9876543210fedcba9876543210")
	fresh, err := NewTokens(newSecret, nil).Mint("job-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tk := NewTokens(testSecret, nil)
	calls := 0
	found := false
	tk.SetRefresh(func() bool {
		calls++
		if !found {
			return false
		}
		tk.SetSecrets(newSecret, testSecret)
		return true
	})
	if _, err := tk.Parse(fresh); !errors.Is(err, ErrInvalid) || calls != 1 {
		t.Fatalf("nothing new: err %v after %d refreshes, want ErrInvalid after 1", err, calls)
	}
	found = true
	if job, err := tk.Parse(fresh); err != nil || job != "job-1" || calls != 2 {
		t.Fatalf("after the refresh: %q, %v (%d refreshes)", job, err, calls)
	}
	if _, err := tk.Parse(fresh); err != nil || calls != 2 {
		t.Fatalf("a known secret refreshed again: %v, %d refreshes", err, calls)
	}
}
