package campaigns

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/campaigns/selector"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
)

// Updates is the firmware-update driver as a campaign uses it (*fwupdate.Driver).
type Updates interface {
	// Start creates and drives one device's update job (fwupdate.Driver.Start).
	Start(ctx context.Context, endpoint string, req fwupdate.StartRequest) (*fwupdate.Job, error)
	// Cancel ends a job as cancelled.
	Cancel(ctx context.Context, id, reason string) (*fwupdate.Job, error)
	// CampaignJobs returns the jobs of a campaign changed at or after since, oldest change first.
	CampaignJobs(ctx context.Context, campaignID string, since time.Time) ([]*fwupdate.Job, error)
}

// Fleet is the devices lwota knows (server.Server implements it).
type Fleet interface {
	Device(ctx context.Context, endpoint string) (*registration.Registration, error)
	ListDevices(ctx context.Context, f registration.Filter) ([]*registration.Registration, error)
}

// Images finds the image a campaign rolls out (*firmware.Catalog implements it).
type Images interface {
	Image(ctx context.Context, id string) (*firmware.Image, error)
}

// Config tunes the manager. Zero fields take DefaultConfig's values.
type Config struct {
	// Tick is how often the leader looks at every active campaign.
	Tick time.Duration
	// Node names this lwota for the lease that elects the one node driving campaigns.
	Node string
	// LeaseTTL is how long the leader's lease lasts without renewal (each tick renews it).
	LeaseTTL time.Duration
	// MembershipEvery is how often a campaign with dynamic membership looks for new devices.
	MembershipEvery time.Duration
	// MaxStartsPerTick bounds the updates one tick starts, so that a tick stays short.
	MaxStartsPerTick int
	// StartConcurrency is how many starts run at once within a tick.
	StartConcurrency int
}

// DefaultConfig ticks every second with a 15 s lease.
func DefaultConfig() Config {
	return Config{Tick: time.Second, Node: "lwota", LeaseTTL: 15 * time.Second, MembershipEvery: 10 * time.Second,
		MaxStartsPerTick: 2000, StartConcurrency: 16}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Tick <= 0 {
		c.Tick = d.Tick
	}
	if c.Node == "" {
		c.Node = d.Node
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.MembershipEvery <= 0 {
		c.MembershipEvery = d.MembershipEvery
	}
	if c.MaxStartsPerTick <= 0 {
		c.MaxStartsPerTick = d.MaxStartsPerTick
	}
	if c.StartConcurrency <= 0 {
		c.StartConcurrency = d.StartConcurrency
	}
	return c
}

// Manager creates campaigns, takes operators' actions on them and, on the node holding the
// lease, drives them (Run). Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	store   Store
	updates Updates
	fleet   Fleet
	images  Images
	audit   audit.Recorder // nil: campaigns' own decisions are not audited
	pub     Publisher      // nil: events are not published (WithEvents)
	exact   ExactSelector  // nil: the fleet lists and the selector decides (WithExactSelector)
	log     *slog.Logger
	m       *metrics
	now     func() time.Time

	// mu serialises ticks and actions on this node, so that an action never interleaves with
	// a tick's read-modify-write of the same campaign; across nodes the campaign's Version does.
	mu   sync.Mutex
	runs map[string]*runtime // campaign id -> the leader's in-memory view
	poke chan struct{}
}

// New returns a manager. rec may be nil (no audit of the campaigns' own decisions), logger nil
// (discard), reg nil (metrics unregistered), now nil (time.Now).
func New(cfg Config, store Store, updates Updates, fleet Fleet, images Images, rec audit.Recorder,
	logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Manager{cfg: cfg.withDefaults(), store: store, updates: updates, fleet: fleet, images: images,
		audit: rec, log: logger, m: newMetrics(reg), now: now, runs: make(map[string]*runtime), poke: make(chan struct{}, 1)}
}

// Spec is what an operator asks for when creating a campaign.
type Spec struct {
	Name      string
	ImageID   string
	Query     string   // a selector query, or
	Endpoints []string // an explicit list of devices
	Method    string
	Policy    *fwupdate.Policy
	Plan      plan.Plan
	Start     bool // start it at once (or at Plan.Schedule.StartAt)
}

// Selection is what a spec selects: the devices and the wave split.
type Selection struct {
	Image *firmware.Image
	// Devices are the selected devices, in endpoint order, with the labels the plan reads
	// (selected by an ExactSelector, only those).
	Devices []Selected
	Waves   [][]string // endpoints per wave, in start order
}

// DryRun validates spec and returns what it would select, creating nothing.
func (m *Manager) DryRun(ctx context.Context, spec Spec) (*Selection, error) {
	sel, _, err := m.prepare(ctx, spec)
	return sel, err
}

