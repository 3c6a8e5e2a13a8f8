package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/lwota/lwota/api"
)

const campaignUsage = `usage: lwota campaign <command> [flags]

commands:
  create --name N --image ID (--query Q | --endpoints a,b,c) [--waves 2%,20%,100%]
         [--threshold PCT [--min-devices N] [--action pause|abort]] [--max-concurrent N]
         [--max-starts-per-minute N] [--method auto|pull|push] [--spread-by LABEL] [--start] [--dry-run]
         create a campaign (a draft unless --start); --file spec.json sends that body instead
         (--start and --dry-run still apply). A wave is "N%" of the devices or a count "N".
  list [--state running,paused]       the campaigns, newest first
  show ID                             one campaign with its progress
  start ID                            start a draft
  pause ID [--reason TEXT]            no update starts any more; those in flight finish
  resume ID [--threshold PCT --min-devices N --action pause|abort]
                                      go on, optionally with a raised per-wave failure threshold
  abort ID [--reason TEXT] [--hard]   end it; --hard cancels the updates in flight
  approve ID                          open the manual gate of the current wave
  retry ID                            give every failed device a new attempt
  devices ID [--state failed] [--limit 100]
                                      the campaign's devices, by endpoint
  watch ID [--plain]                  live progress until the campaign ends; exit status 1
                                      when it ends aborted or failed

Every command takes --server (env LWOTA_SERVER, default http://127.0.0.1:8080), --token
(env LWOTA_TOKEN, sent as Authorization: Bearer) and, but watch, --json (the server's JSON).
`

func campaignCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmds := map[string]subcommand{
		"create":  campaignCreate,
		"list":    campaignList,
		"show":    campaignShow,
		"devices": campaignDevices,
		"watch":   campaignWatch,
	}
	for _, action := range []string{"start", "pause", "resume", "abort", "approve", "retry"} {
		cmds[action] = func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
			return campaignAct(ctx, action, args, stdout, stderr, getenv)
		}
	}
	return runSubcommand(ctx, "campaign", campaignUsage, cmds, args, stdout, stderr, getenv)
}

// ---- what the commands read of the API's JSON ------------------------------------------------

type campaignCounts struct {
	Pending    int `json:"pending"`
	InProgress int `json:"in_progress"`
	Succeeded  int `json:"succeeded"`
	UpToDate   int `json:"already_up_to_date"`
	Failed     int `json:"failed"`
	Cancelled  int `json:"cancelled"`
}

func (n campaignCounts) finished() int { return n.Succeeded + n.UpToDate + n.Failed + n.Cancelled }

type campaignView struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ImageID      string `json:"image_id"`
	ImageVersion string `json:"image_version"`
	Selector     struct {
		Query     string   `json:"query"`
		Endpoints []string `json:"endpoints"`
	} `json:"selector"`
	Waves     []json.RawMessage `json:"waves"`
	State     string            `json:"state"`
	Reason    string            `json:"reason"`
	Wave      int               `json:"wave"`
	CreatedBy string            `json:"created_by"`
	CreatedAt time.Time         `json:"created_at"`
	StartedAt time.Time         `json:"started_at"`
	EndedAt   time.Time         `json:"ended_at"`
	Progress  struct {
		Total  int            `json:"total"`
		Counts campaignCounts `json:"counts"`
		Waves  []struct {
			Wave       int            `json:"wave"`
			Size       int            `json:"size"`
			Counts     campaignCounts `json:"counts"`
			Gate       string         `json:"gate"`
			GateReason string         `json:"gate_reason"`
			StartedAt  time.Time      `json:"started_at"`
		} `json:"waves"`
		SuccessRate         float64   `json:"success_rate"`
		FailureRate         float64   `json:"failure_rate"`
		ThroughputPerMinute float64   `json:"throughput_per_minute"`
		ETA                 time.Time `json:"eta"`
	} `json:"progress"`
	FailureReasons []struct {
		Reason string `json:"reason"`
		Count  int    `json:"count"`
	} `json:"failure_reasons"`
}

