package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// newWebhookCmd is `lwota webhook`: webhook subscriptions and their deliveries, over the REST API.
func newWebhookCmd(getenv func(string) string) *cobra.Command {
	var cf clientFlags
	root := &cobra.Command{
		Use:   "webhook",
		Short: "subscribe URLs to job, campaign and registration events; list deliveries and dead letters; redeliver",
		Long: `Webhooks POST signed JSON to a URL for every stored event of the kinds a subscription names:
update_job (each transition of a firmware update job), campaign (each campaign event) and
registration (a device's Register and De-register). Deliveries are retried with backoff; those that
run out of attempts are dead letters (deliveries --dead) and can be sent again (retry).

Every command takes --server (env LWOTA_SERVER) and --token (env LWOTA_TOKEN); create, delete
and retry need an admin token. Output is JSON on stdout.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	server := getenv("LWOTA_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&cf.server, "server", server, "lwota server URL (env LWOTA_SERVER)")
	root.PersistentFlags().StringVar(&cf.token, "token", getenv("LWOTA_TOKEN"), "API token, sent as Authorization: Bearer (env LWOTA_TOKEN)")

	var (
		hookURL, secret string
		kinds           []string
		disabled        bool
	)
	create := &cobra.Command{
		Use:   "create --url URL --kind KIND[,KIND]",
		Short: "subscribe a URL; prints the subscription with its secret, once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hookURL == "" || len(kinds) == 0 {
				return fmt.Errorf("webhook create: --url and --kind are required")
			}
			cl, err := cf.client("webhook create")
			if err != nil {
				return err
			}
			body := map[string]any{"url": hookURL, "kinds": kinds, "enabled": !disabled}
			if secret != "" {
				body["secret"] = secret
			}
			answer, err := cl.postJSON(cmd.Context(), "/webhooks", body)
			if err != nil {
				return fmt.Errorf("webhook create: %w", err)
			}
			return writeJSON(cmd.OutOrStdout(), answer)
		},
	}
	create.Flags().StringVar(&hookURL, "url", "", "http:// or https:// URL to POST events to (required)")
	create.Flags().StringSliceVar(&kinds, "kind", nil, "event kinds, comma-separated or repeated: update_job, campaign, registration (required)")
	create.Flags().StringVar(&secret, "secret", "", "HMAC-SHA256 key of the signatures, 16 to 256 bytes (default: generated and printed once)")
	create.Flags().BoolVar(&disabled, "disabled", false, "store the subscription disabled: it queues nothing until enabled")

	list := &cobra.Command{
		Use:   "list",
		Short: "list subscriptions (never a secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := cf.client("webhook list")
			if err != nil {
				return err
			}
			body, err := cl.get(cmd.Context(), "/webhooks")
			if err != nil {
				return fmt.Errorf("webhook list: %w", err)
			}
			var l struct {
				Webhooks []json.RawMessage `json:"webhooks"`
			}
			if err := json.Unmarshal(body, &l); err != nil {
				return fmt.Errorf("webhook list answer: %w", err)
			}
			return writeJSONList(cmd.OutOrStdout(), l.Webhooks)
		},
	}

	show := &cobra.Command{
		Use:   "show ID",
		Short: "show one subscription",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := cf.client("webhook show")
			if err != nil {
				return err
			}
			body, err := cl.get(cmd.Context(), "/webhooks/"+url.PathEscape(args[0]))
			if err != nil {
				return fmt.Errorf("webhook show %s: %w", args[0], err)
			}
			return writeJSON(cmd.OutOrStdout(), body)
		},
	}

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "delete a subscription and its deliveries, pending ones included",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := cf.client("webhook delete")
			if err != nil {
				return err
			}
			req, err := cl.newRequest(cmd.Context(), http.MethodDelete, "/webhooks/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			if _, err := cl.do(req, http.StatusNoContent); err != nil {
				return fmt.Errorf("webhook delete %s: %w", args[0], err)
			}
			return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": args[0]})
		},
	}

	var (
		dead  bool
		state string
		limit int
	)
	deliveries := &cobra.Command{
		Use:   "deliveries ID [--dead | --state pending|delivered|dead]",
		Short: "list a subscription's deliveries, newest first; --dead lists the dead letters",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dead {
				if state != "" && state != "dead" {
					return fmt.Errorf("webhook deliveries: --dead and --state %s contradict each other", state)
				}
				state = "dead"
			}
			cl, err := cf.client("webhook deliveries")
			if err != nil {
				return err
			}
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			path := "/webhooks/" + url.PathEscape(args[0]) + "/deliveries"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			body, err := cl.get(cmd.Context(), path)
			if err != nil {
				return fmt.Errorf("webhook deliveries %s: %w", args[0], err)
			}
			var l struct {
				Deliveries []json.RawMessage `json:"deliveries"`
			}
			if err := json.Unmarshal(body, &l); err != nil {
				return fmt.Errorf("webhook deliveries answer: %w", err)
			}
			return writeJSONList(cmd.OutOrStdout(), l.Deliveries)
		},
	}
	deliveries.Flags().BoolVar(&dead, "dead", false, "only dead letters (same as --state dead)")
	deliveries.Flags().StringVar(&state, "state", "", "only deliveries in this state: pending, delivered or dead")
	deliveries.Flags().IntVar(&limit, "limit", 0, "at most this many (default: the server's page size)")

	retry := &cobra.Command{
		Use:   "retry ID DELIVERY",
		Short: "send a delivery again (a dead letter once the receiver is fixed); same delivery id",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := cf.client("webhook retry")
			if err != nil {
				return err
			}
			req, err := cl.newRequest(cmd.Context(), http.MethodPost,
				"/webhooks/"+url.PathEscape(args[0])+"/deliveries/"+url.PathEscape(args[1])+"/retry", strings.NewReader(""))
			if err != nil {
				return err
			}
			body, err := cl.do(req, http.StatusOK)
			if err != nil {
				return fmt.Errorf("webhook retry %s: %w", args[1], err)
			}
			return writeJSON(cmd.OutOrStdout(), body)
		},
	}

	root.AddCommand(create, list, show, del, deliveries, retry)
	return root
}
