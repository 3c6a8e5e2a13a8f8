package credentials

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// MaxSecretLen bounds a sealed secret (a PKCS#8 private key of RSA-4096 is about 2.4 kB).
const MaxSecretLen = 8192

// secretData binds a sealed secret to its endpoint and label. Its tag differs from the PSKs'
// ("lwota-psk-v1"), so a sealed secret never opens as a PSK row, nor a PSK as a secret.
func secretData(endpoint, label string) []byte {
	var b bytes.Buffer
	b.WriteString("lwota-secret-v1")
	for _, s := range []string{endpoint, label} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	return b.Bytes()
}

// SealSecret seals a secret other than a PSK (a device's private key, which the Bootstrap Server
// writes to it) for endpoint under label, with the active server key; the caller stores it. It
// is not a credential: the DM listener never looks it up.
func (m *Manager) SealSecret(endpoint, label string, secret []byte) (*Sealed, error) {
	switch {
	case endpoint == "" || len(endpoint) > MaxEndpointLen || !utf8.ValidString(endpoint):
		return nil, fmt.Errorf("%w: endpoint must be 1 to %d bytes of UTF-8", ErrInvalid, MaxEndpointLen)
	case label == "":
		return nil, fmt.Errorf("%w: a secret needs a label", ErrInvalid)
	case len(secret) == 0 || len(secret) > MaxSecretLen:
		return nil, fmt.Errorf("%w: secret must be 1 to %d bytes", ErrInvalid, MaxSecretLen)
	}
	ks := m.keys.Load()
	aead := ks.aeads[ks.active]
	s, err := m.seal(endpoint, label, nil, m.now().UTC(), m.now().UTC())
	if err != nil {
		return nil, err
	}
	s.SealedKey = aead.Seal(nil, s.Nonce, secret, secretData(endpoint, label))
	s.KeyID = ks.active
	return s, nil
}

// OpenSecret opens a secret SealSecret sealed.
func (m *Manager) OpenSecret(ctx context.Context, s *Sealed) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("credentials: no sealed secret: %w", ErrNotFound)
	}
	aead, ok := m.keys.Load().aeads[s.KeyID]
	if !ok && m.refresh != nil && m.refresh(ctx) {
		aead, ok = m.keys.Load().aeads[s.KeyID]
	}
	if !ok {
		return nil, fmt.Errorf("credentials: secret of %s: sealed with server key %d, which this node does not hold", s.Endpoint, s.KeyID)
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("credentials: secret of %s: bad nonce", s.Endpoint)
	}
	out, err := aead.Open(nil, s.Nonce, s.SealedKey, secretData(s.Endpoint, s.Identity))
	if err != nil {
		return nil, fmt.Errorf("credentials: secret of %s: cannot open it (wrong server key or moved): %w", s.Endpoint, err)
	}
	return out, nil
}
