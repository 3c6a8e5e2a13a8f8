package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
	"unicode/utf8"

	"github.com/lwota/lwota/api"
)

func newCampaignCmd(getenv func(string) string) *cobra.Command {
	g := group("campaign", "create, drive and watch firmware campaigns (rollouts to many devices)",
		newCampaignCreateCmd(getenv), newCampaignListCmd(getenv), newCampaignShowCmd(getenv),
		newCampaignDevicesCmd(getenv), newCampaignWatchCmd(getenv))
	for _, action := range []string{"start", "pause", "resume", "abort", "approve", "retry"} {
		g.AddCommand(newCampaignActionCmd(action, getenv))
	}
	return g
}

// ---- what the commands read of the API's JSON ------------------------------------------------

func finished(n api.CampaignCounts) int { return n.Succeeded + n.UpToDate + n.Failed + n.Cancelled }

func parseCampaign(b []byte) (api.Campaign, error) {
	var c api.Campaign
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("campaign answer: %w", err)
	}
	return c, nil
}

// campaignEnded reports whether the campaign is in a final state.
func campaignEnded(c api.Campaign) bool {
	return c.State == "completed" || c.State == "aborted" || c.State == "failed"
}

func campaignTitle(c api.Campaign) string {
	img := c.ImageID
	if c.ImageVersion != "" {
		img = c.ImageVersion
	}
	return fmt.Sprintf("campaign %s %q, image %s", c.ID, c.Name, img)
}

// ---- the API calls ---------------------------------------------------------------------------

func campaignPath(id string) string { return "/campaigns/" + url.PathEscape(id) }

// sendJSON sends body (nil: none) to path and wants status back.
func (c *client) sendJSON(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, want)
}

// openStream opens a server-sent event stream; an answer other than 200 is a *apiError.
func (c *client) openStream(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req, "text/event-stream")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	se := &apiError{Status: resp.StatusCode, RequestID: resp.Header.Get(api.HeaderRequestID), Message: http.StatusText(resp.StatusCode)}
	if code, msg, ok := errorShape(body); ok {
		se.Code, se.Message = code, msg
	}
	return nil, se
}

// ---- create ----------------------------------------------------------------------------------

type createCampaignConfig struct {
	file          string
	name, image   string
	query         string
	endpoints     string
	waves         string
	method        string
	spreadBy      string
	threshold     float64
	minDevices    int
	action        string
	maxConcurrent int
	maxStarts     int
	start, dryRun bool
	given         func(name string) bool // the flag was on the command line
}

// specFlags are the flags that build the body; --file replaces them all.
var specFlags = []string{"name", "image", "query", "endpoints", "waves", "method", "spread-by", "threshold", "min-devices",
	"action", "max-concurrent", "max-starts-per-minute"}

func (c *createCampaignConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.file, "file", "", "a JSON file holding the whole create body (see the README); replaces the flags below")
	fs.StringVar(&c.name, "name", "", "the campaign's name (required)")
	fs.StringVar(&c.image, "image", "", "the id of the image to roll out, or a unique prefix of it (required)")
	fs.StringVar(&c.query, "query", "", `the devices, as a selector query: 'model = "X" and labels.region = "eu"'`)
	fs.StringVar(&c.endpoints, "endpoints", "", "or the devices, as a comma-separated list of endpoints")
	fs.StringVar(&c.waves, "waves", "100%", `cumulative waves: "N%" of the devices or a count "N", the last being 100%`)
	fs.StringVar(&c.method, "method", "", "how images get to the devices: auto (the server's default), pull or push")
	fs.StringVar(&c.spreadBy, "spread-by", "", "a label key: every wave samples each of its values in proportion")
	fs.Float64Var(&c.threshold, "threshold", 0, "per-wave failure threshold: stop when more than this percent of the finished updates failed")
	fs.IntVar(&c.minDevices, "min-devices", 0, "with --threshold: only once this many updates of the wave finished")
	fs.StringVar(&c.action, "action", "pause", "with --threshold: pause or abort")
	fs.IntVar(&c.maxConcurrent, "max-concurrent", 0, "updates in progress at once (0: no limit)")
	fs.IntVar(&c.maxStarts, "max-starts-per-minute", 0, "updates started per minute (0: no limit)")
	fs.BoolVar(&c.start, "start", false, "start it at once")
	fs.BoolVar(&c.dryRun, "dry-run", false, "store nothing; print what it would select")
	c.given = func(name string) bool { return fs.Changed(name) }
}