func parseCampaign(b []byte) (campaignView, error) {
	var c campaignView
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("campaign answer: %w", err)
	}
	return c, nil
}

// ended reports whether the campaign is in a final state.
func (c campaignView) ended() bool {
	return c.State == "completed" || c.State == "aborted" || c.State == "failed"
}

func (c campaignView) title() string {
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

// openStream opens a server-sent event stream; an answer other than 200 is a *serverError.
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
	se := &serverError{Status: resp.StatusCode, RequestID: resp.Header.Get(api.HeaderRequestID), Message: http.StatusText(resp.StatusCode)}
	if code, msg, ok := errorShape(body); ok {
		se.Code, se.Message = code, msg
	}
	return nil, se
}

// ---- create ----------------------------------------------------------------------------------

type createCampaignConfig struct {
	clientFlags
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
	json          bool
	given         map[string]bool
}

// specFlags are the flags that build the body; --file replaces them all.
var specFlags = []string{"name", "image", "query", "endpoints", "waves", "method", "spread-by", "threshold", "min-devices",
	"action", "max-concurrent", "max-starts-per-minute"}

func parseCreateCampaignFlags(args []string, stderr io.Writer, getenv func(string) string) (createCampaignConfig, error) {
	c := createCampaignConfig{given: map[string]bool{}}
	fs := newFlagSet("campaign create", stderr)
	c.register(fs)
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
	fs.BoolVar(&c.json, "json", false, "print the server's JSON")
	rest, err := parseClient(fs, args, getenv)
	if err != nil {
		return c, err
	}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	if len(rest) > 0 {
		return c, fmt.Errorf("campaign create: unexpected argument %q", rest[0])
	}
	if c.file != "" {
		for _, f := range specFlags {
			if c.given[f] {
				return c, fmt.Errorf("campaign create: --%s and --file: the file holds the whole body", f)
			}
		}
		return c, nil
	}
	switch {
	case c.name == "" || c.image == "":
		return c, errors.New("campaign create: --name and --image are required")
	case (c.query == "") == (c.endpoints == ""):
		return c, errors.New("campaign create: give the devices with --query or with --endpoints, one of them")
	case !c.given["threshold"] && (c.given["min-devices"] || c.given["action"]):
		return c, errors.New("campaign create: --min-devices and --action go with --threshold")
	}
	return c, nil
}

// parseWaves reads "2%,20%,100%" or "10,50%,100%" into the body's waves.
func parseWaves(s string) ([]map[string]any, error) {
	var out []map[string]any
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if pct, ok := strings.CutSuffix(part, "%"); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
			if err != nil {
				return nil, fmt.Errorf("--waves: %q is not a percentage", part)
			}
			out = append(out, map[string]any{"percent": v})
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, fmt.Errorf(`--waves: %q is neither "N%%" nor a count`, part)
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
		if c.given["threshold"] {
			b["failure_threshold"] = map[string]any{"percent": c.threshold, "min_devices": c.minDevices, "action": c.action}
		}
		if c.given["max-concurrent"] || c.given["max-starts-per-minute"] {
			b["pacing"] = map[string]any{"max_concurrent": c.maxConcurrent, "max_starts_per_minute": c.maxStarts}
		}
	}
	if c.given["start"] || c.file == "" {
		b["start"] = c.start
	}
	if c.given["dry-run"] || c.file == "" {
		b["dry_run"] = c.dryRun
	}
	return b, nil
}

