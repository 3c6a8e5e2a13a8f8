package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"

	"github.com/spf13/cobra"

	"github.com/lwota/lwota/api"
)

func newTokenCmd(getenv func(string) string) *cobra.Command {
	g := group("token", "create, list and revoke API tokens (admin)",
		newTokenCreateCmd(getenv), newTokenListCmd(getenv), newTokenRevokeCmd(getenv))
	g.Long = "Create, list and revoke API tokens. --token (or LWOTA_TOKEN, or the profile's) must be an admin token."
	return g
}

func newTokenCreateCmd(getenv func(string) string) *cobra.Command {
	var name, role string
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "create --name N --role admin|release|ci|support",
		Short: "make an API token; prints it with its secret, once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || role == "" {
				return usagef("token create: --name and --role are required")
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			answer, err := cl.postJSON(cmd.Context(), "/tokens", map[string]string{"name": name, "role": role})
			if err != nil {
				return fmt.Errorf("token create %s: %w", name, err)
			}
			return o.print(out(cmd), answer, tokenTable([]json.RawMessage{answer}))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a name for the token, e.g. ci-pipeline (required)")
	cmd.Flags().StringVar(&role, "role", "", "admin, release, ci or support (required)")
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func newTokenListCmd(getenv func(string) string) *cobra.Command {
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list tokens, revoked ones included (never a secret)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			body, err := cl.get(cmd.Context(), "/tokens")
			if err != nil {
				return fmt.Errorf("token list: %w", err)
			}
			var l struct {
				Tokens []json.RawMessage `json:"tokens"`
			}
			if err := json.Unmarshal(body, &l); err != nil {
				return fmt.Errorf("token list answer: %w", err)
			}
			return o.printList(out(cmd), l.Tokens, tokenTable(l.Tokens))
		},
	}
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func newTokenRevokeCmd(getenv func(string) string) *cobra.Command {
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "revoke a token: its secret authenticates nobody from now on",
		Args:  exactArgs(1, "the token id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			req, err := cl.newRequest(cmd.Context(), http.MethodDelete, "/tokens/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			answer, err := cl.do(req, http.StatusOK)
			if err != nil {
				return fmt.Errorf("token revoke %s: %w", args[0], err)
			}
			return o.print(out(cmd), answer, tokenTable([]json.RawMessage{answer}))
		},
	}
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

// tokenTable draws tokens; a new token's secret gets a column of its own (it is shown once).
func tokenTable(list []json.RawMessage) func(io.Writer) error {
	return func(w io.Writer) error {
		tokens, err := decodeList[api.Token]("token", list)
		if err != nil {
			return err
		}
		if len(tokens) == 0 {
			_, err := fmt.Fprintln(w, "no tokens")
			return err
		}
		secret := slices.ContainsFunc(tokens, func(t api.Token) bool { return t.Token != "" })
		tw := newTable(w)
		head := "ID\tNAME\tROLE\tCREATED\tLAST USED\tREVOKED"
		if secret {
			head += "\tTOKEN (shown once)"
		}
		fmt.Fprintln(tw, head)
		for _, t := range tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s", t.ID, t.Name, t.Role, timeText(t.CreatedAt), timeText(t.LastUsedAt), timeText(t.RevokedAt))
			if secret {
				fmt.Fprintf(tw, "\t%s", t.Token)
			}
			fmt.Fprintln(tw)
		}
		return tw.Flush()
	}
}
