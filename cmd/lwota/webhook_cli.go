package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/lwota/lwota/api"
	"github.com/spf13/cobra"
)

// newWebhookCmd is `lwota webhook`: webhook subscriptions and their deliveries, over the REST API.
func newWebhookCmd(getenv func(string) string) *cobra.Command {
	var createOut, listOut, showOut, deliveriesOut, retryOut *outputFormat
	root := group("webhook", "subscribe URLs to job, campaign and registration events; list deliveries and dead letters; redeliver")
	root.Long = `Webhooks POST signed JSON to a URL for every stored event of the kinds a subscription names:
update_job (each transition of a firmware update job), campaign (each campaign event) and
registration (a device's Register and De-register). Deliveries are retried with backoff; those that
run out of attempts are dead letters (deliveries --dead) and can be sent again (retry).
create, delete and retry need an admin token.`

	var (
		hookURL, secret string
		kinds           []string
		disabled        bool
	)
	create := &cobra.Command{
		Use:   "create --url URL --kind KIND[,KIND]",
		Short: "subscribe a URL; prints the subscription with its secret, once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hookURL == "" || len(kinds) == 0 {
				return usagef("webhook create: --url and --kind are required")
			}
			cl, err := apiClient(cmd, getenv)
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
			return createOut.print(out(cmd), answer, webhookTable(answer, true))
		},
	}
	create.Flags().StringVar(&hookURL, "url", "", "http:// or https:// URL to POST events to (required)")
	create.Flags().StringSliceVar(&kinds, "kind", nil, "event kinds, comma-separated or repeated: update_job, campaign, registration (required)")
	create.Flags().StringVar(&secret, "secret", "", "HMAC-SHA256 key of the signatures, 16 to 256 bytes (default: generated and printed once)")
	create.Flags().BoolVar(&disabled, "disabled", false, "store the subscription disabled: it queues nothing until enabled")

	list := &cobra.Command{
		Use:   "list",
		Short: "list subscriptions (never a secret)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd, getenv)
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
			return listOut.printList(out(cmd), l.Webhooks, webhookListTable(l.Webhooks))
		},
	}

	show := &cobra.Command{
		Use:   "show ID",
		Short: "show one subscription",
		Args:  exactArgs(1, "the subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			body, err := cl.get(cmd.Context(), "/webhooks/"+url.PathEscape(args[0]))
			if err != nil {
				return fmt.Errorf("webhook show %s: %w", args[0], err)
			}
			return showOut.print(out(cmd), body, webhookTable(body, false))
		},
	}

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "delete a subscription and its deliveries, pending ones included",
		Args:  exactArgs(1, "the subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
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
			_, err = fmt.Fprintln(out(cmd), "deleted", args[0])
			return err
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
		Args:  exactArgs(1, "the subscription id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dead {
				if state != "" && state != "dead" {
					return usagef("webhook deliveries: --dead and --state %s contradict each other", state)
				}
				state = "dead"
			}
			cl, err := apiClient(cmd, getenv)
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
			return deliveriesOut.printList(out(cmd), l.Deliveries, deliveryListTable(l.Deliveries))
		},
	}
	deliveries.Flags().BoolVar(&dead, "dead", false, "only dead letters (same as --state dead)")
	deliveries.Flags().StringVar(&state, "state", "", "only deliveries in this state: pending, delivered or dead")
	deliveries.Flags().IntVar(&limit, "limit", 0, "at most this many (default: the server's page size)")

	retry := &cobra.Command{
		Use:   "retry ID DELIVERY",
		Short: "send a delivery again (a dead letter once the receiver is fixed); same delivery id",
		Args:  exactArgs(2, "the subscription id and the delivery id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
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
			return retryOut.print(out(cmd), body, deliveryTable(body))
		},
	}

	createOut, listOut, showOut = addOutputFlag(create, outputAuto), addOutputFlag(list, outputTable), addOutputFlag(show, outputTable)
	deliveriesOut, retryOut = addOutputFlag(deliveries, outputTable), addOutputFlag(retry, outputTable)
	root.AddCommand(create, list, show, del, deliveries, retry)
	return root
}

// webhookTable draws one subscription; withSecret prints the secret (only create has it).
func webhookTable(raw []byte, withSecret bool) func(io.Writer) error {
	return func(w io.Writer) error {
		var h api.Webhook
		if err := json.Unmarshal(raw, &h); err != nil {
			return fmt.Errorf("webhook answer: %w", err)
		}
		tw := newTable(w)
		fmt.Fprintf(tw, "webhook\t%s\nurl\t%s\nkinds\t%s\nenabled\t%t\n", h.ID, h.URL, strings.Join(h.Kinds, ","), h.Enabled)
		if withSecret && h.Secret != "" {
			fmt.Fprintf(tw, "secret\t%s\t(shown once: keep it now)\n", h.Secret)
		}
		return tw.Flush()
	}
}

func webhookListTable(list []json.RawMessage) func(io.Writer) error {
	return func(w io.Writer) error {
		hooks, err := decodeList[api.Webhook]("webhook list", list)
		if err != nil {
			return err
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tKINDS\tENABLED\tURL")
		for _, h := range hooks {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", h.ID, strings.Join(h.Kinds, ","), h.Enabled, h.URL)
		}
		return tw.Flush()
	}
}

// deliveryRow is a delivery as a row of the deliveries table.
func deliveryRow(d api.WebhookDelivery) string {
	last := d.LastError
	if d.LastStatus != 0 {
		last = strconv.Itoa(d.LastStatus) + " " + last
	}
	return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\n", d.ID, d.Kind, d.State, d.Attempts, orDash(strings.TrimSpace(last)))
}

func deliveryTable(raw []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		var d api.WebhookDelivery
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("delivery answer: %w", err)
		}
		tw := newTable(w)
		fmt.Fprint(tw, "DELIVERY\tKIND\tSTATE\tATTEMPTS\tLAST\n"+deliveryRow(d))
		return tw.Flush()
	}
}

func deliveryListTable(list []json.RawMessage) func(io.Writer) error {
	return func(w io.Writer) error {
		ds, err := decodeList[api.WebhookDelivery]("webhook deliveries", list)
		if err != nil {
			return err
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "DELIVERY\tKIND\tSTATE\tATTEMPTS\tLAST")
		for _, d := range ds {
			fmt.Fprint(tw, deliveryRow(d))
		}
		return tw.Flush()
	}
}
