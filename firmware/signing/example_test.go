package signing_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/lwota/lwota/firmware/signing"
)

func ExampleNewVerifier() {
	// A release key: in production the public half comes from `openssl pkey -pubout`.
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	key, _ := signing.NewKey("release", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), time.Unix(0, 0))

	image := []byte("firmware image bytes")
	sig := ed25519.Sign(priv, image) // what `openssl pkeyutl -sign -rawin` writes

	v, err := signing.NewVerifier(sig, []*signing.Key{key})
	if err != nil {
		fmt.Println(err)
		return
	}
	v.Write(image[:8]) // the upload streams past in pieces
	v.Write(image[8:])
	k, err := v.Verify()
	fmt.Println(k.Name, k.Algorithm, err)

	v, _ = signing.NewVerifier(sig, []*signing.Key{key})
	v.Write([]byte("tampered image bytes"))
	_, err = v.Verify()
	fmt.Println(err)
	// Output:
	// release ed25519 <nil>
	// signing: signature not valid for any trusted key: tried 1 ed25519 key(s)
}
