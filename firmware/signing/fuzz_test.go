package signing

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzNewVerifier from openssl signatures made with the fuzz keys")

// fuzzKeys are fixed, so the seed corpus holds signatures that verify.
func fuzzKeys(t testing.TB) (ed25519.PrivateKey, *ecdsa.PrivateKey, []*Key) {
	t.Helper()
	edPriv := ed25519.NewKeyFromSeed([]byte("lwota fuzz ed25519 key seed 0001"))
	d := sha256.Sum256([]byte("lwota fuzz ecdsa p-256 scalar"))
	ecPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	var keys []*Key
	for _, pub := range []any{edPriv.Public(), ecPriv.Public()} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKey(fmt.Sprintf("%T", pub), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return edPriv, ecPriv, keys
}

// FuzzNewVerifier feeds arbitrary signatures and messages to the streaming verifier and checks
// it agrees with crypto/ed25519 and crypto/ecdsa on the whole message.
func FuzzNewVerifier(f *testing.F) {
	edPriv, ecPriv, keys := fuzzKeys(f)
	edPub, ecPub := edPriv.Public().(ed25519.PublicKey), &ecPriv.PublicKey
	f.Fuzz(func(t *testing.T, sig, msg []byte) {
		var want bool
		if len(sig) == ed25519.SignatureSize {
			want = ed25519.Verify(edPub, msg, sig)
		} else {
			sum := sha256.Sum256(msg)
			want = ecdsa.VerifyASN1(ecPub, sum[:], sig)
		}
		v, err := NewVerifier(sig, keys)
		got := false
		if err == nil {
			half := len(msg) / 2
			v.Write(msg[:half])
			v.Write(msg[half:])
			_, err = v.Verify()
			got = err == nil
		}
		if got != want {
			t.Fatalf("streaming verifier = %v (%v), stdlib = %v\nsig %x\nmsg %x", got, err, want, sig, msg)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus with -update-seeds: signatures by openssl with
// the fuzz keys, and their broken variants.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		return
	}
	edPriv, ecPriv, _ := fuzzKeys(t)
	dir := t.TempDir()
	privPEM := func(name string, k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	msg := []byte("lwota firmware 1.2.3+4\x00\x01\x02\xff")
	msgPath := writeFile(t, "fw.bin", msg)
	sigPath := filepath.Join(dir, "fw.sig")
	openssl(t, dir, "pkeyutl", "-sign", "-rawin", "-inkey", privPEM("ed.pem", edPriv), "-in", msgPath, "-out", sigPath)
	edSig, _ := os.ReadFile(sigPath)
	openssl(t, dir, "dgst", "-sha256", "-sign", privPEM("ec.pem", ecPriv), "-out", sigPath, msgPath)
	ecSig, _ := os.ReadFile(sigPath)
	sPlusL, _ := addOrder(edSig[32:])

	seeds := map[string][2][]byte{
		"ed25519-openssl":      {edSig, msg},
		"ecdsa-openssl":        {ecSig, msg},
		"ed25519-tampered-msg": {edSig, append([]byte("X"), msg[1:]...)},
		"ed25519-truncated":    {edSig[:63], msg},
		"ed25519-s-plus-l":     {append(append([]byte(nil), edSig[:32]...), sPlusL...), msg},
		"ecdsa-truncated":      {ecSig[:len(ecSig)-3], msg},
		"ecdsa-trailing-byte":  {append(append([]byte(nil), ecSig...), 0), msg},
		"ecdsa-empty-sequence": {{0x30, 0x00}, msg},
		"ecdsa-zero-integers":  {{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00}, msg},
		"empty-signature":      {nil, nil},
		"garbage":              {[]byte("definitely not a signature"), msg},
	}
	out := filepath.Join("testdata", "fuzz", "FuzzNewVerifier")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", s[0], s[1])
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