func campaignCreate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseCreateCampaignFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	body, err := cfg.body()
	if err != nil {
		return fmt.Errorf("campaign create: %w", err)
	}
	cl, err := cfg.client("campaign create")
	if err != nil {
		return err
	}
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
	if cfg.json {
		return writeJSON(stdout, answer)
	}
	if dry {
		var d struct {
			Devices   int      `json:"devices"`
			Endpoints []string `json:"endpoints"`
			Waves     []struct {
				Wave int `json:"wave"`
				Size int `json:"size"`
			} `json:"waves"`
		}
		if err := json.Unmarshal(answer, &d); err != nil {
			return fmt.Errorf("campaign create: dry run answer: %w", err)
		}
		fmt.Fprintf(stdout, "would select %d devices\n", d.Devices)
		for _, w := range d.Waves {
			fmt.Fprintf(stdout, "  wave %d: %d devices\n", w.Wave, w.Size)
		}
		if n := min(len(d.Endpoints), 10); n > 0 {
			more := ""
			if d.Devices > n {
				more = fmt.Sprintf(", ... (%d more)", d.Devices-n)
			}
			fmt.Fprintf(stdout, "first to update: %s%s\n", strings.Join(d.Endpoints[:n], ", "), more)
		}
		return nil
	}
	c, err := parseCampaign(answer)
	if err != nil {
		return fmt.Errorf("campaign create: %w", err)
	}
	fmt.Fprintf(stdout, "%s created: %s, %d devices in %d waves\n", c.title(), c.State, c.Progress.Total, len(c.Progress.Waves))
	return nil
}

// ---- list, show, devices ---------------------------------------------------------------------

func campaignList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var state string
	var asJSON bool
	fs := newFlagSet("campaign list", stderr)
	cf.register(fs)
	fs.StringVar(&state, "state", "", "only campaigns in these states, comma-separated (running,paused)")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON")
	cl, err := noArgClient("campaign list", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	path := "/campaigns"
	if state != "" {
		path += "?state=" + url.QueryEscape(state)
	}
	answer, err := cl.get(ctx, path)
	if err != nil {
		return fmt.Errorf("campaign list: %w", err)
	}
	var l struct {
		Campaigns []json.RawMessage `json:"campaigns"`
	}
	if err := json.Unmarshal(answer, &l); err != nil {
		return fmt.Errorf("campaign list: answer: %w", err)
	}
	if asJSON {
		return writeJSONList(stdout, l.Campaigns)
	}
	if len(l.Campaigns) == 0 {
		fmt.Fprintln(stdout, "no campaigns")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tWAVE\tDEVICES\tUPDATED\tFAILED\tCREATED")
	for _, raw := range l.Campaigns {
		c, err := parseCampaign(raw)
		if err != nil {
			return fmt.Errorf("campaign list: %w", err)
		}
		n := c.Progress.Counts
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", c.ID, c.Name, c.State, waveText(c), c.Progress.Total,
			n.Succeeded+n.UpToDate, n.Failed, timeText(c.CreatedAt))
	}
	return tw.Flush()
}

func waveText(c campaignView) string {
	if c.Wave == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", c.Wave, len(c.Progress.Waves))
}

