package webhooks_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/webhooks"
)

func TestSignVerify(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	body := []byte(`{"id":"wh_a.job.x.1","kind":"update_job"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := webhooks.Sign(secret, now.Unix(), body)
	// Known answer: HMAC-SHA256("0123...cdef", "1800000000." + body), computed independently with
	// `printf '%s' "1800000000.$body" | openssl dgst -sha256 -hmac "$secret"`.
	const want = "sha256=209612cca298c711392317f9d3b9f27489ebac450e1cd7091b191879962b41b6"
	if sig != want {
		t.Fatalf("Sign = %q, want %q", sig, want)
	}
	for _, tt := range []struct {
		name      string
		secret    string
		ts        string
		sig       string
		body      []byte
		tolerance time.Duration
		want      error
	}{
		{"valid", secret, "1800000000", sig, body, 5 * time.Minute, nil},
		{"valid without tolerance", secret, "1800000000", sig, body, 0, nil},
		{"wrong secret", "another secret of 32 bytes......", "1800000000", sig, body, 0, webhooks.ErrBadSignature},
		{"body changed", secret, "1800000000", sig, append([]byte(nil), append(body[:len(body)-1], ' ', '}')...), 0, webhooks.ErrBadSignature},
		{"timestamp changed", secret, "1800000001", sig, body, 0, webhooks.ErrBadSignature},
		{"timestamp not a number", secret, "yesterday", sig, body, 0, webhooks.ErrBadSignature},
		{"no prefix", secret, "1800000000", strings.TrimPrefix(sig, "sha256="), body, 0, webhooks.ErrBadSignature},
		{"empty signature", secret, "1800000000", "", body, 0, webhooks.ErrBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := webhooks.Verify(tt.secret, tt.ts, tt.sig, tt.body, now, tt.tolerance); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// A replay outside the tolerance is refused although the signature holds.
	if err := webhooks.Verify(secret, "1800000000", sig, body, now.Add(10*time.Minute), 5*time.Minute); !errors.Is(err, webhooks.ErrStale) {
		t.Fatalf("Verify of an old request = %v, want ErrStale", err)
	}
}

func TestBackoff(t *testing.T) {
	b := webhooks.Backoff{Base: time.Second, Max: time.Minute}
	for _, tt := range []struct {
		failed   int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999999, 999 * time.Millisecond, time.Second},
		{2, 0, time.Second, time.Second},
		{3, 0.5, 3 * time.Second, 3 * time.Second}, // 4 s: half fixed, half at random
		{7, 0, 30 * time.Second, 30 * time.Second}, // 64 s capped at 60
		{7, 0.999999, 59 * time.Second, time.Minute},
		{1000, 0.999999, 59 * time.Second, time.Minute}, // no overflow
	} {
		if got := b.Delay(tt.failed, tt.rnd); got < tt.min || got > tt.max {
			t.Errorf("Delay(%d, %v) = %s, want %s..%s", tt.failed, tt.rnd, got, tt.min, tt.max)
		}
	}
}

func TestNewSubscription(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		url    string
		kinds  []string
		secret string
		err    string // "" for valid
	}{
		{"https", "https://hooks.example.com/lwota?x=1", []string{"update_job"}, "", ""},
		{"http with port", "http://10.0.0.7:8080/hook", []string{"campaign", "registration"}, "", ""},
		{"ipv6", "http://[::1]:9/x", []string{"registration"}, "", ""},
		{"own secret", "https://h/x", []string{"campaign"}, strings.Repeat("s", 16), ""},
		{"empty", "", []string{"campaign"}, "", "url is required"},
		{"ftp", "ftp://h/x", []string{"campaign"}, "", "http:// or https://"},
		{"javascript", "javascript:alert(1)", []string{"campaign"}, "", "http:// or https://"},
		{"unix", "unix:///var/run/docker.sock", []string{"campaign"}, "", "http:// or https://"},
		{"no host", "https:///x", []string{"campaign"}, "", "no host"},
		{"port only", "https://:443/x", []string{"campaign"}, "", "no host"},
		{"userinfo", "https://user@h/x", []string{"campaign"}, "", "credentials"},
		{"fragment", "https://h/x#frag", []string{"campaign"}, "", "fragment"},
		{"too long", "https://h/" + strings.Repeat("a", webhooks.MaxURLLength), []string{"campaign"}, "", "longer"},
		{"bad escape", "https://h/%zz", []string{"campaign"}, "", "url"},
		{"no kinds", "https://h/x", nil, "", "at least one"},
		{"notifications are not stored", "https://h/x", []string{"notification"}, "", `"notification"`},
		{"request", "https://h/x", []string{"campaign", "request"}, "", `"request"`},
		{"case matters", "https://h/x", []string{"Campaign"}, "", `"Campaign"`},
		{"short secret", "https://h/x", []string{"campaign"}, "123", "secret"},
		{"long secret", "https://h/x", []string{"campaign"}, strings.Repeat("s", 257), "secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := webhooks.NewSubscription(tt.url, tt.kinds, tt.secret, true, "token:x", now)
			if tt.err != "" {
				if !errors.Is(err, webhooks.ErrInvalid) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(s.ID, "wh_") || s.URL != tt.url || len(s.Secret) < 16 || !s.CreatedAt.Equal(now) {
				t.Fatalf("subscription = %+v", s)
			}
			if tt.secret == "" && len(s.Secret) != 64 {
				t.Fatalf("generated secret %q, want 64 hex digits", s.Secret)
			}
		})
	}
	a, _ := webhooks.NewSubscription("https://h/x", []string{"update_job", "campaign", "update_job"}, "", true, "", now)
	b, _ := webhooks.NewSubscription("https://h/x", []string{"campaign"}, "", true, "", now)
	if strings.Join(a.Kinds, ",") != "campaign,update_job" || a.ID == b.ID || a.Secret == b.Secret {
		t.Fatalf("a = %+v, b = %+v: kinds sorted without duplicates, ids and secrets unique", a, b)
	}
}
