package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lwota/lwota/api"
)

// maxImportFile caps the file read; the server holds bodies to its own limit (1 MiB by default).
const maxImportFile = 64 << 20

func newCredentialsCmd(getenv func(string) string) *cobra.Command {
	var format string
	var o *outputFormat
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "store many devices' DTLS PSK credentials at once (factory provisioning), all or none",
		Long: `Store many devices' DTLS PSK credentials at once (factory provisioning), all or none: a CSV
file (header endpoint,identity,key; key in hex) or a JSON file
{"credentials": [{"endpoint": ..., "psk": {"identity": ..., "key": ...}}]}.
A bad line refuses the whole file; every bad line is printed on stderr. Needs an admin token.`,
		Args: exactArgs(1, "exactly one file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			body, err := readLimited(file, maxImportFile)
			if err != nil {
				return fmt.Errorf("credentials import: %w", err)
			}
			contentType, err := importContentType(file, format, body)
			if err != nil {
				return fmt.Errorf("credentials import %s: %w", file, err)
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			answer, err := cl.importCredentials(cmd.Context(), contentType, body, cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("credentials import %s: %w", file, err)
			}
			return o.print(out(cmd), answer, func(w io.Writer) error {
				var a api.CredentialsImport
				if err := json.Unmarshal(answer, &a); err != nil {
					return fmt.Errorf("credentials import answer: %w", err)
				}
				tw := newTable(w)
				fmt.Fprintln(tw, "IMPORTED\tCREATED\tREPLACED")
				fmt.Fprintf(tw, "%d\t%d\t%d\n", a.Imported, a.Created, a.Replaced)
				return tw.Flush()
			})
		},
	}
	imp.Flags().StringVar(&format, "format", "", "csv or json (default: from the file name, else from its first character)")
	o = addOutputFlag(imp, outputAuto)
	return group("credentials", "import many devices' DTLS credentials at once (admin)", imp)
}

// readLimited reads a whole file of at most limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// importContentType picks text/csv or application/json: --format, else the file's extension,
// else JSON when the file starts with "{".
func importContentType(file, format string, body []byte) (string, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".csv":
			format = "csv"
		case ".json":
			format = "json"
		default:
			format = "csv"
			if bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
				format = "json"
			}
		}
	}
	switch format {
	case "csv":
		return "text/csv", nil
	case "json":
		return "application/json", nil
	}
	return "", usagef("--format %q: want csv or json", format)
}

// importCredentials posts an import and returns the server's answer. A refusal (422) prints
// each bad line on report. It reads the answer itself, not through do, which keeps only an
// error's code and message.
func (c *client) importCredentials(ctx context.Context, contentType string, body []byte, report io.Writer) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "/credentials/import", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.send(req, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return answer, nil
	}
	se := &apiError{Status: resp.StatusCode, RequestID: resp.Header.Get(api.HeaderRequestID), Message: http.StatusText(resp.StatusCode)}
	var refusal api.CredentialsImportRefusal
	if json.Unmarshal(answer, &refusal) == nil && refusal.Error.Code != "" {
		se.Code, se.Message = refusal.Error.Code, refusal.Error.Message
	}
	for _, l := range refusal.Error.Lines {
		if l.Endpoint != "" {
			fmt.Fprintf(report, "line %d (%s): %s\n", l.Line, l.Endpoint, l.Message)
		} else {
			fmt.Fprintf(report, "line %d: %s\n", l.Line, l.Message)
		}
	}
	return nil, se
}
