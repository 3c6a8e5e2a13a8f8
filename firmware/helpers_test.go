package firmware_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/sqlstore"
)

// env is a catalog on real parts: sqlstore on a SQLite file and the directory blob store.
type env struct {
	cat   *firmware.Catalog
	store *sqlstore.Store
	blobs *blobstore.Dir
	dir   string // the blob directory
	reg   *prometheus.Registry
	now   time.Time
}

type envOptions struct {
	cfg    firmware.Config
	usage  firmware.UsageChecker
	signer *blobstore.URLSigner
	store  func(firmware.Store) firmware.Store // wraps the store (to make it fail)
	blobs  func(firmware.Blobs) firmware.Blobs // wraps the blob store
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	root := t.TempDir()
	store, err := sqlstore.Open(context.Background(), filepath.Join(root, "lwota.db"), nil)
	if err != nil {
		t.Fatalf("sqlstore.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	dir := filepath.Join(root, "blobs")
	blobs, err := blobstore.OpenDir(dir, o.signer)
	if err != nil {
		t.Fatalf("blobstore.OpenDir: %v", err)
	}
	e := &env{store: store, blobs: blobs, dir: dir, reg: prometheus.NewRegistry(),
		now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	var (
		fs firmware.Store = store
		bs firmware.Blobs = blobs
	)
	if o.store != nil {
		fs = o.store(fs)
	}
	if o.blobs != nil {
		bs = o.blobs(bs)
	}
	cfg := o.cfg
	if cfg == (firmware.Config{}) {
		cfg = firmware.DefaultConfig()
	}
	e.cat = firmware.NewCatalog(fs, bs, o.usage, cfg, nil, e.reg, func() time.Time { return e.now })
	return e
}

// files lists the regular files under the blob directory, relative and slash-separated.
func (e *env) files(t testing.TB) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// rows lists the images table through the store.
func (e *env) rows(t testing.TB) []*firmware.Image {
	t.Helper()
	imgs, err := e.store.ListImages(context.Background(), firmware.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// blob reads a blob file's bytes.
func (e *env) blob(t testing.TB, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// counter returns the value of a counter series of the env's registry (0 if absent).
func (e *env) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// keyPair is a key made with openssl: the private key file and the public PEM.
type keyPair struct {
	alg     signing.Algorithm
	private string
	public  []byte
}

func openssl(t testing.TB, args ...string) []byte {
	t.Helper()
	path := sysdeps.Require(t, "openssl")
	var stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// newKeyPair makes an Ed25519 or ECDSA P-256 key with openssl.
func newKeyPair(t testing.TB, alg signing.Algorithm) keyPair {
	t.Helper()
	dir := t.TempDir()
	priv := filepath.Join(dir, "key.pem")
	switch alg {
	case signing.Ed25519:
		openssl(t, "genpkey", "-algorithm", "ed25519", "-out", priv)
	case signing.ECDSAP256SHA256:
		openssl(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv)
	default:
		t.Fatalf("no key for %s", alg)
	}
	return keyPair{alg: alg, private: priv, public: openssl(t, "pkey", "-in", priv, "-pubout")}
}

// sign signs data with openssl as a release engineer would.
func (k keyPair) sign(t testing.TB, data []byte) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "fw.bin")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return k.signFile(t, f)
}

func (k keyPair) signFile(t testing.TB, path string) []byte {
	t.Helper()
	if k.alg == signing.Ed25519 {
		return openssl(t, "pkeyutl", "-sign", "-rawin", "-inkey", k.private, "-in", path)
	}
	return openssl(t, "dgst", "-sha256", "-sign", k.private, path)
}

// mcubootImage builds an MCUboot image: a 32-byte header (magic 0x96f3b83d, version), body, and a
// TLV area (magic 0x6907) holding the SHA-256 of header and body (type 0x10).
func mcubootImage(major, minor uint8, revision uint16, build uint32, body []byte) []byte {
	le := binary.LittleEndian
	hdr := make([]byte, 32)
	le.PutUint32(hdr[0:], 0x96f3b83d)
	le.PutUint32(hdr[4:], 0x8000) // load address
	le.PutUint16(hdr[8:], 32)     // header size
	le.PutUint16(hdr[10:], 0)     // protected TLV size
	le.PutUint32(hdr[12:], uint32(len(body)))
	le.PutUint32(hdr[16:], 0) // flags
	hdr[20], hdr[21] = major, minor
	le.PutUint16(hdr[22:], revision)
	le.PutUint32(hdr[24:], build)
	img := append(hdr, body...)
	sum := sha256.Sum256(img)
	tlv := make([]byte, 8, 8+len(sum))
	le.PutUint16(tlv[0:], 0x6907)
	le.PutUint16(tlv[2:], uint16(4+4+len(sum)))
	le.PutUint16(tlv[4:], 0x10)
	le.PutUint16(tlv[6:], uint16(len(sum)))
	tlv = append(tlv, sum[:]...)
	return append(img, tlv...)
}

// pseudoRandom returns n reproducible bytes.
func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
