package transfer

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Token layout (before base64url without padding):
//
//	version (1) | expiry, unix seconds, big endian (4) | jobID (1..16) | HMAC-SHA256(secret, all before)[:16]
const (
	tokenVersion  = 1
	tokenHeader   = 1 + 4
	tokenMACSize  = 16
	MaxJobIDLen   = 16 // longest job ID a token can carry
	minSecretSize = 16
	maxTokenBytes = tokenHeader + MaxJobIDLen + tokenMACSize
	// MaxTokenLen is the longest encoded token: 50 characters.
	MaxTokenLen = (maxTokenBytes*8 + 5) / 6
)

// Tokens mints and checks the stateless download tokens of firmware URIs: each names one
// update job, expires, and is authenticated by an HMAC, so nothing is stored per token.
// It is safe for concurrent use.
type Tokens struct {
	secrets atomic.Pointer[secretSet]
	now     func() time.Time
	refresh func() bool // nil: none; see SetRefresh
}

// secretSet is the secrets in use, the minting one first, then older ones still verified, and
// the tokens they verified already. A device sends its token with every block request (a
// 1 MiB image at 1 KiB blocks: 1024 times), and its HMAC was a sixth of the server's CPU per
// block in lwota bench pull; the set remembers the tokens it verified, so the MAC is computed
// once per token and secret set. New secrets come with a new, empty set: a token of a secret
// no longer accepted is never found.
type secretSet struct {
	keys [][]byte

	mu       sync.RWMutex
	verified map[string]struct{} // exact spellings (the encoding is strict: one per token)
}

// maxVerified bounds secretSet.verified: at the bound it starts again empty (a fleet pulling
// more images at once than this only loses the shortcut, never a download).
const maxVerified = 4096

func (s *secretSet) known(token string) bool {
	s.mu.RLock()
	_, ok := s.verified[token]
	s.mu.RUnlock()
	return ok
}

func (s *secretSet) remember(token string) {
	s.mu.Lock()
	if len(s.verified) >= maxVerified {
		clear(s.verified)
	}
	s.verified[token] = struct{}{}
	s.mu.Unlock()
}

// NewTokens returns a token minter keyed by secret (at least 16 bytes; 32 random bytes are
// recommended). A nil now is time.Now. Every lwota instance serving the same devices must use
// the same secret; replacing it without keeping the old one accepted (SetSecrets) invalidates
// every outstanding token.
func NewTokens(secret []byte, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	t := &Tokens{now: now}
	t.SetSecrets(secret)
	return t
}

// SetSecrets replaces the secrets: active mints from now on; active and accepted verify. A
// rotation keeps the previous secret accepted until every token minted with it has expired, so
// no device's download breaks. Secrets shorter than 16 bytes mint and verify nothing.
func (t *Tokens) SetSecrets(active []byte, accepted ...[]byte) {
	all := make([][]byte, 0, 1+len(accepted))
	for _, s := range append([][]byte{active}, accepted...) {
		all = append(all, append([]byte(nil), s...))
	}
	t.secrets.Store(&secretSet{keys: all, verified: make(map[string]struct{})})
}

// Mint returns a token for jobID (1 to 16 bytes) valid for ttl (rounded up to whole seconds).
func (t *Tokens) Mint(jobID string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("transfer: mint: ttl %v is not positive", ttl)
	}
	return t.MintUntil(jobID, t.now().Add(ttl+time.Second-1))
}

// SetRefresh sets, before the Tokens are used, a function Parse calls when no secret verifies
// a token: it reloads the secrets (SetSecrets) and reports whether they changed, and Parse then
// checks the token once more. A cluster node uses it to learn at once of a rotation made on
// another node. refresh must bound its own rate: forged tokens call it too.
func (t *Tokens) SetRefresh(refresh func() bool) { t.refresh = refresh }

// MintUntil returns a token for jobID that expires at until (truncated to the second). The
// same job and expiry always give the same token, so a URI minted again after a restart is
// the URI the device is already fetching, and the device can resume it.
func (t *Tokens) MintUntil(jobID string, until time.Time) (string, error) {
	secret := t.secrets.Load().keys[0]
	if len(secret) < minSecretSize {
		return "", fmt.Errorf("transfer: mint: secret shorter than %d bytes", minSecretSize)
	}
	if len(jobID) == 0 || len(jobID) > MaxJobIDLen {
		return "", fmt.Errorf("transfer: mint: job id %q: length must be 1 to %d bytes", jobID, MaxJobIDLen)
	}
	exp := until.Unix()
	if !until.After(t.now()) {
		return "", fmt.Errorf("transfer: mint: expiry %s is not in the future", until.Format(time.RFC3339))
	}
	if exp > 1<<32-1 {
		return "", fmt.Errorf("transfer: mint: expiry %d beyond 2106", exp)
	}
	var b [maxTokenBytes]byte
	buf := b[:0]
	buf = append(buf, tokenVersion)
	buf = binary.BigEndian.AppendUint32(buf, uint32(exp))
	buf = append(buf, jobID...)
	buf = append(buf, mac(secret, buf)...)
	return tokenEncoding.EncodeToString(buf), nil
}

// Parse checks token and returns its job ID. A token that does not decode or whose MAC does
// not verify is ErrInvalid; an authentic one past its expiry is ErrExpired.
func (t *Tokens) Parse(token string) (string, error) {
	if len(token) > MaxTokenLen {
		return "", ErrInvalid
	}
	var (
		b  [maxTokenBytes + 3]byte
		in [MaxTokenLen]byte // a copy on the stack: []byte(token) would be one more allocation per block
	)
	n, err := tokenEncoding.Decode(b[:], in[:copy(in[:], token)])
	if err != nil || n < tokenHeader+1+tokenMACSize || n > maxTokenBytes || b[0] != tokenVersion {
		return "", ErrInvalid
	}
	body, sum := b[:n-tokenMACSize], b[n-tokenMACSize:n]
	if set := t.secrets.Load(); !set.known(token) {
		// The MAC's hash takes body through an interface, which would move b to the heap for
		// every call, a known token's too: it gets a copy.
		body := bytes.Clone(body)
		if !set.verify(body, sum) {
			if t.refresh == nil || !t.refresh() {
				return "", ErrInvalid
			}
			if set = t.secrets.Load(); !set.verify(body, sum) {
				return "", ErrInvalid
			}
		}
		set.remember(token) // in the set that verified it: never in one that replaced it
	}
	exp := int64(binary.BigEndian.Uint32(body[1:5]))
	if t.now().Unix() >= exp {
		return "", ErrExpired
	}
	return string(body[tokenHeader:]), nil
}

// verify reports whether sum is body's MAC under any of the set's secrets.
func (s *secretSet) verify(body, sum []byte) bool {
	for _, secret := range s.keys {
		if len(secret) >= minSecretSize && hmac.Equal(sum, mac(secret, body)) {
			return true
		}
	}
	return false
}

func mac(secret, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	return h.Sum(nil)[:tokenMACSize]
}

// tokenEncoding is base64url without padding, strict so that one token has one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()
