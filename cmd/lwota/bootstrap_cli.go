package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// newBootstrapCmd is `lwota bootstrap`: the Bootstrap Server's configurations, bootstrap PSKs,
// sessions and re-bootstrap, over the REST API (/api/v1/bootstrap/...).
func newBootstrapCmd(getenv func(string) string) *cobra.Command {
	// running is the subcommand being run: its flags (inherited --server, --token, --profile,
	// --config) say which server to call, as for every API command.
	var running *cobra.Command
	root := &cobra.Command{
		Use:   "bootstrap",
		Short: "LwM2M Bootstrap Server: configurations, bootstrap PSKs, sessions, re-bootstrap",
		Long: `Manage what lwota's Bootstrap Server (lwota serve --bootstraps-addr) gives devices.

The server and token come from --server/--token, LWOTA_SERVER/LWOTA_TOKEN or the config file's
profile, as for every API command.`,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) { running = cmd },
	}
	client := func() (*client, error) { return apiClient(running, getenv) }

	root.AddCommand(bootstrapSetCmd(client), bootstrapGetCmd(client), bootstrapListCmd(client), bootstrapDeleteCmd(client),
		bootstrapSessionsCmd(client), bootstrapTriggerCmd(client), bootstrapPSKCmd(client))
	return root
}

// bootstrapSetBody mirrors the API's PUT /bootstrap/configs/{scope}/{name} body.
type bootstrapSetBody struct {
	ServerURI     string            `json:"server_uri"`
	PSK           string            `json:"psk,omitempty"`
	PSKIdentity   string            `json:"psk_identity,omitempty"`
	ShortServerID uint16            `json:"short_server_id,omitempty"`
	Lifetime      uint32            `json:"lifetime,omitempty"`
	DefaultPmin   uint32            `json:"default_pmin,omitempty"`
	DefaultPmax   uint32            `json:"default_pmax,omitempty"`
	Storing       bool              `json:"notification_storing,omitempty"`
	Binding       string            `json:"binding,omitempty"`
	NoDiscover    bool              `json:"no_discover,omitempty"`
	ReadBack      bool              `json:"read_back,omitempty"`
	DMKey         map[string]string `json:"dm_psk,omitempty"`
	BootstrapKey  map[string]string `json:"bootstrap_psk,omitempty"`
	DMX509        map[string]string `json:"dm_x509,omitempty"`
}

