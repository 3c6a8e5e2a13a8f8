package signing

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParsePublicKey(t *testing.T) {
	tests := []struct {
		keyType string
		want    Algorithm
		wantErr string // substring; empty means success
	}{
		{keyType: "ed25519", want: Ed25519},
		{keyType: "p256", want: ECDSAP256SHA256},
		{keyType: "p256-sec1", want: ECDSAP256SHA256},
		{keyType: "p384", wantErr: "only P-256"},
		{keyType: "secp256k1", wantErr: "unsupported elliptic curve"},
		{keyType: "p256-params", wantErr: "unsupported public key"},
		{keyType: "rsa", wantErr: "*rsa.PublicKey keys are not accepted"},
		{keyType: "ed448", wantErr: "unsupported public key"},
		{keyType: "x25519", wantErr: "*ecdh.PublicKey keys are not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.keyType, func(t *testing.T) {
			k := genKey(t, tt.keyType)
			alg, pub, fp, err := ParsePublicKey(k.pubPEM)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrUnsupportedKey) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrUnsupportedKey mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if alg != tt.want {
				t.Errorf("alg = %s, want %s", alg, tt.want)
			}
			switch pub.(type) {
			case ed25519.PublicKey, *ecdsa.PublicKey:
			default:
				t.Errorf("pub is %T", pub)
			}
			sum := sha256.Sum256(k.pubDER) // the fingerprint is over openssl's own DER
			if want := hex.EncodeToString(sum[:]); fp != want {
				t.Errorf("fingerprint = %s, want %s", fp, want)
			}
		})
	}
}

func TestParsePublicKeyRefuses(t *testing.T) {
	ed := genKey(t, "ed25519")
	privPEM, err := os.ReadFile(ed.priv)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := os.ReadFile(genKey(t, "p256-sec1").priv)
	if err != nil {
		t.Fatal(err)
	}
	// The identity point, a small-order key: with it "signatures" verify without a private key.
	identity := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 0x01}, make([]byte, 31)...)
	// y = 2 is not on the curve.
	offCurve := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 0x02}, make([]byte, 31)...)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "no PEM block"},
		{"garbage", []byte("hello, this is not a key"), "no PEM block"},
		{"pkcs8 private key", privPEM, `"PRIVATE KEY" block: upload the public half`},
		{"sec1 private key", sec1, `"EC PRIVATE KEY" block`},
		{"certificate block", pemOf("CERTIFICATE", ed.pubDER), `want "PUBLIC KEY"`},
		{"two blocks", append(append([]byte(nil), ed.pubPEM...), ed.pubPEM...), "more than one PEM block"},
		{"trailing text", append(append([]byte(nil), ed.pubPEM...), "junk"...), "data after the PEM block"},
		{"bad DER", pemOf("PUBLIC KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x01}), "unsupported public key"},
		{"truncated DER", pemOf("PUBLIC KEY", ed.pubDER[:len(ed.pubDER)-1]), "unsupported public key"},
		{"small-order ed25519", pemOf("PUBLIC KEY", identity), "small order"},
		{"ed25519 off the curve", pemOf("PUBLIC KEY", offCurve), "not a curve point"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := ParsePublicKey(tt.in)
			if !errors.Is(err, ErrUnsupportedKey) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrUnsupportedKey mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	k := genKey(t, "p256")
	now := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	// Windows line endings and surrounding blank lines do not change the key.
	crlf := "\r\n" + strings.ReplaceAll(string(k.pubPEM), "\n", "\r\n") + "\r\n"
	key, err := NewKey("  release 2025  ", []byte(crlf), now)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(k.pubDER)
	fp := hex.EncodeToString(sum[:])
	if key.Fingerprint != fp || key.ID != fp[:16] || len(key.ID) != 16 {
		t.Errorf("ID %s, fingerprint %s; want %s", key.ID, key.Fingerprint, fp)
	}
	if key.Name != "release 2025" || key.Algorithm != ECDSAP256SHA256 || !key.CreatedAt.Equal(now) || key.Revoked() {
		t.Errorf("key = %+v", key)
	}
	if key.PublicKeyPEM != string(k.pubPEM) {
		t.Errorf("PublicKeyPEM is not the canonical PEM:\n%s\nwant\n%s", key.PublicKeyPEM, k.pubPEM)
	}

	if _, err := NewKey(" ", k.pubPEM, now); err == nil || !strings.Contains(err.Error(), "name is empty") {
		t.Errorf("empty name: err = %v", err)
	}
	_, err = NewKey("rsa", genKey(t, "rsa").pubPEM, now)
	if !errors.Is(err, ErrUnsupportedKey) || !strings.HasPrefix(err.Error(), `key "rsa": signing: unsupported public key`) {
		t.Errorf("rsa: err = %v", err)
	}
}
