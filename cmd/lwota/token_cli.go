package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

const tokenUsage = `usage: lwota token <command> [flags]

commands:
  create    make an API token: --name N --role admin|release|ci|support; prints it with its secret, once
  list      list tokens, revoked ones included (never a secret)
  revoke ID revoke a token: its secret authenticates nobody from now on

Every command takes --server (env LWOTA_SERVER, default http://127.0.0.1:8080) and --token
(env LWOTA_TOKEN, sent as Authorization: Bearer), which must be an admin token. Output is JSON on stdout.
`

func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runSubcommand(ctx, "token", tokenUsage, map[string]subcommand{
		"create": tokenCreate,
		"list":   tokenList,
		"revoke": tokenRevoke,
	}, args, stdout, stderr, getenv)
}

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var name, role string
	fs := newFlagSet("token create", stderr)
	cf.register(fs)
	fs.StringVar(&name, "name", "", "a name for the token, e.g. ci-pipeline (required)")
	fs.StringVar(&role, "role", "", "admin, release, ci or support (required)")
	rest, err := parseClient(fs, args, getenv)
	switch {
	case err != nil:
		return err
	case len(rest) > 0:
		return fmt.Errorf("token create: unexpected argument %q", rest[0])
	case name == "" || role == "":
		return errors.New("token create: --name and --role are required")
	}
	cl, err := cf.client("token create")
	if err != nil {
		return err
	}
	answer, err := cl.postJSON(ctx, "/tokens", map[string]string{"name": name, "role": role})
	if err != nil {
		return fmt.Errorf("token create %s: %w", name, err)
	}
	return writeJSON(stdout, answer)
}

func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	fs := newFlagSet("token list", stderr)
	cf.register(fs)
	cl, err := noArgClient("token list", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	body, err := cl.get(ctx, "/tokens")
	if err != nil {
		return fmt.Errorf("token list: %w", err)
	}
	var l struct {
		Tokens []json.RawMessage `json:"tokens"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return fmt.Errorf("token list answer: %w", err)
	}
	return writeJSONList(stdout, l.Tokens)
}

func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	fs := newFlagSet("token revoke", stderr)
	cf.register(fs)
	cl, id, err := oneArgClient("token revoke", "token id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	req, err := cl.newRequest(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	answer, err := cl.do(req, http.StatusOK)
	if err != nil {
		return fmt.Errorf("token revoke %s: %w", id, err)
	}
	return writeJSON(stdout, answer)
}
