package main

import (
	"github.com/lwota/lwota/api"
	"net/url"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func newUpdateCmd(getenv func(string) string) *cobra.Command {
	return group("update", "start, follow and cancel the firmware update of one device",
		newUpdateStartCmd(getenv), newUpdateStatusCmd(getenv), newUpdateCancelCmd(getenv))
}

func parseJob(b []byte) (api.JobDetail, error) {
	var j api.JobDetail
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("update answer: %w", err)
	}
	return j, nil
}

// jobOver reports whether nothing more happens to the job: succeeded, cancelled, or failed with
// no retry scheduled.
func jobOver(j api.JobDetail) bool {
	return j.State == "succeeded" || j.State == "cancelled" || j.State == "failed" && j.NextAttemptAt.IsZero()
}

// jobPercent is the job's progress, rounded down: 100% only when every byte went.
func jobPercent(j api.JobDetail) string { return strconv.Itoa(int(j.Progress*100)) + "%" }

func jobImage(j api.JobDetail) string {
	if j.ImageVersion == "" {
		return j.ImageID
	}
	return j.ImageID + " (" + j.ImageVersion + ")"
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type startConfig struct {
	image       string
	method      string
	strict      bool
	maxAttempts int
	blockSize   int
	wait        bool
	poll        time.Duration
	force       bool
	given       func(name string) bool // the flag was on the command line
}

func (c *startConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.image, "image", "", "the id of the image to install, or a unique prefix of it (required)")
	fs.BoolVar(&c.force, "force", false, "install although the image is for another model or the device already runs its version (admin tokens only; audited)")
	fs.StringVar(&c.method, "method", "auto", "how the image gets to the device: pull, push or auto")
	fs.BoolVar(&c.strict, "strict", false, "fail when the device never reports the image's version (default: the server's policy)")
	fs.IntVar(&c.maxAttempts, "max-attempts", 0, "attempts before a retryable failure is final, 1 to 20 (default: the server's policy)")
	fs.IntVar(&c.blockSize, "block-size", 0, "push block size: 16 to 1024, a power of two (default: the server's policy)")
	fs.BoolVar(&c.wait, "wait", false, "wait until the update ends, printing each state change; exit status 1 when it fails or is cancelled")
	fs.DurationVar(&c.poll, "poll", 2*time.Second, "with --wait: how often to ask the server")
	c.given = func(name string) bool { return fs.Changed(name) }
}

func (c startConfig) check() error {
	switch {
	case c.image == "":
		return usagef("update start: --image is required")
	case c.poll <= 0:
		return usagef("update start: --poll must be positive")
	}
	return nil
}

// body is the JSON of POST /devices/{endpoint}/updates: policy fields only for the flags given, so
// that the server's defaults apply to the rest.
func (c startConfig) body() map[string]any {
	b := map[string]any{"image_id": c.image, "method": c.method}
	if c.force {
		b["force"] = true
	}
	policy := map[string]any{}
	if c.given("strict") {
		policy["strict"] = c.strict
	}
	if c.given("max-attempts") {
		policy["max_attempts"] = c.maxAttempts
	}
	if c.given("block-size") {
		policy["block_size"] = c.blockSize
	}
	if len(policy) > 0 {
		b["policy"] = policy
	}
	return b
}

func newUpdateStartCmd(getenv func(string) string) *cobra.Command {
	var cfg startConfig
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "start ENDPOINT --image ID [--method auto|pull|push] [--wait]",
		Short: "start a firmware update of one device",
		Args:  exactArgs(1, "the device's endpoint name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.check(); err != nil {
				return err
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			return updateStart(cmd.Context(), cl, args[0], cfg, o, out(cmd), cmd.ErrOrStderr())
		},
	}
	cfg.register(cmd.Flags())
	o = addOutputFlag(cmd, outputTable)
	return cmd
}

