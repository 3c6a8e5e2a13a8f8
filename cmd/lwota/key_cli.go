package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

const keyUsage = `usage: lwota key <command> [flags]

commands:
  add       trust a public key: --name N --public-key k.pub.pem (Ed25519 or ECDSA P-256, PEM)
  list      list keys, revoked ones included
  revoke ID revoke a key: it stays listed but verifies no new upload

Every command takes --server (env LWOTA_SERVER, default http://127.0.0.1:8080) and --token
(env LWOTA_TOKEN, sent as Authorization: Bearer). Output is JSON on stdout.
`

// maxPublicKeyFile caps --public-key; a PEM public key is a few hundred bytes.
const maxPublicKeyFile = 64 << 10

func keyCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keyUsage)
		return errors.New("key: no command given")
	}
	switch args[0] {
	case "add":
		return keyAdd(ctx, args[1:], stdout, stderr, getenv)
	case "list":
		return keyList(ctx, args[1:], stdout, stderr, getenv)
	case "revoke":
		return keyRevoke(ctx, args[1:], stdout, stderr, getenv)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, keyUsage)
		return nil
	}
	fmt.Fprint(stderr, keyUsage)
	return fmt.Errorf("key: unknown command %q", args[0])
}

func keyAdd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var name, pubFile string
	fs := newFlagSet("key add", stderr)
	cf.register(fs)
	fs.StringVar(&name, "name", "", "a name for the key, e.g. release-2026 (required)")
	fs.StringVar(&pubFile, "public-key", "", "the public key, PEM (required)")
	rest, err := parseClient(fs, args, getenv)
	switch {
	case err != nil:
		return err
	case len(rest) > 0:
		return fmt.Errorf("key add: unexpected argument %q", rest[0])
	case name == "" || pubFile == "":
		return errors.New("key add: --name and --public-key are required")
	}
	cl, err := newClient(cf.server, cf.token)
	if err != nil {
		return fmt.Errorf("key add: %w", err)
	}
	pem, err := readSmallFile(pubFile, maxPublicKeyFile)
	if err != nil {
		return fmt.Errorf("key add: %w", err)
	}
	answer, err := cl.addKey(ctx, name, pem)
	if err != nil {
		return fmt.Errorf("key add %s: %w", name, err)
	}
	return writeJSON(stdout, answer)
}

func keyList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	fs := newFlagSet("key list", stderr)
	cf.register(fs)
	rest, err := parseClient(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("key list: unexpected argument %q", rest[0])
	}
	cl, err := newClient(cf.server, cf.token)
	if err != nil {
		return fmt.Errorf("key list: %w", err)
	}
	keys, err := cl.keys(ctx)
	if err != nil {
		return fmt.Errorf("key list: %w", err)
	}
	if keys == nil {
		return writeJSON(stdout, []byte("[]"))
	}
	return writeJSON(stdout, keys)
}

func keyRevoke(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	fs := newFlagSet("key revoke", stderr)
	cf.register(fs)
	rest, err := parseClient(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("key revoke: give exactly one key id")
	}
	cl, err := newClient(cf.server, cf.token)
	if err != nil {
		return fmt.Errorf("key revoke: %w", err)
	}
	answer, err := cl.revokeKey(ctx, rest[0])
	if err != nil {
		return fmt.Errorf("key revoke %s: %w", rest[0], err)
	}
	return writeJSON(stdout, answer)
}

// readSmallFile reads a file that must be small and not empty.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) == 0:
		return nil, fmt.Errorf("%s is empty", path)
	case int64(len(b)) > limit:
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
