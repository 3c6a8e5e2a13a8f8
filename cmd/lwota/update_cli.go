package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const updateUsage = `usage: lwota update <command> [flags]

commands:
  start ENDPOINT --image ID     start a firmware update of one device
        [--method auto|pull|push] [--strict] [--max-attempts N] [--block-size N]
        [--wait [--poll 2s]]     wait until the update ends, printing each state change;
                                 exit status 1 when it fails or is cancelled
  status ENDPOINT [JOB_ID]      the device's updates, newest first (--limit N), or one with its history
  cancel ENDPOINT JOB_ID        cancel an update [--reason TEXT]

Every command takes --server (env LWOTA_SERVER, default http://127.0.0.1:8080), --token
(env LWOTA_TOKEN, sent as Authorization: Bearer) and --json (print the server's JSON instead of text).
`

func updateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runSubcommand(ctx, "update", updateUsage, map[string]subcommand{
		"start":  updateStart,
		"status": updateStatus,
		"cancel": updateCancel,
	}, args, stdout, stderr, getenv)
}

// updateJob is what the commands read of a job's JSON (api's jobJSON and its history).
type updateJob struct {
	ID               string             `json:"id"`
	Endpoint         string             `json:"endpoint"`
	ImageID          string             `json:"image_id"`
	ImageVersion     string             `json:"image_version"`
	ImageSize        int64              `json:"image_size"`
	Method           string             `json:"method"`
	Delivery         string             `json:"delivery"`
	State            string             `json:"state"`
	Reason           string             `json:"reason"`
	Attempt          int                `json:"attempt"`
	MaxAttempts      int                `json:"max_attempts"`
	CreatedAt        time.Time          `json:"created_at"`
	UpdatedAt        time.Time          `json:"updated_at"`
	BytesDelivered   int64              `json:"bytes_delivered"`
	Progress         float64            `json:"progress"`
	DeviceStateText  string             `json:"device_state_text"`
	DeviceResultText string             `json:"device_result_text"`
	FromVersion      string             `json:"from_version"`
	NextAttemptAt    time.Time          `json:"next_attempt_at"`
	CampaignID       string             `json:"campaign_id"`
	History          []updateTransition `json:"history"`
}