func updateStart(ctx context.Context, cl *client, ep string, cfg startConfig, o *outputFormat, stdout, stderr io.Writer) error {
	var err error
	if cfg.image, err = cl.resolveImage(ctx, cfg.image); err != nil {
		return fmt.Errorf("update start %s: %w", ep, err)
	}
	answer, err := cl.startUpdate(ctx, ep, cfg.body())
	var se *apiError
	if errors.As(err, &se) && se.Code == "already_up_to_date" {
		// Not a failure: the device is where the update would take it.
		fmt.Fprintf(stdout, "%s: %s\n", ep, se.Message)
		return nil
	}
	if err != nil {
		return fmt.Errorf("update start %s: %w", ep, err)
	}
	j, err := parseJob(answer)
	if err != nil {
		return fmt.Errorf("update start %s: %w", ep, err)
	}
	human := o.format(stdout) == outputTable
	log := stdout // state changes; with -o json or yaml stdout is for the document alone
	if !human {
		log = stderr
	}
	if !cfg.wait {
		return o.print(stdout, answer, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "update %s of %s started: image %s, method %s, %s\n", j.ID, ep, jobImage(j), j.Method, j.State)
			return err
		})
	}
	fmt.Fprintf(log, "update %s of %s started: image %s, method %s\n", j.ID, ep, jobImage(j), j.Method)
	fmt.Fprintf(log, "%s  %-10s  attempt %d\n", timeText(j.CreatedAt), j.State, j.Attempt)
	answer, j, err = waitUpdate(ctx, cl, ep, j.ID, cfg.poll, log)
	if err != nil {
		return fmt.Errorf("update start %s: waiting for %s: %w", ep, j.ID, err)
	}
	if !human {
		if err := o.print(stdout, answer, nil); err != nil {
			return err
		}
	}
	if j.State != "succeeded" {
		return fmt.Errorf("update %s of %s %s: %s", j.ID, ep, j.State, orDash(j.Reason))
	}
	if human {
		fmt.Fprintf(log, "update %s of %s succeeded: %s runs %s\n", j.ID, ep, ep, j.ImageVersion)
	}
	return nil
}

// waitUpdate polls the job every poll until it is over, printing each transition after the first to
// w. It returns the last answer. A 503 (the server starting or stopping) is asked again.
func waitUpdate(ctx context.Context, cl *client, ep, id string, poll time.Duration, w io.Writer) ([]byte, api.JobDetail, error) {
	seen := 1 // the creation, printed by the caller
	var j api.JobDetail
	j.ID = id
	for {
		answer, err := cl.update(ctx, ep, id)
		var se *apiError
		switch {
		case errors.As(err, &se) && se.Status == http.StatusServiceUnavailable:
		case err != nil:
			return nil, j, err
		default:
			if j, err = parseJob(answer); err != nil {
				return nil, j, err
			}
			for _, t := range j.History {
				if t.Seq > seen {
					fmt.Fprintf(w, "%s  %-10s  attempt %d%s\n", timeText(t.At), t.To, t.Attempt, reasonText(t.Reason))
					seen = t.Seq
				}
			}
			if jobOver(j) {
				return answer, j, nil
			}
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, j, ctx.Err()
		case <-timer.C:
		}
	}
}