// check refuses flags that do not go together.
func (c *createCampaignConfig) check() error {
	if c.file != "" {
		for _, f := range specFlags {
			if c.given(f) {
				return usagef("campaign create: --%s and --file: the file holds the whole body", f)
			}
		}
		return nil
	}
	switch {
	case c.name == "" || c.image == "":
		return usagef("campaign create: --name and --image are required")
	case (c.query == "") == (c.endpoints == ""):
		return usagef("campaign create: give the devices with --query or with --endpoints, one of them")
	case !c.given("threshold") && (c.given("min-devices") || c.given("action")):
		return usagef("campaign create: --min-devices and --action go with --threshold")
	}
	return nil
}

// parseWaves reads "2%,20%,100%" or "10,50%,100%" into the body's waves.
func parseWaves(s string) ([]map[string]any, error) {
	var out []map[string]any
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if pct, ok := strings.CutSuffix(part, "%"); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
			if err != nil {
				return nil, usagef("--waves: %q is not a percentage", part)
			}
			out = append(out, map[string]any{"percent": v})
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, usagef(`--waves: %q is neither "N%%" nor a count`, part)
		}
		out = append(out, map[string]any{"count": n})
	}
	return out, nil
}

// body is the create body the flags (or the file) describe.
func (c createCampaignConfig) body() (map[string]any, error) {
	b := map[string]any{}
	if c.file != "" {
		raw, err := os.ReadFile(c.file)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers go to the server as written
		if err := dec.Decode(&b); err != nil {
			return nil, fmt.Errorf("%s: not a JSON object: %w", c.file, err)
		}
	} else {
		waves, err := parseWaves(c.waves)
		if err != nil {
			return nil, err
		}
		b["name"], b["image_id"], b["waves"] = c.name, c.image, waves
		if c.query != "" {
			b["selector"] = map[string]any{"query": c.query}
		} else {
			var eps []string
			for _, ep := range strings.Split(c.endpoints, ",") {
				if ep = strings.TrimSpace(ep); ep != "" {
					eps = append(eps, ep)
				}
			}
			b["selector"] = map[string]any{"endpoints": eps}
		}
		if c.method != "" {
			b["method"] = c.method
		}
		if c.spreadBy != "" {
			b["spread_by"] = c.spreadBy
		}
		if c.given("threshold") {
			b["failure_threshold"] = map[string]any{"percent": c.threshold, "min_devices": c.minDevices, "action": c.action}
		}
		if c.given("max-concurrent") || c.given("max-starts-per-minute") {
			b["pacing"] = map[string]any{"max_concurrent": c.maxConcurrent, "max_starts_per_minute": c.maxStarts}
		}
	}
	if c.given("start") || c.file == "" {
		b["start"] = c.start
	}
	if c.given("dry-run") || c.file == "" {
		b["dry_run"] = c.dryRun
	}
	return b, nil
}