// Create validates spec, selects and assigns the devices and stores the campaign with them, in
// StateDraft, or started when spec.Start (and then wakes the tick that starts its updates). It
// fails with *InvalidError or *ConflictError.
func (m *Manager) Create(ctx context.Context, spec Spec, actor string) (*Campaign, error) {
	c, _, err := m.CreateCounted(ctx, spec, actor)
	if err == nil && spec.Start {
		m.Wake()
	}
	return c, err
}

// CreateCounted is Create, returning also the summary of the members as the creating
// transaction stored them (every one pending in its wave): what the answer to a create shows,
// counted from the members just written instead of read back from the store with two GROUP BYs
// over 10,000 rows while the first tick starts their updates. It does not wake the tick for a
// started campaign: the caller calls Wake once it has answered, so that the tick's work for
// 10,000 devices (their jobs, its allocations and so its share of a collection's mark assists)
// does not run beside the answer; the campaign's regular tick starts it all the same.
func (m *Manager) CreateCounted(ctx context.Context, spec Spec, actor string) (*Campaign, MemberSummary, error) {
	sel, c, err := m.prepare(ctx, spec)
	if err != nil {
		return nil, MemberSummary{}, err
	}
	c.CreatedBy = actor
	members := make([]Member, 0, len(sel.Devices))
	capKey := c.Plan.Pacing.PerLabelCap.Key
	labels := labelsOf(sel.Devices)
	for w, eps := range sel.Waves {
		for rank, ep := range eps {
			mem := Member{CampaignID: c.ID, Endpoint: ep, Wave: w, Rank: rank, State: MemberPending, PendingSince: c.CreatedAt, UpdatedAt: c.CreatedAt}
			if capKey != "" {
				mem.CapLabel = labels[ep][capKey]
			}
			members = append(members, mem)
		}
	}
	ev := Event{CampaignID: c.ID, Seq: 1, At: c.CreatedAt, From: "", To: StateDraft, Actor: actor, Action: "create",
		Reason: fmt.Sprintf("%d devices in %d waves", len(members), len(sel.Waves))}
	var started []Event
	if spec.Start {
		// Started in the creating transaction, as Start would a moment later (the same state,
		// version and event): a campaign of 10,000 devices answers after one write, not two.
		startDraft(c, m.now())
		c.Version++
		c.UpdatedAt = m.now()
		started = append(started, Event{CampaignID: c.ID, Seq: 2, At: c.UpdatedAt, From: StateDraft, To: c.State, Actor: actor, Action: "start"})
	}
	if err := m.store.CreateCampaign(ctx, c, ev, members, started...); err != nil {
		return nil, MemberSummary{}, fmt.Errorf("create campaign %q: %w", c.Name, err)
	}
	m.log.Info("campaign created", "campaign", c.ID, "name", c.Name, "devices", len(members), "by", actor, "state", c.State)
	m.publish(append([]Event{ev}, started...)...)
	return c, Summarise(members, len(c.Plan.Waves)), nil
}

