package signing

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestVerifier(t *testing.T) {
	image := make([]byte, 100<<10+7)
	rand.NewChaCha8([32]byte{1}).Read(image)
	path := writeFile(t, "fw.bin", image)

	// Two keys per algorithm, both ECDSA key formats openssl writes.
	ssl := map[string]*sslKey{
		"edA": genKey(t, "ed25519"),
		"edB": genKey(t, "ed25519"),
		"ecA": genKey(t, "p256"),
		"ecB": genKey(t, "p256-sec1"),
	}
	keys := map[string]*Key{}
	sigs := map[string][]byte{}
	for name, k := range ssl {
		keys[name] = k.key(t, name)
		sigs[name] = k.sign(t, path)
	}
	if len(sigs["edA"]) != 64 || sigs["ecA"][0] != 0x30 {
		t.Fatalf("openssl signature forms: ed25519 %d bytes, ecdsa starts %#x", len(sigs["edA"]), sigs["ecA"][0])
	}
	revoked := func(name string) *Key {
		k := *keys[name]
		k.RevokedAt = time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
		return &k
	}
	flip := func(b []byte, i int) []byte {
		b = append([]byte(nil), b...)
		b[i] ^= 0x01
		return b
	}

	tests := []struct {
		name    string
		sig     []byte
		trusted []*Key
		image   []byte // nil: the signed image
		wantKey string
		wantErr error
	}{
		{name: "ed25519", sig: sigs["edA"], trusted: []*Key{keys["edA"]}, wantKey: "edA"},
		{name: "ecdsa pkcs8 key", sig: sigs["ecA"], trusted: []*Key{keys["ecA"]}, wantKey: "ecA"},
		{name: "ecdsa sec1 key", sig: sigs["ecB"], trusted: []*Key{keys["ecB"]}, wantKey: "ecB"},
		{name: "ed25519 among many keys", sig: sigs["edB"], trusted: []*Key{keys["ecA"], keys["edA"], keys["ecB"], keys["edB"]}, wantKey: "edB"},
		{name: "ecdsa among many keys", sig: sigs["ecB"], trusted: []*Key{keys["edA"], keys["ecA"], keys["edB"], keys["ecB"]}, wantKey: "ecB"},
		{name: "ed25519 tampered image", sig: sigs["edA"], trusted: []*Key{keys["edA"]}, image: flip(image, 5000), wantErr: ErrBadSignature},
		{name: "ecdsa tampered image", sig: sigs["ecA"], trusted: []*Key{keys["ecA"]}, image: flip(image, len(image)-1), wantErr: ErrBadSignature},
		{name: "ed25519 image with a byte more", sig: sigs["edA"], trusted: []*Key{keys["edA"]}, image: append(image[:len(image):len(image)], 0), wantErr: ErrBadSignature},
		{name: "ecdsa image with a byte less", sig: sigs["ecA"], trusted: []*Key{keys["ecA"]}, image: image[:len(image)-1], wantErr: ErrBadSignature},
		{name: "ed25519 by another key", sig: sigs["edB"], trusted: []*Key{keys["edA"]}, wantErr: ErrBadSignature},
		{name: "ecdsa by another key", sig: sigs["ecB"], trusted: []*Key{keys["ecA"]}, wantErr: ErrBadSignature},
		{name: "ed25519 tampered R", sig: flip(sigs["edA"], 3), trusted: []*Key{keys["edA"]}, wantErr: ErrBadSignature},
		{name: "ed25519 tampered S", sig: flip(sigs["edA"], 40), trusted: []*Key{keys["edA"]}, wantErr: ErrBadSignature},
		{name: "ecdsa tampered s", sig: flip(sigs["ecA"], len(sigs["ecA"])-1), trusted: []*Key{keys["ecA"]}, wantErr: ErrBadSignature},
		{name: "ed25519 revoked key", sig: sigs["edA"], trusted: []*Key{revoked("edA")}, wantErr: ErrNoKey},
		{name: "ecdsa revoked key", sig: sigs["ecA"], trusted: []*Key{revoked("ecA"), keys["edA"]}, wantErr: ErrNoKey},
		{name: "revoked signer, another key trusted", sig: sigs["edA"], trusted: []*Key{revoked("edA"), keys["edB"]}, wantErr: ErrBadSignature},
		{name: "ed25519 signature, ecdsa keys only", sig: sigs["edA"], trusted: []*Key{keys["ecA"], keys["ecB"]}, wantErr: ErrNoKey},
		{name: "ecdsa signature, ed25519 keys only", sig: sigs["ecA"], trusted: []*Key{keys["edA"], keys["edB"]}, wantErr: ErrNoKey},
		{name: "no keys", sig: sigs["edA"], wantErr: ErrNoKey},
		{name: "ed25519 truncated", sig: sigs["edA"][:63], trusted: []*Key{keys["edA"]}, wantErr: ErrMalformedSignature},
		{name: "ecdsa truncated", sig: sigs["ecA"][:len(sigs["ecA"])-1], trusted: []*Key{keys["ecA"]}, wantErr: ErrMalformedSignature},
		{name: "ecdsa with trailing byte", sig: append(sigs["ecA"][:len(sigs["ecA"]):len(sigs["ecA"])], 0), trusted: []*Key{keys["ecA"]}, wantErr: ErrMalformedSignature},
		{name: "empty", sig: nil, trusted: []*Key{keys["edA"]}, wantErr: ErrMalformedSignature},
		{name: "garbage", sig: []byte("not a signature at all"), trusted: []*Key{keys["edA"], keys["ecA"]}, wantErr: ErrMalformedSignature},
		{name: "base64 text instead of bytes", sig: []byte("MEUCIQDx1pJ3g3Z4q2rT5vW0yXhT7GJm"), trusted: []*Key{keys["ecA"]}, wantErr: ErrMalformedSignature},
		{name: "ed25519 S not below l", sig: append(sigs["edA"][:32:32], bytes.Repeat([]byte{0xff}, 32)...), trusted: []*Key{keys["edA"]}, wantErr: ErrMalformedSignature},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 4093, len(image) + 1} {
			if chunk == 1 && tt.wantErr != nil {
				continue // byte-at-a-time is slow under -race; the good cases cover it
			}
			data := tt.image
			if data == nil {
				data = image
			}
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, chunk), func(t *testing.T) {
				v, err := NewVerifier(tt.sig, tt.trusted)
				if err == nil {
					writeChunks(t, v, data, chunk)
					var k *Key
					k, err = v.Verify()
					if err == nil && k.Name != tt.wantKey {
						t.Fatalf("verified by %s, want %s", k.Name, tt.wantKey)
					}
				}
				if tt.wantErr == nil && err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("chunk %d: err = %v, want %v", chunk, err, tt.wantErr)
				}
			})
		}
	}
}

