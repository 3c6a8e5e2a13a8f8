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
	var server, token string
	var asJSON bool
	root := &cobra.Command{
		Use:           "cluster",
		Short:         "Manage the keys the nodes of a cluster share (download-token, credential-seal)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := getenv("LWOTA_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&server, "server", def, "lwota API base URL (env LWOTA_SERVER)")
	root.PersistentFlags().StringVar(&token, "token", getenv("LWOTA_TOKEN"), "admin API token (env LWOTA_TOKEN)")
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")

	// call sends method path and prints the answer: JSON, or the key set in lines.
	call := func(cmd *cobra.Command, method, path string) error {
		cl, err := newClient(server, token)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		req, err := cl.newRequest(cmd.Context(), method, path, nil)
		if err != nil {
			return err
		}
		body, err := cl.do(req, http.StatusOK)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cmd.Name(), err)
		}
		if asJSON {
			_, err := cmd.OutOrStdout().Write(append(body, '\n'))
			return err
		}
		return printClusterKeys(cmd.OutOrStdout(), body)
	}
	root.AddCommand(
		&cobra.Command{
			Use:   "keys",
			Short: "List the key ids and states of every purpose",
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return call(cmd, http.MethodGet, "/cluster/keys") },
		},
		&cobra.Command{
			Use:   "rotate-key PURPOSE",
			Short: "Make a new active key for PURPOSE; the previous one stays accepted",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(cmd, http.MethodPost, "/cluster/keys/"+url.PathEscape(args[0])+"/rotate")
			},
		},
		&cobra.Command{
			Use:   "reseal",
			Short: "Re-seal every stored device credential with the active credential-seal key",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return call(cmd, http.MethodPost, "/cluster/keys/credential-seal/reseal")
			},
		},
		&cobra.Command{
			Use:   "retire-key PURPOSE ID",
			Short: "Delete an accepted key nothing uses any more",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(cmd, http.MethodDelete, "/cluster/keys/"+url.PathEscape(args[0])+"/"+url.PathEscape(args[1]))
			},
		},
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
