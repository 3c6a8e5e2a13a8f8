package firmware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/sqlstore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "lwota-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := sqlstore.Open(ctx, filepath.Join(dir, "lwota.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	blobs, err := blobstore.OpenDir(filepath.Join(dir, "images"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	catalog := firmware.NewCatalog(store, blobs, nil, firmware.DefaultConfig(), nil, nil, nil)

	// A release key (openssl genpkey -algorithm ed25519), trusted by its public half.
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	der, _ := x509.MarshalPKIXPublicKey(priv.Public())
	key, err := catalog.AddKey(ctx, "release", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		fmt.Println(err)
		return
	}

	image := []byte("firmware bytes")
	img, err := catalog.Upload(ctx, firmware.UploadRequest{
		Name: "sensor", Version: "1.4.0", Target: firmware.Selector{Model: "S1"},
		Signature: ed25519.Sign(priv, image), // openssl pkeyutl -sign -rawin
		Size:      int64(len(image)),
	}, bytes.NewReader(image))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(img.Name, img.Version, img.Size, "bytes, signed by", key.Name, img.KeyID == key.ID)
	fmt.Println(img.SHA256)

	// Tampered bytes are refused, and leave nothing behind.
	_, err = catalog.Upload(ctx, firmware.UploadRequest{Name: "sensor", Version: "1.4.1",
		Signature: ed25519.Sign(priv, image), Size: -1}, bytes.NewReader([]byte("firmware bytez")))
	fmt.Println(err)

	list, _ := catalog.Images(ctx, firmware.ImageFilter{Model: "S1"})
	fmt.Println(len(list), "image")
	// Output:
	// sensor 1.4.0 14 bytes, signed by release true
	// dbf1bce8c5e41be6f0c17880b1ed3033714b384b2c2232b1c7b4f3fda822b6ce
	// upload sensor 1.4.1: firmware: signature not valid: signing: signature not valid for any trusted key: tried 1 ed25519 key(s)
	// 1 image
}
