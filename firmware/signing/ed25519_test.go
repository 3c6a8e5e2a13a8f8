package signing

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// goKey registers a Go-made Ed25519 public key, as if its PEM had been uploaded.
func goKey(t testing.TB, name string, pub ed25519.PublicKey) *Key {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// streamVerify runs the streaming verifier over msg, fed in pieces of random sizes.
func streamVerify(sig []byte, keys []*Key, msg []byte, rng *rand.Rand) (*Key, error) {
	v, err := NewVerifier(sig, keys)
	if err != nil {
		return nil, err
	}
	for len(msg) > 0 {
		n := min(1+rng.IntN(300), len(msg))
		v.Write(msg[:n])
		msg = msg[n:]
	}
	return v.Verify()
}

// groupOrder is l, the order of the Ed25519 base point.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907208317965215808479776745", 10) // 2^252 + 27742317777372353535851937790883648493

// addOrder returns the 32-byte little-endian encoding of S + l when it still fits: the same
// scalar mod l, not canonical, which RFC 8032 requires verifiers to reject.
func addOrder(s []byte) ([]byte, bool) {
	be := make([]byte, 32)
	for i := range 32 {
		be[i] = s[31-i]
	}
	n := new(big.Int).Add(new(big.Int).SetBytes(be), groupOrder)
	if n.BitLen() > 256 {
		return nil, false
	}
	out := n.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, true
}

// TestEd25519AgreesWithStdlib checks the streaming PureEdDSA verification against
// crypto/ed25519.Verify on random keys, messages and corruptions: both must accept and reject
// exactly the same signatures.
func TestEd25519AgreesWithStdlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	seeds := rand.NewChaCha8([32]byte{9})
	newKey := func() (ed25519.PublicKey, ed25519.PrivateKey) {
		var seed [32]byte
		seeds.Read(seed[:])
		priv := ed25519.NewKeyFromSeed(seed[:])
		return priv.Public().(ed25519.PublicKey), priv
	}
	corruptions := []struct {
		name  string
		apply func(sig, msg []byte) ([]byte, []byte)
		valid bool // what crypto/ed25519 must say (checked, so the corruption really bites)
	}{
		{"valid", func(s, m []byte) ([]byte, []byte) { return s, m }, true},
		{"tampered message", func(s, m []byte) ([]byte, []byte) {
			m = append([]byte(nil), m...)
			if len(m) == 0 {
				return s, []byte{0}
			}
			m[rng.IntN(len(m))] ^= byte(1 + rng.IntN(255))
			return s, m
		}, false},
		{"truncated message", func(s, m []byte) ([]byte, []byte) {
			if len(m) == 0 {
				return s, []byte("x")
			}
			return s, m[:rng.IntN(len(m))]
		}, false},
		{"tampered R", func(s, m []byte) ([]byte, []byte) {
			s = append([]byte(nil), s...)
			s[rng.IntN(32)] ^= byte(1 << rng.IntN(8))
			return s, m
		}, false},
		{"tampered S", func(s, m []byte) ([]byte, []byte) {
			s = append([]byte(nil), s...)
			s[32+rng.IntN(32)] ^= byte(1 << rng.IntN(8))
			return s, m
		}, false},
		{"S plus l", func(s, m []byte) ([]byte, []byte) {
			big, ok := addOrder(s[32:])
			if !ok {
				return append(append([]byte(nil), s[:32]...), 0xff, 0xff), m // fails both anyway
			}
			return append(append([]byte(nil), s[:32]...), big...), m
		}, false},
	}

	const rounds = 150
	for i := range rounds {
		pub, priv := newKey()
		otherPub, _ := newKey()
		msg := make([]byte, rng.IntN(3000))
		seeds.Read(msg)
		sig := ed25519.Sign(priv, msg)
		signer, other := goKey(t, "signer", pub), goKey(t, "other", otherPub)

		for _, c := range corruptions {
			s, m := c.apply(sig, msg)
			std := ed25519.Verify(pub, m, s)
			if std != c.valid {
				t.Fatalf("round %d %s: crypto/ed25519 says %v", i, c.name, std)
			}
			k, err := streamVerify(s, []*Key{other, signer}, m, rng)
			if got := err == nil; got != std || (got && k != signer) {
				t.Fatalf("round %d %s: streaming verifier = %v, %v; crypto/ed25519 = %v\nsig %x\nmsg %x", i, c.name, k, err, std, s, m)
			}
			// Wrong key: the signature must not verify under another key.
			if _, err := streamVerify(s, []*Key{other}, m, rng); err == nil {
				t.Fatalf("round %d %s: verified under the wrong key", i, c.name)
			}
			if ed25519.Verify(otherPub, m, s) {
				t.Fatalf("round %d %s: crypto/ed25519 verified under the wrong key", i, c.name)
			}
		}
	}
	t.Logf("%d keys x %d corruptions agree with crypto/ed25519", rounds, len(corruptions))
}