func campaignShow(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var asJSON bool
	fs := newFlagSet("campaign show", stderr)
	cf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON")
	cl, id, err := oneArgClient("campaign show", "campaign id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	if id, err = cl.resolveCampaign(ctx, id); err != nil {
		return err
	}
	answer, err := cl.get(ctx, campaignPath(id))
	if err != nil {
		return fmt.Errorf("campaign show %s: %w", id, err)
	}
	if asJSON {
		return writeJSON(stdout, answer)
	}
	c, err := parseCampaign(answer)
	if err != nil {
		return fmt.Errorf("campaign show %s: %w", id, err)
	}
	devices := c.Selector.Query
	if devices == "" {
		devices = strings.Join(c.Selector.Endpoints, ", ")
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
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
	fmt.Fprintln(stdout)
	_, err = io.WriteString(stdout, renderCampaign(c, time.Now(), false))
	return err
}

func campaignDevices(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var state string
	var limit int
	var asJSON bool
	fs := newFlagSet("campaign devices", stderr)
	cf.register(fs)
	fs.StringVar(&state, "state", "", "only devices in this state: pending, in_progress, succeeded, already_up_to_date, failed, cancelled")
	fs.IntVar(&limit, "limit", 100, "list at most this many devices")
	fs.BoolVar(&asJSON, "json", false, "print the devices' JSON")
	cl, id, err := oneArgClient("campaign devices", "campaign id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	if id, err = cl.resolveCampaign(ctx, id); err != nil {
		return err
	}
	if limit < 1 {
		return errors.New("campaign devices: --limit must be positive")
	}
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
		answer, err := cl.get(ctx, campaignPath(id)+"/devices?"+q.Encode())
		if err != nil {
			return fmt.Errorf("campaign devices %s: %w", id, err)
		}
		var page struct {
			Devices []json.RawMessage `json:"devices"`
			Next    string            `json:"next"`
		}
		if err := json.Unmarshal(answer, &page); err != nil {
			return fmt.Errorf("campaign devices %s: answer: %w", id, err)
		}
		all = append(all, page.Devices...)
		if page.Next == "" || page.Next == after {
			break
		}
		after = page.Next
	}
	if asJSON {
		return writeJSONList(stdout, all)
	}
	if len(all) == 0 {
		fmt.Fprintln(stdout, "no devices")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tWAVE\tSTATE\tATTEMPTS\tJOB\tSTARTED\tENDED\tREASON")
	for _, raw := range all {
		var d struct {
			Endpoint  string    `json:"endpoint"`
			Wave      int       `json:"wave"`
			State     string    `json:"state"`
			JobID     string    `json:"job_id"`
			JobState  string    `json:"job_state"`
			Reason    string    `json:"reason"`
			Attempts  int       `json:"attempts"`
			StartedAt time.Time `json:"started_at"`
			EndedAt   time.Time `json:"ended_at"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("campaign devices %s: answer: %w", id, err)
		}
		job := orDash(d.JobID)
		if d.JobState != "" {
			job += " (" + d.JobState + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", d.Endpoint, d.Wave, d.State, d.Attempts, job,
			timeText(d.StartedAt), timeText(d.EndedAt), d.Reason)
	}
	return tw.Flush()
}

// ---- actions ---------------------------------------------------------------------------------

func campaignAct(ctx context.Context, action string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var reason, thresholdAction string
	var hard, asJSON bool
	var threshold float64
	var minDevices int
	fs := newFlagSet("campaign "+action, stderr)
	cf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON")
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
	cl, id, err := oneArgClient("campaign "+action, "campaign id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	if id, err = cl.resolveCampaign(ctx, id); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
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
		if given["threshold"] {
			body = map[string]any{"failure_threshold": map[string]any{"percent": threshold, "min_devices": minDevices, "action": thresholdAction}}
		} else if given["min-devices"] || given["action"] {
			return errors.New("campaign resume: --min-devices and --action go with --threshold")
		}
	}
	answer, err := cl.sendJSON(ctx, http.MethodPost, campaignPath(id)+"/"+action, body, http.StatusOK)
	if err != nil {
		return fmt.Errorf("campaign %s %s: %w", action, id, err)
	}
	if asJSON {
		return writeJSON(stdout, answer)
	}
	c, err := parseCampaign(answer)
	if err != nil {
		return fmt.Errorf("campaign %s %s: %w", action, id, err)
	}
	fmt.Fprintf(stdout, "campaign %s %s%s\n", c.ID, c.State, reasonText(c.Reason))
	return nil
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
	width int // of the terminal; live lines are cut to it so that the redraw counts right
	now   func() time.Time
	retry time.Duration // wait before reconnecting a dropped stream
}

func campaignWatch(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var plain bool
	fs := newFlagSet("campaign watch", stderr)
	cf.register(fs)
	fs.BoolVar(&plain, "plain", false, "a line per change, even on a terminal")
	cl, id, err := oneArgClient("campaign watch", "campaign id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	if id, err = cl.resolveCampaign(ctx, id); err != nil {
		return err
	}
	cfg := watchConfig{live: !plain && isTerminal(stdout), width: 80, now: time.Now, retry: 2 * time.Second}
	if f, ok := stdout.(*os.File); ok && cfg.live {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			cfg.width = w
		}
	}
	c, err := watchCampaign(ctx, cl, id, stdout, cfg)
	if err != nil {
		return fmt.Errorf("campaign watch %s: %w", id, err)
	}
	if c.State != "completed" {
		return fmt.Errorf("campaign %s %s%s", c.ID, c.State, reasonText(c.Reason))
	}
	return nil
}

// watchCampaign follows the campaign's event stream until the campaign ends and returns it as
// it ended. A dropped stream (the server restarting) is opened again; an error answer is final.
func watchCampaign(ctx context.Context, cl *client, id string, w io.Writer, cfg watchConfig) (campaignView, error) {
	var last campaignView
	drawn := 0 // lines of the live view on screen
	handle := func(ev sseEvent) error {
		switch ev.Event {
		case "state":
			if cfg.live {
				return nil // the progress event that follows redraws the view
			}
			var st struct {
				From   string    `json:"from"`
				To     string    `json:"to"`
				Reason string    `json:"reason"`
				At     time.Time `json:"at"`
			}
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
			if cfg.live {
				if drawn > 0 {
					fmt.Fprintf(w, "\x1b[%dA\r\x1b[J", drawn) // back to the view's first line, clear below
				}
				view := fitWidth(renderCampaign(c, cfg.now(), true), cfg.width)
				drawn = strings.Count(view, "\n")
				fmt.Fprint(w, view)
			} else {
				fmt.Fprintln(w, progressLine(c, cfg.now()))
			}
			if c.ended() {
				return errCampaignEnded
			}
		}
		return nil
	}
	for {
		body, err := cl.openStream(ctx, campaignPath(id)+"/events")
		var se *serverError
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

// fitWidth cuts every line of s to width-1 characters, so that no line wraps on the terminal.
func fitWidth(s string, width int) string {
	if width < 2 {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		body, nl := strings.CutSuffix(l, "\n")
		if r := []rune(body); len(r) > width-1 {
			body = string(r[:width-2]) + "…"
		}
		if nl {
			body += "\n"
		}
		lines[i] = body
	}
	return strings.Join(lines, "")
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
func progressLine(c campaignView, now time.Time) string {
	n := c.Progress.Counts
	s := fmt.Sprintf("%s  %s  wave %s  %d/%d finished: %d succeeded, %d up to date, %d failed, %d cancelled; %d in progress, %d pending",
		clock(now), c.State, waveText(c), n.finished(), c.Progress.Total, n.Succeeded, n.UpToDate, n.Failed, n.Cancelled, n.InProgress, n.Pending)
	if r := c.Progress.ThroughputPerMinute; r > 0 {
		s += fmt.Sprintf("; %.1f/min", r)
	}
	if eta := c.Progress.ETA; !eta.IsZero() {
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
func bar(n campaignCounts, size int) string {
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
func renderCampaign(c campaignView, now time.Time, withTitle bool) string {
	var b strings.Builder
	if withTitle {
		fmt.Fprintf(&b, "%s\n", c.title())
	}
	fmt.Fprintf(&b, "state     %s, wave %s\n", c.State, waveText(c))
	if c.Reason != "" {
		fmt.Fprintf(&b, "reason    %s\n", c.Reason)
	}
	n := c.Progress.Counts
	fmt.Fprintf(&b, "devices   %d: %d succeeded, %d already up to date, %d failed, %d cancelled, %d in progress, %d pending\n",
		c.Progress.Total, n.Succeeded, n.UpToDate, n.Failed, n.Cancelled, n.InProgress, n.Pending)
	rate := fmt.Sprintf("rate      success %s, failure %s, %.1f devices/min", percentText(c.Progress.SuccessRate),
		percentText(c.Progress.FailureRate), c.Progress.ThroughputPerMinute)
	if eta := c.Progress.ETA; !eta.IsZero() {
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
		fmt.Fprintf(&b, "%s wave %-2d %s %5d/%-5d %s\n", cur, w.Wave, bar(w.Counts, w.Size), w.Counts.finished(), w.Size, gate)
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