func bootstrapSetCmd(client func() (*client, error)) *cobra.Command {
	var (
		b                      bootstrapSetBody
		scope                  string
		pskID, pskKey          string
		generate               bool
		bsID, bsKey            string
		lifetime, pmin, pmax   uint32
		ssid                   uint16
		genBootstrap, jsonMode bool
		certFile, keyFile      string
		serverCertFile         string
	)
	c := &cobra.Command{
		Use:   "set NAME --server-uri URI [--lifetime S] [--psk-identity ID --psk-key HEX | --generate-psk | --certificate PEM --private-key PEM [--server-certificate PEM]] [--bootstrap-psk-identity ID --bootstrap-psk-key HEX]",
		Short: "Set the bootstrap configuration of an endpoint (or of a --scope prefix or label)",
		Long: `Set what a device is given when it bootstraps: lwota's DM server URI, its DM PSK, lifetime and binding.

With --psk-identity and --psk-key the device gets that DM PSK (stored as its DM credential);
with --generate-psk a fresh one on every bootstrap (key rotation by re-bootstrap); with neither
and a coap:// server URI it gets NoSec. With --certificate and --private-key (PEM files) it gets
a certificate account (Security Mode 2), and --server-certificate is the DM server's certificate
it pins; the private key is stored sealed and never read back. --bootstrap-psk-identity and --bootstrap-psk-key store
the PSK the device presents to the Bootstrap Server (--generate-bootstrap-psk mints and prints one).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if b.ServerURI == "" {
				return errors.New("bootstrap set: --server-uri is required")
			}
			if (pskID == "") != (pskKey == "") {
				return errors.New("bootstrap set: --psk-identity and --psk-key go together")
			}
			if pskID != "" && generate {
				return errors.New("bootstrap set: --psk-identity/--psk-key or --generate-psk, not both")
			}
			if (bsID == "") != (bsKey == "") && !(genBootstrap && bsKey == "") {
				return errors.New("bootstrap set: --bootstrap-psk-identity and --bootstrap-psk-key go together")
			}
			if (certFile == "") != (keyFile == "") || (serverCertFile != "" && certFile == "") {
				return errors.New("bootstrap set: --certificate and --private-key go together (--server-certificate with them)")
			}
			if certFile != "" && (pskID != "" || generate) {
				return errors.New("bootstrap set: a PSK or a certificate, not both")
			}
			switch {
			case certFile != "":
				x := map[string]string{}
				for _, f := range []struct{ field, path string }{{"certificate", certFile}, {"private_key", keyFile}, {"server_certificate", serverCertFile}} {
					if f.path == "" {
						continue
					}
					pemBytes, err := os.ReadFile(f.path)
					if err != nil {
						return fmt.Errorf("bootstrap set: %w", err)
					}
					x[f.field] = string(pemBytes)
				}
				b.PSK, b.DMX509 = "x509", x
			case pskID != "":
				if _, err := hex.DecodeString(pskKey); err != nil {
					return errors.New("bootstrap set: --psk-key must be hex")
				}
				b.PSK, b.DMKey = "stored", map[string]string{"identity": pskID, "key": pskKey}
			case generate:
				b.PSK = "generate"
			case strings.HasPrefix(b.ServerURI, "coap://"):
				b.PSK = "none"
			}
			if genBootstrap {
				if bsID == "" {
					bsID = name
				}
				k := make([]byte, 16)
				if _, err := rand.Read(k); err != nil {
					return err
				}
				bsKey = hex.EncodeToString(k)
			}
			if bsID != "" {
				if _, err := hex.DecodeString(bsKey); err != nil {
					return errors.New("bootstrap set: --bootstrap-psk-key must be hex")
				}
				b.BootstrapKey = map[string]string{"identity": bsID, "key": bsKey}
			}
			b.Lifetime, b.DefaultPmin, b.DefaultPmax, b.ShortServerID = lifetime, pmin, pmax, ssid
			cl, err := client()
			if err != nil {
				return fmt.Errorf("bootstrap set: %w", err)
			}
			out, err := cl.bootstrapPut(cmd.Context(), "/bootstrap/configs/"+url.PathEscape(scope)+"/"+url.PathEscape(name), b)
			if err != nil {
				return fmt.Errorf("bootstrap set %s: %w", name, err)
			}
			if jsonMode {
				_, err = cmd.OutOrStdout().Write(append(out, '\n'))
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bootstrap configuration %s:%s saved\n", scope, name)
			if genBootstrap {
				fmt.Fprintf(cmd.OutOrStdout(), "bootstrap PSK identity %s key %s\n", bsID, bsKey)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&scope, "scope", "endpoint", "what NAME is: endpoint, prefix (of endpoint names: a production batch) or label (key=value)")
	f.StringVar(&b.ServerURI, "server-uri", "", "the DM server the device registers with: coaps://HOST:5684 or coap://HOST:5683")
	f.Uint32Var(&lifetime, "lifetime", 0, "registration lifetime written to /1/x/1, seconds (default 300)")
	f.Uint32Var(&pmin, "pmin", 0, "default minimum period /1/x/2, seconds (0: not written)")
	f.Uint32Var(&pmax, "pmax", 0, "default maximum period /1/x/3, seconds (0: not written)")
	f.Uint16Var(&ssid, "ssid", 0, "Short Server ID (default 1)")
	f.StringVar(&b.Binding, "binding", "", "binding /1/x/7 (default U)")
	f.BoolVar(&b.Storing, "notification-storing", false, "notification storing when offline /1/x/6")
	f.StringVar(&pskID, "psk-identity", "", "the device's DM PSK identity")
	f.StringVar(&pskKey, "psk-key", "", "the device's DM PSK, hex")
	f.BoolVar(&generate, "generate-psk", false, "mint a fresh DM PSK on every bootstrap (rotation by re-bootstrap)")
	f.StringVar(&b.PSKIdentity, "generated-psk-identity", "", "with --generate-psk: the identity given (default the endpoint name)")
	f.StringVar(&certFile, "certificate", "", "the device's certificate for the DM server (PEM file): a certificate account, Security Mode 2")
	f.StringVar(&keyFile, "private-key", "", "the device's private key (PEM file: PKCS#8, EC or RSA); stored sealed, never read back")
	f.StringVar(&serverCertFile, "server-certificate", "", "the DM server's certificate (PEM file), written to /0/x/4 for the device to pin")
	f.StringVar(&bsID, "bootstrap-psk-identity", "", "the PSK identity the device presents to the Bootstrap Server")
	f.StringVar(&bsKey, "bootstrap-psk-key", "", "the bootstrap PSK, hex")
	f.BoolVar(&genBootstrap, "generate-bootstrap-psk", false, "mint the bootstrap PSK and print it (identity: --bootstrap-psk-identity or the endpoint name)")
	f.BoolVar(&b.NoDiscover, "no-discover", false, "skip Bootstrap-Discover (LwM2M 1.0 clients): /0 and /1 are deleted whole")
	f.BoolVar(&b.ReadBack, "read-back", false, "Bootstrap-Read /1/x after the writes and check it (LwM2M 1.1+)")
	f.BoolVar(&jsonMode, "json", false, "print the server's JSON")
	return c
}

func bootstrapGetCmd(client func() (*client, error)) *cobra.Command {
	var scope string
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a bootstrap configuration (keys are never shown)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			out, err := cl.get(cmd.Context(), "/bootstrap/configs/"+url.PathEscape(scope)+"/"+url.PathEscape(args[0]))
			if err != nil {
				return fmt.Errorf("bootstrap get %s: %w", args[0], err)
			}
			return bootstrapPrint(cmd.OutOrStdout(), out)
		},
	}
	c.Flags().StringVar(&scope, "scope", "endpoint", "endpoint, prefix or label")
	return c
}

func bootstrapListCmd(client func() (*client, error)) *cobra.Command {
	var jsonMode bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the bootstrap configurations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			out, err := cl.get(cmd.Context(), "/bootstrap/configs")
			if err != nil {
				return fmt.Errorf("bootstrap list: %w", err)
			}
			if jsonMode {
				return bootstrapPrint(cmd.OutOrStdout(), out)
			}
			var l struct {
				Configs []struct {
					Scope     string `json:"scope"`
					Name      string `json:"name"`
					ServerURI string `json:"server_uri"`
					PSK       string `json:"psk"`
					Lifetime  uint32 `json:"lifetime"`
				} `json:"configs"`
			}
			if err := json.Unmarshal(out, &l); err != nil {
				return fmt.Errorf("bootstrap list: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCOPE\tNAME\tSERVER URI\tPSK\tLIFETIME")
			for _, c := range l.Configs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", c.Scope, c.Name, c.ServerURI, c.PSK, c.Lifetime)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&jsonMode, "json", false, "print the server's JSON")
	return c
}

func bootstrapDeleteCmd(client func() (*client, error)) *cobra.Command {
	var scope string
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a bootstrap configuration (the device's keys stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			if _, err := cl.bootstrapCall(cmd.Context(), http.MethodDelete, "/bootstrap/configs/"+url.PathEscape(scope)+"/"+url.PathEscape(args[0]), nil, http.StatusNoContent); err != nil {
				return fmt.Errorf("bootstrap delete %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bootstrap configuration %s:%s deleted\n", scope, args[0])
			return nil
		},
	}
	c.Flags().StringVar(&scope, "scope", "endpoint", "endpoint, prefix or label")
	return c
}

func bootstrapSessionsCmd(client func() (*client, error)) *cobra.Command {
	var jsonMode bool
	var limit int
	c := &cobra.Command{
		Use:   "sessions ENDPOINT",
		Short: "Show a device's bootstrap sessions, newest first, with each step and the reason of a failure",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			out, err := cl.get(cmd.Context(), fmt.Sprintf("/bootstrap/devices/%s/sessions?limit=%d", url.PathEscape(args[0]), limit))
			if err != nil {
				return fmt.Errorf("bootstrap sessions %s: %w", args[0], err)
			}
			if jsonMode {
				return bootstrapPrint(cmd.OutOrStdout(), out)
			}
			var l struct {
				Sessions []struct {
					ID        string    `json:"id"`
					StartedAt time.Time `json:"started_at"`
					Outcome   string    `json:"outcome"`
					Reason    string    `json:"reason"`
					Steps     []struct {
						Op, Path, Code, Detail string
					} `json:"steps"`
				} `json:"sessions"`
			}
			if err := json.Unmarshal(out, &l); err != nil {
				return fmt.Errorf("bootstrap sessions: %w", err)
			}
			w := cmd.OutOrStdout()
			for _, s := range l.Sessions {
				fmt.Fprintf(w, "%s  %s  %s", s.StartedAt.Format(time.RFC3339), s.ID, s.Outcome)
				if s.Reason != "" {
					fmt.Fprintf(w, ": %s", s.Reason)
				}
				fmt.Fprintln(w)
				for _, st := range s.Steps {
					fmt.Fprintf(w, "    %-8s %-6s %s %s\n", st.Op, st.Path, st.Code, st.Detail)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&jsonMode, "json", false, "print the server's JSON")
	c.Flags().IntVar(&limit, "limit", 10, "sessions to show (1 to 100)")
	return c
}

func bootstrapTriggerCmd(client func() (*client, error)) *cobra.Command {
	var instance int
	c := &cobra.Command{
		Use:   "trigger ENDPOINT",
		Short: "Make a registered device bootstrap again (Execute /1/x/9); with a generated PSK that rotates its DM key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			out, err := cl.bootstrapCall(cmd.Context(), http.MethodPost, fmt.Sprintf("/bootstrap/devices/%s/trigger?instance=%d", url.PathEscape(args[0]), instance), nil, http.StatusOK)
			if err != nil {
				return fmt.Errorf("bootstrap trigger %s: %w", args[0], err)
			}
			_, err = cmd.OutOrStdout().Write(append(out, '\n'))
			return err
		},
	}
	c.Flags().IntVar(&instance, "instance", 0, "the Server object instance /1/x whose Bootstrap-Request Trigger to execute")
	return c
}

func bootstrapPSKCmd(client func() (*client, error)) *cobra.Command {
	c := &cobra.Command{
		Use:   "psk",
		Short: "Bootstrap PSKs: set, delete, import (CSV endpoint,identity,key or JSON as lwota credentials import)",
	}
	set := &cobra.Command{
		Use:  "set ENDPOINT IDENTITY HEXKEY",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			body := map[string]any{"psk": map[string]string{"identity": args[1], "key": args[2]}}
			if _, err := cl.bootstrapCall(cmd.Context(), http.MethodPut, "/bootstrap/credentials/"+url.PathEscape(args[0]), body, http.StatusNoContent); err != nil {
				return fmt.Errorf("bootstrap psk set %s: %w", args[0], err)
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use:  "delete ENDPOINT",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			if _, err := cl.bootstrapCall(cmd.Context(), http.MethodDelete, "/bootstrap/credentials/"+url.PathEscape(args[0]), nil, http.StatusNoContent); err != nil {
				return fmt.Errorf("bootstrap psk delete %s: %w", args[0], err)
			}
			return nil
		},
	}
	imp := &cobra.Command{
		Use:  "import FILE.csv",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := client()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			ct := "text/csv"
			if strings.HasSuffix(args[0], ".json") {
				ct = "application/json"
			}
			req, err := cl.newRequest(cmd.Context(), http.MethodPost, "/bootstrap/credentials/import", bytes.NewReader(data))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", ct)
			out, err := cl.do(req, http.StatusOK)
			if err != nil {
				return fmt.Errorf("bootstrap psk import: %w", err)
			}
			_, err = cmd.OutOrStdout().Write(append(out, '\n'))
			return err
		},
	}
	c.AddCommand(set, del, imp)
	return c
}

// bootstrapPut sends v with PUT and wants 200.
func (c *client) bootstrapPut(ctx context.Context, path string, v any) ([]byte, error) {
	return c.bootstrapCall(ctx, http.MethodPut, path, v, http.StatusOK)
}

// bootstrapCall sends v (nil: no body) as JSON and wants status want.
func (c *client) bootstrapCall(ctx context.Context, method, path string, v any, want int) ([]byte, error) {
	return c.sendJSON(ctx, method, path, v, want)
}

func bootstrapPrint(w io.Writer, b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		_, err = w.Write(b)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
