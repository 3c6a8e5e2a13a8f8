package signing

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// The tests make keys and signatures with the real openssl CLI, as a release engineer would.
// A machine without openssl fails them: these are the interop tests.

// openssl runs the openssl CLI in dir and fails the test on any error.
func openssl(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	bin := sysdeps.Require(t, "openssl")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// sslKey is a private key made by openssl, with its public half.
type sslKey struct {
	dir     string
	priv    string // path of the private key PEM
	pubPEM  []byte // `openssl pkey -pubout`
	pubDER  []byte // `openssl pkey -pubout -outform DER`
	keyType string
}

// Key generation commands, by the name the tests use.
var genCommands = map[string][]string{
	"ed25519":     {"genpkey", "-algorithm", "ed25519"},
	"p256":        {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
	"p256-sec1":   {"ecparam", "-name", "prime256v1", "-genkey", "-noout"},
	"p384":        {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"},
	"secp256k1":   {"ecparam", "-name", "secp256k1", "-genkey", "-noout"},
	"rsa":         {"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
	"ed448":       {"genpkey", "-algorithm", "ed448"},
	"x25519":      {"genpkey", "-algorithm", "x25519"},
	"p256-params": {"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-param_enc", "explicit"},
}

func genKey(t testing.TB, keyType string) *sslKey {
	t.Helper()
	dir := t.TempDir()
	priv := filepath.Join(dir, "key.pem")
	args := append(append([]string(nil), genCommands[keyType]...), "-out", priv)
	openssl(t, dir, args...)
	return &sslKey{
		dir:     dir,
		priv:    priv,
		pubPEM:  openssl(t, dir, "pkey", "-in", priv, "-pubout"),
		pubDER:  openssl(t, dir, "pkey", "-in", priv, "-pubout", "-outform", "DER"),
		keyType: keyType,
	}
}

// key registers the openssl key as a trusted Key.
func (k *sslKey) key(t testing.TB, name string) *Key {
	t.Helper()
	key, err := NewKey(name, k.pubPEM, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatalf("NewKey(%s): %v", k.keyType, err)
	}
	return key
}

// sign signs the file at path with the command the README documents for the key's type.
func (k *sslKey) sign(t testing.TB, path string) []byte {
	t.Helper()
	sig := filepath.Join(t.TempDir(), "fw.sig")
	if k.keyType == "ed25519" {
		openssl(t, k.dir, "pkeyutl", "-sign", "-rawin", "-inkey", k.priv, "-in", path, "-out", sig)
	} else {
		openssl(t, k.dir, "dgst", "-sha256", "-sign", k.priv, "-out", sig, path)
	}
	b, err := os.ReadFile(sig)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes data to a fresh file and returns its path.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