func newCampaignCreateCmd(getenv func(string) string) *cobra.Command {
	var cfg createCampaignConfig
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "create --name N --image ID (--query Q | --endpoints a,b,c) [--waves 2%,20%,100%] [--start] [--dry-run]",
		Short: "create a campaign (a draft unless --start)",
		Long: `Create a campaign, a draft unless --start. --file spec.json sends that body instead (--start and
--dry-run still apply). A wave is "N%" of the devices or a count "N"; --threshold PCT [--min-devices N]
[--action pause|abort] stops a wave whose failures pass it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.check(); err != nil {
				return err
			}
			body, err := cfg.body()
			if err != nil {
				return fmt.Errorf("campaign create: %w", err)
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			return campaignCreate(cmd.Context(), cl, body, o, out(cmd))
		},
	}
	cfg.register(cmd.Flags())
	o = addOutputFlag(cmd, outputTable)
	return cmd
}

func campaignCreate(ctx context.Context, cl *client, body map[string]any, o *outputFormat, stdout io.Writer) error {
	var err error
	if id, _ := body["image_id"].(string); id != "" {
		if body["image_id"], err = cl.resolveImage(ctx, id); err != nil {
			return fmt.Errorf("campaign create: %w", err)
		}
	}
	dry, _ := body["dry_run"].(bool)
	want := http.StatusCreated
	if dry {
		want = http.StatusOK
	}
	answer, err := cl.sendJSON(ctx, http.MethodPost, "/campaigns", body, want)
	if err != nil {
		return fmt.Errorf("campaign create: %w", err)
	}
	return o.print(stdout, answer, func(w io.Writer) error {
		if dry {
			var d api.CampaignDryRun
			if err := json.Unmarshal(answer, &d); err != nil {
				return fmt.Errorf("campaign create: dry run answer: %w", err)
			}
			fmt.Fprintf(w, "would select %d devices\n", d.Devices)
			for _, wv := range d.Waves {
				fmt.Fprintf(w, "  wave %d: %d devices\n", wv.Wave, wv.Size)
			}
			if n := min(len(d.Endpoints), 10); n > 0 {
				more := ""
				if d.Devices > n {
					more = fmt.Sprintf(", ... (%d more)", d.Devices-n)
				}
				fmt.Fprintf(w, "first to update: %s%s\n", strings.Join(d.Endpoints[:n], ", "), more)
			}
			return nil
		}
		c, err := parseCampaign(answer)
		if err != nil {
			return fmt.Errorf("campaign create: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s created: %s, %d devices in %d waves\n", campaignTitle(c), c.State, c.Progress.Total, len(c.Progress.Waves))
		return err
	})
}

// ---- list, show, devices ---------------------------------------------------------------------

func newCampaignListCmd(getenv func(string) string) *cobra.Command {
	var state string
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "list [--state running,paused]",
		Short: "the campaigns, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			path := "/campaigns"
			if state != "" {
				path += "?state=" + url.QueryEscape(state)
			}
			answer, err := cl.get(cmd.Context(), path)
			if err != nil {
				return fmt.Errorf("campaign list: %w", err)
			}
			var l struct {
				Campaigns []json.RawMessage `json:"campaigns"`
			}
			if err := json.Unmarshal(answer, &l); err != nil {
				return fmt.Errorf("campaign list: answer: %w", err)
			}
			return o.printList(out(cmd), l.Campaigns, func(w io.Writer) error {
				if len(l.Campaigns) == 0 {
					_, err := fmt.Fprintln(w, "no campaigns")
					return err
				}
				list, err := decodeList[api.Campaign]("campaign list", l.Campaigns)
				if err != nil {
					return err
				}
				tw := newTable(w)
				fmt.Fprintln(tw, "ID\tNAME\tSTATE\tWAVE\tDEVICES\tUPDATED\tFAILED\tCREATED")
				for _, c := range list {
					n := c.Progress.Counts
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", c.ID, c.Name, c.State, waveText(c), c.Progress.Total,
						n.Succeeded+n.UpToDate, n.Failed, timeText(c.CreatedAt))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only campaigns in these states, comma-separated (running,paused)")
	o = addOutputFlag(cmd, outputTable)
	return cmd
}

func waveText(c api.Campaign) string {
	if c.Wave == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", c.Wave, len(c.Progress.Waves))
}

func newCampaignShowCmd(getenv func(string) string) *cobra.Command {
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "one campaign with its progress (ID may be a unique prefix)",
		Args:  exactArgs(1, "the campaign id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			id, err := cl.resolveCampaign(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			answer, err := cl.get(cmd.Context(), campaignPath(id))
			if err != nil {
				return fmt.Errorf("campaign show %s: %w", id, err)
			}
			return o.print(out(cmd), answer, func(w io.Writer) error {
				c, err := parseCampaign(answer)
				if err != nil {
					return fmt.Errorf("campaign show %s: %w", id, err)
				}
				return printCampaign(w, c)
			})
		},
	}
	o = addOutputFlag(cmd, outputTable)
	return cmd
}

func printCampaign(w io.Writer, c api.Campaign) error {
	devices := c.Selector.Query
	if devices == "" {
		devices = strings.Join(c.Selector.Endpoints, ", ")
	}
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("campaign", c.ID)
	row("name", c.Name)
	row("image", c.ImageID+" ("+c.ImageVersion+")")
	row("devices", devices)
	row("created", timeText(c.CreatedAt)+" by "+orDash(c.CreatedBy))
	row("started", timeText(c.StartedAt))
	if !c.EndedAt.IsZero() {
		row("ended", timeText(c.EndedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	_, err := io.WriteString(w, renderCampaign(c, time.Now(), false, serverRate(c)))
	return err
}

func newCampaignDevicesCmd(getenv func(string) string) *cobra.Command {
	var state string
	var limit int
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "devices ID [--state failed] [--limit 100]",
		Short: "the campaign's devices, by endpoint",
		Args:  exactArgs(1, "the campaign id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 {
				return usagef("campaign devices: --limit must be positive")
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			id, err := cl.resolveCampaign(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			all, err := cl.campaignDevices(cmd.Context(), id, state, limit)
			if err != nil {
				return fmt.Errorf("campaign devices %s: %w", id, err)
			}
			return o.printList(out(cmd), all, func(w io.Writer) error {
				if len(all) == 0 {
					_, err := fmt.Fprintln(w, "no devices")
					return err
				}
				devices, err := decodeList[api.CampaignDevice]("campaign devices "+id, all)
				if err != nil {
					return err
				}
				tw := newTable(w)
				fmt.Fprintln(tw, "ENDPOINT\tWAVE\tSTATE\tATTEMPTS\tJOB\tSTARTED\tENDED\tREASON")
				for _, d := range devices {
					job := orDash(d.JobID)
					if d.JobState != "" {
						job += " (" + d.JobState + ")"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", d.Endpoint, d.Wave, d.State, d.Attempts, job,
						timeText(d.StartedAt), timeText(d.EndedAt), d.Reason)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only devices in this state: pending, in_progress, succeeded, already_up_to_date, failed, cancelled")
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many devices")
	o = addOutputFlag(cmd, outputTable)
	return cmd
}

// campaignDevices follows the pages of the campaign's devices up to limit, each device kept as
// the server wrote it.
func (c *client) campaignDevices(ctx context.Context, id, state string, limit int) ([]json.RawMessage, error) {
	var all []json.RawMessage
	after := ""
	for len(all) < limit {
		q := url.Values{"limit": {strconv.Itoa(min(limit-len(all), 1000))}}
		if state != "" {
			q.Set("state", state)
		}
		if after != "" {
			q.Set("after", after)
		}
		answer, err := c.get(ctx, campaignPath(id)+"/devices?"+q.Encode())
		if err != nil {
			return nil, err
		}
		var page struct {
			Devices []json.RawMessage `json:"devices"`
			Next    string            `json:"next"`
		}
		if err := json.Unmarshal(answer, &page); err != nil {
			return nil, fmt.Errorf("answer: %w", err)
		}
		all = append(all, page.Devices...)
		if page.Next == "" || page.Next == after {
			break
		}
		after = page.Next
	}
	return all, nil
}

// ---- actions ---------------------------------------------------------------------------------

var campaignActionShort = map[string]string{
	"start":   "start a draft",
	"pause":   "no update starts any more; those in flight finish",
	"resume":  "go on, optionally with a raised per-wave failure threshold",
	"abort":   "end it; --hard cancels the updates in flight",
	"approve": "open the manual gate of the current wave",
	"retry":   "give every failed device a new attempt",
}

func newCampaignActionCmd(action string, getenv func(string) string) *cobra.Command {
	var reason, thresholdAction string
	var hard bool
	var threshold float64
	var minDevices int
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: campaignActionShort[action],
		Args:  exactArgs(1, "the campaign id"),
	}
	fs := cmd.Flags()
	switch action {
	case "pause", "abort":
		fs.StringVar(&reason, "reason", "", "why, kept in the campaign's history")
	case "resume":
		fs.Float64Var(&threshold, "threshold", 0, "a new per-wave failure threshold, in percent of the finished updates")
		fs.IntVar(&minDevices, "min-devices", 0, "with --threshold: only once this many updates of the wave finished")
		fs.StringVar(&thresholdAction, "action", "pause", "with --threshold: pause or abort")
	}
	if action == "abort" {
		fs.BoolVar(&hard, "hard", false, "cancel the updates in flight too (default: they finish)")
	}
	o = addOutputFlag(cmd, outputTable)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var body any
		switch action {
		case "pause":
			body = map[string]string{"reason": reason}
		case "abort":
			mode := "soft"
			if hard {
				mode = "hard"
			}
			body = map[string]string{"reason": reason, "mode": mode}
		case "resume":
			if fs.Changed("threshold") {
				body = map[string]any{"failure_threshold": map[string]any{"percent": threshold, "min_devices": minDevices, "action": thresholdAction}}
			} else if fs.Changed("min-devices") || fs.Changed("action") {
				return usagef("campaign resume: --min-devices and --action go with --threshold")
			}
		}
		cl, err := apiClient(cmd, getenv)
		if err != nil {
			return err
		}
		id, err := cl.resolveCampaign(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		answer, err := cl.sendJSON(cmd.Context(), http.MethodPost, campaignPath(id)+"/"+action, body, http.StatusOK)
		if err != nil {
			return fmt.Errorf("campaign %s %s: %w", action, id, err)
		}
		return o.print(out(cmd), answer, func(w io.Writer) error {
			c, err := parseCampaign(answer)
			if err != nil {
				return fmt.Errorf("campaign %s %s: %w", action, id, err)
			}
			_, err = fmt.Fprintf(w, "campaign %s %s%s\n", c.ID, c.State, reasonText(c.Reason))
			return err
		})
	}
	return cmd
}

// ---- watch -----------------------------------------------------------------------------------

// sseEvent is one event of a server-sent event stream.
type sseEvent struct {
	Event string
	Data  string
}

// readEvents calls fn for every event of a text/event-stream until it ends or fn fails.
func readEvents(r io.Reader, fn func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxAnswerBytes)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if ev.Event != "" || len(data) > 0 {
				ev.Data = strings.Join(data, "\n")
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
	return sc.Err()
}

// errCampaignEnded stops reading the stream once the campaign has ended.
var errCampaignEnded = errors.New("campaign ended")

// watchConfig is how watch draws: redrawn in place on a terminal, a line per change otherwise.
type watchConfig struct {
	live  bool
	width int // of the terminal, 0 when unknown; only to count the rows a wrapped line takes
	now   func() time.Time
	retry time.Duration // wait before reconnecting a dropped stream
}

func newCampaignWatchCmd(getenv func(string) string) *cobra.Command {
	var plain bool
	cmd := &cobra.Command{
		Use:   "watch ID [--plain]",
		Short: "live progress until the campaign ends; exit status 1 when it ends aborted or failed",
		Args:  exactArgs(1, "the campaign id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			id, err := cl.resolveCampaign(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			stdout := out(cmd)
			cfg := watchConfig{live: !plain && isTerminal(stdout), now: time.Now, retry: 2 * time.Second}
			if f, ok := stdout.(*os.File); ok && cfg.live {
				if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
					cfg.width = w
				}
			}
			c, err := watchCampaign(cmd.Context(), cl, id, stdout, cfg)
			if err != nil {
				return fmt.Errorf("campaign watch %s: %w", id, err)
			}
			if c.State != "completed" {
				return fmt.Errorf("campaign %s %s%s", c.ID, c.State, reasonText(c.Reason))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&plain, "plain", false, "a line per change, even on a terminal")
	return cmd
}

// rateWindow is how far back watch looks for its devices/min rate.
const rateWindow = time.Minute

// rateMeter is watch's throughput: devices finished per minute over the last rateWindow of
// the progress it saw. The live view and --plain print the one rate it computes, from the same
// samples, so they cannot disagree.
type rateMeter struct {
	window  time.Duration
	samples []rateSample // oldest first; the first may be older than the window, as its start
}

type rateSample struct {
	at       time.Time
	finished int
}

// add records that finished devices had finished at at. A count that went down (a retry
// reopened failed devices) starts the window again.
func (m *rateMeter) add(at time.Time, finished int) {
	if n := len(m.samples); n > 0 && (finished < m.samples[n-1].finished || at.Before(m.samples[n-1].at)) {
		m.samples = m.samples[:0]
	}
	m.samples = append(m.samples, rateSample{at, finished})
	for len(m.samples) > 2 && !m.samples[1].at.After(at.Add(-m.window)) {
		m.samples = m.samples[1:]
	}
}

// perMinute is the rate over the window; ok is false until two samples span some time.
func (m *rateMeter) perMinute() (rate float64, ok bool) {
	if len(m.samples) < 2 {
		return 0, false
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	span := last.at.Sub(first.at)
	if span <= 0 {
		return 0, false
	}
	return float64(last.finished-first.finished) / span.Minutes(), true
}

// progressRate is the rate and the ETA a view prints: the server's until the meter has seen
// some time go by, its own then.
type progressRate struct {
	perMinute float64
	eta       time.Time
}

func serverRate(c api.Campaign) progressRate {
	return progressRate{perMinute: c.Progress.ThroughputPerMinute, eta: c.Progress.ETA}
}

// observe feeds c, seen at now, to m and returns the rate to print.
func (m *rateMeter) observe(c api.Campaign, now time.Time) progressRate {
	m.add(now, finished(c.Progress.Counts))
	r, ok := m.perMinute()
	if !ok {
		return serverRate(c)
	}
	pr := progressRate{perMinute: r}
	if left := c.Progress.Total - finished(c.Progress.Counts); left > 0 && r > 0 && !campaignEnded(c) {
		pr.eta = now.Add(time.Duration(float64(left) / r * float64(time.Minute))).Truncate(time.Second)
	}
	return pr
}

// watchCampaign follows the campaign's event stream until the campaign ends and returns it as
// it ended. A dropped stream (the server restarting) is opened again; an error answer is final.
func watchCampaign(ctx context.Context, cl *client, id string, w io.Writer, cfg watchConfig) (api.Campaign, error) {
	var last api.Campaign
	meter := &rateMeter{window: rateWindow}
	drawn := 0 // rows of the live view on screen
	handle := func(ev sseEvent) error {
		switch ev.Event {
		case "state":
			if cfg.live {
				return nil // the progress event that follows redraws the view
			}
			var st api.CampaignStateEvent
			if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
				return fmt.Errorf("state event: %w", err)
			}
			fmt.Fprintf(w, "%s  %s -> %s%s\n", clock(st.At), st.From, st.To, reasonText(st.Reason))
		case "progress":
			c, err := parseCampaign([]byte(ev.Data))
			if err != nil {
				return err
			}
			last = c
			now := cfg.now()
			rate := meter.observe(c, now)
			if cfg.live {
				if drawn > 0 {
					fmt.Fprintf(w, "\x1b[%dA\r\x1b[J", drawn) // back to the view's first row, clear below
				}
				view := renderCampaign(c, now, true, rate)
				drawn = screenRows(view, cfg.width)
				fmt.Fprint(w, view)
			} else {
				fmt.Fprintln(w, progressLine(c, now, rate))
			}
			if campaignEnded(c) {
				return errCampaignEnded
			}
		}
		return nil
	}
	for {
		body, err := cl.openStream(ctx, campaignPath(id)+"/events")
		var se *apiError
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case errors.As(err, &se) && se.Status != http.StatusServiceUnavailable && se.Status != http.StatusBadGateway:
			return last, err
		case err == nil:
			err = readEvents(body, handle)
			body.Close()
			if errors.Is(err, errCampaignEnded) {
				return last, nil
			}
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if !cfg.live {
			fmt.Fprintf(w, "%s  stream interrupted (%v); reconnecting\n", clock(cfg.now()), orEOF(err))
		}
		t := time.NewTimer(cfg.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// screenRows is how many terminal rows s takes on a terminal width columns wide: a line longer
// than the terminal wraps onto more rows. Nothing is cut, so that no text is lost; the count
// only lets the next redraw go back up far enough. width 0 (unknown) counts lines.
func screenRows(s string, width int) int {
	rows := 0
	for _, line := range strings.SplitAfter(s, "\n") {
		body, nl := strings.CutSuffix(line, "\n")
		if !nl {
			continue // the part after the last newline: the cursor stays on its row
		}
		n := utf8.RuneCountInString(body)
		if width <= 0 || n <= width {
			rows++
			continue
		}
		rows += (n + width - 1) / width
	}
	return rows
}

func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "--:--:--"
	}
	return t.UTC().Format("15:04:05")
}

// progressLine is the campaign in one line: the plain watch output.
func progressLine(c api.Campaign, now time.Time, rate progressRate) string {
	n := c.Progress.Counts
	s := fmt.Sprintf("%s  %s  wave %s  %d/%d finished: %d succeeded, %d up to date, %d failed, %d cancelled; %d in progress, %d pending",
		clock(now), c.State, waveText(c), finished(n), c.Progress.Total, n.Succeeded, n.UpToDate, n.Failed, n.Cancelled, n.InProgress, n.Pending)
	if r := rate.perMinute; r > 0 {
		s += fmt.Sprintf("; %.1f/min", r)
	}
	if eta := rate.eta; !eta.IsZero() {
		s += "; ETA " + clock(eta)
	}
	if c.Reason != "" {
		s += "; " + c.Reason
	}
	return s
}

// barWidth is the width of a wave's bar, in characters.
const barWidth = 30

// bar draws counts over size: "=" succeeded or up to date, "!" failed, "x" cancelled,
// "~" in progress, "." pending.
func bar(n api.CampaignCounts, size int) string {
	if size <= 0 {
		return "[" + strings.Repeat(" ", barWidth) + "]"
	}
	var b strings.Builder
	b.WriteByte('[')
	used, acc := 0, 0
	for _, part := range []struct {
		n  int
		ch string
	}{{n.Succeeded + n.UpToDate, "="}, {n.Failed, "!"}, {n.Cancelled, "x"}, {n.InProgress, "~"}, {n.Pending, "."}} {
		// Cumulative rounding, so that the parts always fill the bar exactly.
		acc += part.n
		end := acc * barWidth / size
		if end > used {
			b.WriteString(strings.Repeat(part.ch, end-used))
			used = end
		}
	}
	b.WriteString(strings.Repeat(" ", barWidth-used))
	b.WriteByte(']')
	return b.String()
}

func percentText(x float64) string { return strconv.FormatFloat(x*100, 'f', 1, 64) + "%" }

// renderCampaign is the campaign as a block of lines: state, counts, rates, a bar per wave and
// the top failure reasons. withTitle adds the campaign's name first (watch).
func renderCampaign(c api.Campaign, now time.Time, withTitle bool, r progressRate) string {
	var b strings.Builder
	if withTitle {
		fmt.Fprintf(&b, "%s\n", campaignTitle(c))
	}
	fmt.Fprintf(&b, "state     %s, wave %s\n", c.State, waveText(c))
	if c.Reason != "" {
		fmt.Fprintf(&b, "reason    %s\n", c.Reason)
	}
	n := c.Progress.Counts
	fmt.Fprintf(&b, "devices   %d: %d succeeded, %d already up to date, %d failed, %d cancelled, %d in progress, %d pending\n",
		c.Progress.Total, n.Succeeded, n.UpToDate, n.Failed, n.Cancelled, n.InProgress, n.Pending)
	rate := fmt.Sprintf("rate      success %s, failure %s, %.1f devices/min", percentText(c.Progress.SuccessRate),
		percentText(c.Progress.FailureRate), r.perMinute)
	if eta := r.eta; !eta.IsZero() {
		rate += fmt.Sprintf(", ETA %s (in %s)", clock(eta), eta.Sub(now).Round(time.Second))
	}
	fmt.Fprintln(&b, rate)
	for _, w := range c.Progress.Waves {
		gate := w.Gate
		if gate == "" {
			gate = "not started"
		}
		cur := " "
		if w.Wave == c.Wave {
			cur = ">"
		}
		fmt.Fprintf(&b, "%s wave %-2d %s %5d/%-5d %s\n", cur, w.Wave, bar(w.Counts, w.Size), finished(w.Counts), w.Size, gate)
	}
	if len(c.FailureReasons) > 0 {
		fmt.Fprintln(&b, "failures")
		for i, r := range c.FailureReasons {
			if i == 5 {
				break
			}
			fmt.Fprintf(&b, "  %5d  %s\n", r.Count, r.Reason)
		}
	}
	return b.String()
}