func writeChunks(t *testing.T, w io.Writer, data []byte, chunk int) {
	t.Helper()
	for len(data) > 0 {
		n := min(chunk, len(data))
		if m, err := w.Write(data[:n]); m != n || err != nil {
			t.Fatalf("Write = %d, %v", m, err)
		}
		data = data[n:]
	}
}

func TestVerifierWriteAfterVerify(t *testing.T) {
	k := genKey(t, "ed25519")
	path := writeFile(t, "fw.bin", []byte("firmware"))
	v, err := NewVerifier(k.sign(t, path), []*Key{k.key(t, "k")})
	if err != nil {
		t.Fatal(err)
	}
	v.Write([]byte("firmware"))
	if _, err := v.Verify(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write([]byte("x")); err == nil {
		t.Fatal("Write after Verify succeeded")
	}
	if _, err := v.Verify(); err != nil { // Verify again gives the same answer
		t.Fatal(err)
	}
}

// TestVerifierBoundedMemory streams a 50 MiB image, signed by openssl, through the verifier and
// checks that the process allocated a small fraction of it: the image is never buffered.
func TestVerifierBoundedMemory(t *testing.T) {
	const size = 50 << 20
	path := writeFile(t, "big.bin", nil)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	buf := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{2})
	for range size / len(buf) {
		rng.Read(buf)
		f.Write(buf)
		want.Write(buf)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	for _, typ := range []string{"ed25519", "p256"} {
		t.Run(typ, func(t *testing.T) {
			k := genKey(t, typ)
			sig := k.sign(t, path)
			// Three candidate keys: three SHA-512 states for Ed25519, still no buffering.
			trusted := []*Key{genKey(t, typ).key(t, "other1"), k.key(t, "signer"), genKey(t, typ).key(t, "other2")}

			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			copyBuf := make([]byte, 32<<10)
			got := sha256.New()

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)

			v, err := NewVerifier(sig, trusted)
			if err != nil {
				t.Fatal(err)
			}
			// Hide ReaderFrom/WriterTo so the copy goes through copyBuf, as an upload does.
			n, err := io.CopyBuffer(struct{ io.Writer }{io.MultiWriter(v, got)}, struct{ io.Reader }{in}, copyBuf)
			if err != nil || n != size {
				t.Fatalf("copy: %d, %v", n, err)
			}
			key, err := v.Verify()

			runtime.ReadMemStats(&after)
			if err != nil || key.Name != "signer" {
				t.Fatalf("Verify = %v, %v", key, err)
			}
			if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				t.Fatal("the stream read back differs from the file written")
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%s: %d MiB verified, %d KiB allocated, heap grew %d KiB", typ, size>>20, allocated>>10, growth>>10)
			if allocated > 8<<20 || growth > 8<<20 {
				t.Fatalf("allocated %d bytes (heap +%d) verifying a %d-byte stream", allocated, growth, size)
			}
		})
	}
}
