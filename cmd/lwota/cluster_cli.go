package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// newClusterCmd is `lwota cluster`: the keys the nodes of a cluster share (see docs/cluster.md).
func newClusterCmd(getenv func(string) string) *cobra.Command {
	root := group("cluster", "manage the keys the nodes of a cluster share (download-token, credential-seal)")

	// command is one subcommand: it sends method to the path its arguments give and prints the
	// answer (-o table: the key sets in lines).
	command := func(use, short string, args cobra.PositionalArgs, method string, path func([]string) string) *cobra.Command {
		var o *outputFormat
		c := &cobra.Command{Use: use, Short: short, Args: args,
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := apiClient(cmd, getenv)
				if err != nil {
					return err
				}
				req, err := cl.newRequest(cmd.Context(), method, path(args), nil)
				if err != nil {
					return err
				}
				body, err := cl.do(req, http.StatusOK)
				if err != nil {
					return fmt.Errorf("cluster %s: %w", cmd.Name(), err)
				}
				return o.print(out(cmd), body, func(w io.Writer) error { return printClusterKeys(w, body) })
			}}
		o = addOutputFlag(c, outputTable)
		return c
	}
	root.AddCommand(
		command("keys", "list the key ids and states of every purpose", noArgs, http.MethodGet,
			func([]string) string { return "/cluster/keys" }),
		command("rotate-key PURPOSE", "make a new active key for PURPOSE (download-token or credential-seal); the previous one stays accepted",
			exactArgs(1, "the purpose"), http.MethodPost,
			func(a []string) string { return "/cluster/keys/" + url.PathEscape(a[0]) + "/rotate" }),
		command("reseal", "re-seal every stored PSK (device and bootstrap) with the active credential-seal key", noArgs, http.MethodPost,
			func([]string) string { return "/cluster/keys/credential-seal/reseal" }),
		command("retire-key PURPOSE ID", "delete an accepted key nothing uses any more",
			exactArgs(2, "the purpose and the key id"), http.MethodDelete,
			func(a []string) string { return "/cluster/keys/" + url.PathEscape(a[0]) + "/" + url.PathEscape(a[1]) }),
	)
	return root
}

// printClusterKeys prints a key list, one key set, or a re-seal result as lines.
func printClusterKeys(w io.Writer, body []byte) error {
	type set struct {
		Purpose string `json:"purpose"`
		Keys    []struct {
			ID    uint32 `json:"id"`
			State string `json:"state"`
		} `json:"keys"`
	}
	var v struct {
		set
		Purposes []set `json:"purposes"`
		Resealed *int  `json:"resealed"`
		Skipped  int   `json:"skipped"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("cluster: the server's answer: %w", err)
	}
	if v.Resealed != nil {
		_, err := fmt.Fprintf(w, "resealed %d, skipped %d\n", *v.Resealed, v.Skipped)
		return err
	}
	sets := v.Purposes
	if v.Purpose != "" {
		sets = []set{v.set}
	}
	for _, s := range sets {
		var keys []string
		for _, k := range s.Keys {
			keys = append(keys, fmt.Sprintf("%d %s", k.ID, k.State))
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", s.Purpose, strings.Join(keys, ", ")); err != nil {
			return err
		}
	}
	return nil
}