func reasonText(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func newUpdateStatusCmd(getenv func(string) string) *cobra.Command {
	var limit int
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "status ENDPOINT [JOB_ID]",
		Short: "the device's updates, newest first, or one with its history",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || len(args) > 2 {
				return usagef("update status: give the device's endpoint name, and a job id for one update")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 {
				return usagef("update status: --limit must be positive")
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			return updateStatus(cmd.Context(), cl, args, limit, o, out(cmd))
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "list at most this many updates (the server caps it at 200)")
	o = addOutputFlag(cmd, outputTable)
	return cmd
}

// updateStatus prints one job (args: endpoint and job id) or the endpoint's newest jobs. A
// device lwota does not know is a 404, not an empty list: a typo must not look like "no updates".
func updateStatus(ctx context.Context, cl *client, args []string, limit int, o *outputFormat, stdout io.Writer) error {
	ep := args[0]
	if len(args) == 2 {
		id, err := cl.resolveJob(ctx, ep, args[1])
		if err != nil {
			return fmt.Errorf("update status %s: %w", ep, err)
		}
		answer, err := cl.update(ctx, ep, id)
		if err != nil {
			return fmt.Errorf("update status %s %s: %w", ep, id, err)
		}
		return o.print(stdout, answer, func(w io.Writer) error {
			j, err := parseJob(answer)
			if err != nil {
				return fmt.Errorf("update status %s %s: %w", ep, id, err)
			}
			return printJob(w, j)
		})
	}
	list, err := cl.updates(ctx, ep, limit)
	if err != nil {
		return fmt.Errorf("update status %s: %w", ep, err)
	}
	if len(list) == 0 {
		// The list of a device lwota never heard of is empty too; ask for the device, whose 404
		// tells a typo from a device with no updates. Any other failure leaves the list be.
		var ae *apiError
		if _, err := cl.get(ctx, "/devices/"+url.PathEscape(ep)); errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fmt.Errorf("update status %s: %w", ep, err)
		}
	}
	return o.printList(stdout, list, func(w io.Writer) error {
		if len(list) == 0 {
			_, err := fmt.Fprintf(w, "no updates of %s\n", ep)
			return err
		}
		jobs, err := decodeList[api.JobDetail]("update status "+ep, list)
		if err != nil {
			return err
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tSTATE\tATTEMPT\tIMAGE\tPROGRESS\tUPDATED\tREASON")
		for _, j := range jobs {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", j.ID, j.State, j.Attempt, j.MaxAttempts, jobImage(j), jobPercent(j),
				timeText(j.UpdatedAt), j.Reason)
		}
		return tw.Flush()
	})
}

// printJob writes one job and its history as text.
func printJob(w io.Writer, j api.JobDetail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("update", j.ID)
	row("device", j.Endpoint)
	row("image", fmt.Sprintf("%s, %d bytes", jobImage(j), j.ImageSize))
	method := j.Method
	if j.Delivery != "" {
		method += ", delivery " + j.Delivery
	}
	row("method", method)
	state := j.State
	if j.Reason != "" {
		state += ": " + j.Reason
	}
	row("state", state)
	row("attempt", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	if !j.NextAttemptAt.IsZero() {
		row("next attempt", timeText(j.NextAttemptAt))
	}
	row("progress", fmt.Sprintf("%s (%d of %d bytes)", jobPercent(j), j.BytesDelivered, j.ImageSize))
	if j.DeviceStateText != "" || j.DeviceResultText != "" {
		row("device reports", strings.Join(nonEmpty(j.DeviceStateText, j.DeviceResultText), "; "))
	}
	row("from version", orDash(j.FromVersion))
	if j.CampaignID != "" {
		row("campaign", j.CampaignID)
	}
	row("created", timeText(j.CreatedAt))
	row("updated", timeText(j.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(j.History) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tFROM\tTO\tATTEMPT\tREASON")
	for _, t := range j.History {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", t.Seq, timeText(t.At), orDash(t.From), t.To, t.Attempt, t.Reason)
	}
	return tw.Flush()
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func newUpdateCancelCmd(getenv func(string) string) *cobra.Command {
	var reason string
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "cancel ENDPOINT JOB_ID [--reason TEXT]",
		Short: "cancel an update",
		Args:  exactArgs(2, "the device's endpoint name and the job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			ep := args[0]
			id, err := cl.resolveJob(cmd.Context(), ep, args[1])
			if err != nil {
				return fmt.Errorf("update cancel %s: %w", ep, err)
			}
			answer, err := cl.cancelUpdate(cmd.Context(), ep, id, reason)
			if err != nil {
				return fmt.Errorf("update cancel %s %s: %w", ep, id, err)
			}
			return o.print(out(cmd), answer, func(w io.Writer) error {
				j, err := parseJob(answer)
				if err != nil {
					return fmt.Errorf("update cancel %s %s: %w", ep, id, err)
				}
				_, err = fmt.Fprintf(w, "update %s of %s %s\n", j.ID, ep, j.State)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the update's history")
	o = addOutputFlag(cmd, outputTable)
	return cmd
}