// prepare validates spec and selects its devices: everything Create needs before it stores.
func (m *Manager) prepare(ctx context.Context, spec Spec) (*Selection, *Campaign, error) {
	now := m.now()
	var problems []Problem
	add := func(field, format string, args ...any) {
		problems = append(problems, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if spec.Name == "" || len(spec.Name) > 200 {
		add("name", "give a name of 1 to 200 characters")
	}
	switch spec.Method {
	case "", fwupdate.MethodAuto, fwupdate.MethodPull, fwupdate.MethodPush:
	default:
		add("method", "%q: want pull, push or auto", spec.Method)
	}
	if spec.Policy != nil {
		if err := spec.Policy.Validate(); err != nil {
			add("policy", "%v", err)
		}
	}
	if err := plan.Validate(spec.Plan, now); err != nil {
		var ve *plan.ValidationError
		if !errors.As(err, &ve) {
			return nil, nil, err
		}
		for _, p := range ve.Problems {
			add(p.Field, "%s", p.Msg)
		}
	}
	var sel *selector.Selector
	var err error
	switch {
	case spec.Query != "" && len(spec.Endpoints) > 0:
		add("selector", "give a query or an endpoint list, not both")
	case spec.Query != "":
		if sel, err = selector.Parse(spec.Query); err != nil {
			add("selector.query", "%v", err)
		}
	case len(spec.Endpoints) > 0:
		if sel, err = selector.Endpoints(spec.Endpoints); err != nil {
			add("selector.endpoints", "%v", err)
		}
	default:
		add("selector", "give a query or an endpoint list")
	}
	var img *firmware.Image
	if spec.ImageID == "" {
		add("image_id", "required")
	} else if img, err = m.images.Image(ctx, spec.ImageID); errors.Is(err, firmware.ErrNotFound) {
		add("image_id", "no image %q", spec.ImageID)
	} else if err != nil {
		return nil, nil, fmt.Errorf("campaign image %s: %w", spec.ImageID, err)
	}
	if len(problems) > 0 {
		return nil, nil, &InvalidError{Problems: problems}
	}
	devices, misfits, err := m.selectForImage(ctx, sel, spec.Endpoints, img.Target, spec.Plan, now)
	if err != nil {
		return nil, nil, err
	}
	if len(devices) == 0 {
		return nil, nil, invalid("selector", "selects no device")
	}
	if p := targetMismatch(img.Target, misfits); p != nil {
		return nil, nil, &InvalidError{Problems: []Problem{*p}}
	}
	id := newID()
	eps := make([]string, len(devices))
	for i, d := range devices {
		eps[i] = d.Endpoint
	}
	labels := labelsOf(devices)
	waves := plan.Assign(eps, func(ep string) map[string]string { return labels[ep] }, spec.Plan, id)
	method := spec.Method
	if method == "" {
		method = fwupdate.MethodAuto
	}
	c := &Campaign{
		ID: id, Name: spec.Name, ImageID: img.ID, ImageVersion: img.Version, Query: spec.Query,
		Endpoints: slices.Clone(spec.Endpoints), Method: method, Policy: spec.Policy, Plan: spec.Plan,
		State: StateDraft, Gates: make([]plan.GateState, len(spec.Plan.Waves)), Version: 1,
		CreatedAt: now, UpdatedAt: now,
	}
	if sel != nil && spec.Query != "" {
		c.Query = sel.String()
	}
	return &Selection{Image: img, Devices: devices, Waves: waves}, c, nil
}

// Preview is what a selector picks, before a campaign is planned: the live count of a form.
type Preview struct {
	Devices  int            // devices the selector matches
	Sample   []string       // the first of them, in endpoint order (at most PreviewSample)
	Models   map[string]int // matched devices per model ("" for a model not known yet)
	Image    *firmware.Image
	UpToDate int // of the matched, those already on the image's version (no update will start)
	// NotForImage counts the matched devices the image is not built for: a campaign over them
	// is refused (Create names them).
	NotForImage int
	// Busy counts the matched devices held by another campaign that has not ended: a campaign
	// over them is refused.
	Busy int
}

// PreviewSample is how many endpoints a Preview lists.
const PreviewSample = 20

// Preview counts what query (or the endpoint list) selects, with the same selection as Create,
// and when imageID is given how many of them the image fits and how many are already on its
// version. It creates nothing. Bad input is an *InvalidError.
func (m *Manager) Preview(ctx context.Context, query string, endpoints []string, imageID string) (*Preview, error) {
	now := m.now()
	var sel *selector.Selector
	var err error
	switch {
	case query != "" && len(endpoints) > 0:
		return nil, invalid("selector", "give a query or an endpoint list, not both")
	case query != "":
		if sel, err = selector.Parse(query); err != nil {
			return nil, invalid("selector.query", "%v", err)
		}
	case len(endpoints) > 0:
		if sel, err = selector.Endpoints(endpoints); err != nil {
			return nil, invalid("selector.endpoints", "%v", err)
		}
	default:
		return nil, invalid("selector", "give a query or an endpoint list")
	}
	out := &Preview{Models: map[string]int{}}
	if imageID != "" {
		if out.Image, err = m.images.Image(ctx, imageID); errors.Is(err, firmware.ErrNotFound) {
			return nil, invalid("image_id", "no image %q", imageID)
		} else if err != nil {
			return nil, fmt.Errorf("campaign image %s: %w", imageID, err)
		}
	}
	devices, err := m.selectDevices(ctx, sel, endpoints, now)
	if err != nil {
		return nil, err
	}
	eps := make([]string, len(devices))
	for i, d := range devices {
		eps[i] = d.Endpoint
		out.Models[d.Model]++
		if out.Image != nil && !fitsTarget(out.Image.Target, d) {
			out.NotForImage++
		}
		if out.Image != nil && d.FirmwareVersion == out.Image.Version {
			out.UpToDate++
		}
	}
	out.Devices = len(devices)
	out.Sample = eps[:min(len(eps), PreviewSample)]
	claimed, err := m.store.Claimed(ctx, eps)
	if err != nil {
		return nil, fmt.Errorf("preview: claimed devices: %w", err)
	}
	out.Busy = len(claimed)
	return out, nil
}

// selectDevices returns the known devices sel matches, in endpoint order. An explicit list
// naming a device lwota has never seen is refused: a typo must not shrink a rollout silently.
func (m *Manager) selectDevices(ctx context.Context, sel *selector.Selector, explicit []string, now time.Time) ([]*registration.Registration, error) {
	all, err := m.fleet.ListDevices(ctx, narrowed(sel, now))
	if err != nil {
		return nil, fmt.Errorf("select devices: %w", err)
	}
	var out []*registration.Registration
	for _, r := range all {
		if sel.Match(deviceOf(r, now)) {
			out = append(out, r)
		}
	}
	if len(explicit) > 0 && len(out) < len(explicit) {
		found := make(map[string]bool, len(out))
		for _, r := range out {
			found[r.Endpoint] = true
		}
		var unknown []string
		for _, ep := range explicit {
			if !found[ep] && len(unknown) < 10 {
				unknown = append(unknown, ep)
			}
		}
		if len(unknown) > 0 {
			return nil, invalid("selector.endpoints", "unknown devices: %v", unknown)
		}
	}
	return out, nil
}

// narrowed is the device-list filter of what every device sel matches must have (its top-level
// endpoint prefix, exact attributes and labels): the store picks them, sel still decides each.
// A campaign of ten devices in a fleet of 250,000 no longer reads the whole fleet, and a
// campaign of 10,000 does not decode their object lists (Brief: a selector never looks at them).
func narrowed(sel *selector.Selector, now time.Time) registration.Filter {
	n := sel.Narrow()
	return registration.Filter{Now: now, EndpointPrefix: n.EndpointPrefix, Manufacturer: n.Manufacturer,
		Model: n.Model, DeviceType: n.DeviceType, Labels: n.Labels, Brief: true}
}

// deviceOf is what a selector sees of a registration.
func deviceOf(r *registration.Registration, now time.Time) selector.Device {
	return selector.Device{
		Endpoint: r.Endpoint, Manufacturer: r.Manufacturer, Model: r.Model, DeviceType: r.DeviceType,
		FirmwareVersion: r.FirmwareVersion, Labels: r.Labels, Online: r.Online(now), RegisteredAt: r.RegisteredAt,
	}
}

// labelsOf maps the endpoints of devices that have labels to them.
func labelsOf(devices []Selected) map[string]map[string]string {
	out := make(map[string]map[string]string)
	for _, d := range devices {
		if d.Labels != nil {
			out[d.Endpoint] = d.Labels
		}
	}
	return out
}

// fitsTarget reports whether the image target t is built for d: every non-empty field of t
// must equal the device's (a device whose model is not known yet does not match).
func fitsTarget(t firmware.Selector, d *registration.Registration) bool {
	ok := (t.Manufacturer == "" || t.Manufacturer == d.Manufacturer) &&
		(t.Model == "" || t.Model == d.Model) &&
		(t.DeviceType == "" || t.DeviceType == d.DeviceType)
	for k, v := range t.Labels {
		ok = ok && d.Labels[k] == v
	}
	return ok
}

// targetMismatch refuses the selected devices the image is not built for (misfits: those
// fitsTarget refuses), naming the first ten.
func targetMismatch(t firmware.Selector, misfits []*registration.Registration) *Problem {
	if len(misfits) == 0 {
		return nil
	}
	bad := make([]string, 0, min(len(misfits), 10))
	for _, d := range misfits[:min(len(misfits), 10)] {
		bad = append(bad, fmt.Sprintf("%s (model %q)", d.Endpoint, d.Model))
	}
	return &Problem{Field: "image_id", Message: fmt.Sprintf("the image is for model %q (manufacturer %q, type %q); %d selected devices are not: %v",
		t.Model, t.Manufacturer, t.DeviceType, len(misfits), bad)}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "cmp_" + idEncoding.EncodeToString(b[:])
}

// Get returns a campaign, or ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Campaign, error) {
	return m.store.GetCampaign(ctx, id)
}

// List returns the campaigns in one of states (all when none), newest first.
func (m *Manager) List(ctx context.Context, states ...State) ([]*Campaign, error) {
	return m.store.ListCampaigns(ctx, states...)
}

// Members returns a campaign's devices matching f.
func (m *Manager) Members(ctx context.Context, id string, f MemberFilter) ([]Member, error) {
	if _, err := m.store.GetCampaign(ctx, id); err != nil {
		return nil, err
	}
	return m.store.Members(ctx, id, f)
}

// MemberSummary counts c's members per wave and state, and the failed ones per reason: what
// ProgressFrom and ResumeEffectFrom need, without reading every member.
func (m *Manager) MemberSummary(ctx context.Context, c *Campaign) (MemberSummary, error) {
	return m.store.MemberSummary(ctx, c.ID, len(c.Plan.Waves))
}

// History returns a campaign's events.
func (m *Manager) History(ctx context.Context, id string) ([]Event, error) {
	return m.store.CampaignHistory(ctx, id)
}