type updateTransition struct {
	Seq     int       `json:"seq"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	Attempt int       `json:"attempt"`
}

func parseJob(b []byte) (updateJob, error) {
	var j updateJob
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("update answer: %w", err)
	}
	return j, nil
}

// over reports whether nothing more happens to the job: succeeded, cancelled, or failed with no
// retry scheduled.
func (j updateJob) over() bool {
	return j.State == "succeeded" || j.State == "cancelled" || j.State == "failed" && j.NextAttemptAt.IsZero()
}

// percent is the job's progress, rounded down: 100% only when every byte went.
func (j updateJob) percent() string { return strconv.Itoa(int(j.Progress*100)) + "%" }

func (j updateJob) image() string {
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
	clientFlags
	image       string
	method      string
	strict      bool
	maxAttempts int
	blockSize   int
	wait        bool
	poll        time.Duration
	json        bool
	force       bool
	given       map[string]bool
}

func parseStartFlags(args []string, stderr io.Writer, getenv func(string) string) (startConfig, string, error) {
	c := startConfig{given: map[string]bool{}}
	fs := newFlagSet("update start", stderr)
	c.register(fs)
	fs.StringVar(&c.image, "image", "", "the id of the image to install, or a unique prefix of it (required)")
	fs.BoolVar(&c.force, "force", false, "install although the image is for another model or the device already runs its version (admin tokens only; audited)")
	fs.StringVar(&c.method, "method", "auto", "how the image gets to the device: pull, push or auto")
	fs.BoolVar(&c.strict, "strict", false, "fail when the device never reports the image's version (default: the server's policy)")
	fs.IntVar(&c.maxAttempts, "max-attempts", 0, "attempts before a retryable failure is final, 1 to 20 (default: the server's policy)")
	fs.IntVar(&c.blockSize, "block-size", 0, "push block size: 16 to 1024, a power of two (default: the server's policy)")
	fs.BoolVar(&c.wait, "wait", false, "wait until the update ends, printing each state change; fail when it fails")
	fs.DurationVar(&c.poll, "poll", 2*time.Second, "with --wait: how often to ask the server")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON")
	rest, err := parseClient(fs, args, getenv)
	if err != nil {
		return c, "", err
	}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	switch {
	case len(rest) == 0:
		return c, "", errors.New("update start: give the device's endpoint name")
	case len(rest) > 1:
		return c, "", fmt.Errorf("update start: unexpected argument %q", rest[1])
	case c.image == "":
		return c, "", errors.New("update start: --image is required")
	case c.poll <= 0:
		return c, "", errors.New("update start: --poll must be positive")
	}
	return c, rest[0], nil
}

// body is the JSON of POST /devices/{endpoint}/updates: policy fields only for the flags given, so
// that the server's defaults apply to the rest.
func (c startConfig) body() map[string]any {
	b := map[string]any{"image_id": c.image, "method": c.method}
	if c.force {
		b["force"] = true
	}
	policy := map[string]any{}
	if c.given["strict"] {
		policy["strict"] = c.strict
	}
	if c.given["max-attempts"] {
		policy["max_attempts"] = c.maxAttempts
	}
	if c.given["block-size"] {
		policy["block_size"] = c.blockSize
	}
	if len(policy) > 0 {
		b["policy"] = policy
	}
	return b
}

func updateStart(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, ep, err := parseStartFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	cl, err := cfg.client("update start")
	if err != nil {
		return err
	}
	if cfg.image, err = cl.resolveImage(ctx, cfg.image); err != nil {
		return fmt.Errorf("update start %s: %w", ep, err)
	}
	answer, err := cl.startUpdate(ctx, ep, cfg.body())
	var se *serverError
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
	log := stdout // state changes; with --json stdout is for the JSON alone
	if cfg.json {
		log = stderr
	}
	if !cfg.wait {
		if cfg.json {
			return writeJSON(stdout, answer)
		}
		fmt.Fprintf(stdout, "update %s of %s started: image %s, method %s, %s\n", j.ID, ep, j.image(), j.Method, j.State)
		return nil
	}
	fmt.Fprintf(log, "update %s of %s started: image %s, method %s\n", j.ID, ep, j.image(), j.Method)
	fmt.Fprintf(log, "%s  %-10s  attempt %d\n", timeText(j.CreatedAt), j.State, j.Attempt)
	answer, j, err = waitUpdate(ctx, cl, ep, j.ID, cfg.poll, log)
	if err != nil {
		return fmt.Errorf("update start %s: waiting for %s: %w", ep, j.ID, err)
	}
	if cfg.json {
		if err := writeJSON(stdout, answer); err != nil {
			return err
		}
	}
	if j.State != "succeeded" {
		return fmt.Errorf("update %s of %s %s: %s", j.ID, ep, j.State, orDash(j.Reason))
	}
	if !cfg.json {
		fmt.Fprintf(log, "update %s of %s succeeded: %s runs %s\n", j.ID, ep, ep, j.ImageVersion)
	}
	return nil
}

// waitUpdate polls the job every poll until it is over, printing each transition after the first to
// w. It returns the last answer. A 503 (the server starting or stopping) is asked again.
func waitUpdate(ctx context.Context, cl *client, ep, id string, poll time.Duration, w io.Writer) ([]byte, updateJob, error) {
	seen := 1 // the creation, printed by the caller
	j := updateJob{ID: id}
	for {
		answer, err := cl.update(ctx, ep, id)
		var se *serverError
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
			if j.over() {
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

func updateStatus(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var asJSON bool
	var limit int
	fs := newFlagSet("update status", stderr)
	cf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON")
	fs.IntVar(&limit, "limit", 20, "list at most this many updates (the server caps it at 200)")
	rest, err := parseClient(fs, args, getenv)
	switch {
	case err != nil:
		return err
	case len(rest) == 0 || len(rest) > 2:
		return errors.New("update status: give the device's endpoint name, and a job id for one update")
	case limit < 1:
		return errors.New("update status: --limit must be positive")
	}
	ep := rest[0]
	cl, err := cf.client("update status")
	if err != nil {
		return err
	}
	if len(rest) == 2 {
		if rest[1], err = cl.resolveJob(ctx, ep, rest[1]); err != nil {
			return fmt.Errorf("update status %s: %w", ep, err)
		}
		answer, err := cl.update(ctx, ep, rest[1])
		if err != nil {
			return fmt.Errorf("update status %s %s: %w", ep, rest[1], err)
		}
		if asJSON {
			return writeJSON(stdout, answer)
		}
		j, err := parseJob(answer)
		if err != nil {
			return fmt.Errorf("update status %s %s: %w", ep, rest[1], err)
		}
		return printJob(stdout, j)
	}
	list, err := cl.updates(ctx, ep, limit)
	if err != nil {
		return fmt.Errorf("update status %s: %w", ep, err)
	}
	if asJSON {
		return writeJSONList(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "no updates of %s\n", ep)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPT\tIMAGE\tPROGRESS\tUPDATED\tREASON")
	for _, raw := range list {
		j, err := parseJob(raw)
		if err != nil {
			return fmt.Errorf("update status %s: %w", ep, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", j.ID, j.State, j.Attempt, j.MaxAttempts, j.image(), j.percent(),
			timeText(j.UpdatedAt), j.Reason)
	}
	return tw.Flush()
}

// printJob writes one job and its history as text.
func printJob(w io.Writer, j updateJob) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("update", j.ID)
	row("device", j.Endpoint)
	row("image", fmt.Sprintf("%s, %d bytes", j.image(), j.ImageSize))
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
	row("progress", fmt.Sprintf("%s (%d of %d bytes)", j.percent(), j.BytesDelivered, j.ImageSize))
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

func updateCancel(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var reason string
	var asJSON bool
	fs := newFlagSet("update cancel", stderr)
	cf.register(fs)
	fs.StringVar(&reason, "reason", "", "why, kept in the update's history")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON")
	rest, err := parseClient(fs, args, getenv)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return errors.New("update cancel: give the device's endpoint name and the job id")
	}
	ep, id := rest[0], rest[1]
	cl, err := cf.client("update cancel")
	if err != nil {
		return err
	}
	if id, err = cl.resolveJob(ctx, ep, id); err != nil {
		return fmt.Errorf("update cancel %s: %w", ep, err)
	}
	answer, err := cl.cancelUpdate(ctx, ep, id, reason)
	if err != nil {
		return fmt.Errorf("update cancel %s %s: %w", ep, id, err)
	}
	if asJSON {
		return writeJSON(stdout, answer)
	}
	j, err := parseJob(answer)
	if err != nil {
		return fmt.Errorf("update cancel %s %s: %w", ep, id, err)
	}
	fmt.Fprintf(stdout, "update %s of %s %s\n", j.ID, ep, j.State)
	return nil
}
