package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	return runSubcommand(ctx, "key", keyUsage, map[string]subcommand{
		"add":    keyAdd,
		"list":   keyList,
		"revoke": keyRevoke,
	}, args, stdout, stderr, getenv)
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
	cl, err := cf.client("key add")
	if err != nil {
		return err
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
	cl, err := noArgClient("key list", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	keys, err := cl.keys(ctx)
	if err != nil {
		return fmt.Errorf("key list: %w", err)
	}
	return writeJSONList(stdout, keys)
}

func keyRevoke(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	fs := newFlagSet("key revoke", stderr)
	cf.register(fs)
	cl, id, err := oneArgClient("key revoke", "key id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	answer, err := cl.revokeKey(ctx, id)
	if err != nil {
		return fmt.Errorf("key revoke %s: %w", id, err)
	}
	return writeJSON(stdout, answer)
}

// readSmallFile reads a file that must be small and not empty.
func readSmallFile(path string, limit int64) ([]byte, error) {
	b, err := readLimited(path, limit)
	if err == nil && len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, err
}
