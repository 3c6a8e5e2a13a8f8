package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/lwota/lwota/api"
)

// maxPublicKeyFile caps --public-key; a PEM public key is a few hundred bytes.
const maxPublicKeyFile = 64 << 10

func newKeyCmd(getenv func(string) string) *cobra.Command {
	return group("key", "add, list and revoke the signing keys a server trusts",
		newKeyAddCmd(getenv), newKeyListCmd(getenv), newKeyRevokeCmd(getenv))
}

func newKeyAddCmd(getenv func(string) string) *cobra.Command {
	var name, pubFile string
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "add --name N --public-key k.pub.pem",
		Short: "trust a public key (Ed25519 or ECDSA P-256, PEM)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || pubFile == "" {
				return usagef("key add: --name and --public-key are required")
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			pem, err := readSmallFile(pubFile, maxPublicKeyFile)
			if err != nil {
				return fmt.Errorf("key add: %w", err)
			}
			answer, err := cl.addKey(cmd.Context(), name, pem)
			if err != nil {
				return fmt.Errorf("key add %s: %w", name, err)
			}
			return o.print(out(cmd), answer, keyTable([]json.RawMessage{answer}))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a name for the key, e.g. release-2026 (required)")
	cmd.Flags().StringVar(&pubFile, "public-key", "", "the public key, PEM (required)")
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func newKeyListCmd(getenv func(string) string) *cobra.Command {
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list keys, revoked ones included",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			keys, err := cl.keys(cmd.Context())
			if err != nil {
				return fmt.Errorf("key list: %w", err)
			}
			return o.printList(out(cmd), keys, keyTable(keys))
		},
	}
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func newKeyRevokeCmd(getenv func(string) string) *cobra.Command {
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "revoke a key: it stays listed but verifies no new upload",
		Args:  exactArgs(1, "the key id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			answer, err := cl.revokeKey(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("key revoke %s: %w", args[0], err)
			}
			return o.print(out(cmd), answer, keyTable([]json.RawMessage{answer}))
		},
	}
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func keyTable(list []json.RawMessage) func(io.Writer) error {
	return func(w io.Writer) error {
		keys, err := decodeList[api.Key]("key", list)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			_, err := fmt.Fprintln(w, "no keys")
			return err
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tNAME\tALGORITHM\tFINGERPRINT\tCREATED\tREVOKED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Algorithm, k.Fingerprint, timeText(k.CreatedAt), timeText(k.RevokedAt))
		}
		return tw.Flush()
	}
}

// readSmallFile reads a file that must be small and not empty.
func readSmallFile(path string, limit int64) ([]byte, error) {
	b, err := readLimited(path, limit)
	if err == nil && len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, err
}
