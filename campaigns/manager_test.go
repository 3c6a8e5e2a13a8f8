package campaigns_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// The engine runs here on a real SQLite store. The firmware-update driver is replaced by a
// small one over the same store (devices "finish" their jobs when the test says so), and the
// clock is the test's: that is what makes waves, pacing and windows checkable in seconds.

const imageVersion = "2.0.0"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// driver creates and ends jobs in the store as the real driver would, without devices.
type driver struct {
	store  *sqlstore.Store
	now    func() time.Time
	mu     sync.Mutex
	starts []time.Time    // the clock at every Start
	count  map[string]int // endpoint -> jobs started
	ids    int
	gone   bool // the image was deleted: Start fails as the real driver does
}

func (d *driver) Start(ctx context.Context, ep string, req fwupdate.StartRequest) (*fwupdate.Job, error) {
	d.mu.Lock()
	d.ids++
	id, gone := fmt.Sprintf("job%06d", d.ids), d.gone
	d.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("update %s: image %s: %w", ep, req.ImageID, fwupdate.ErrImageNotFound)
	}
	j, tr := fwupdate.NewJob(id, ep, fwupdate.ImageRef{ID: req.ImageID, Version: imageVersion, Size: 1}, req.Method,
		fwupdate.DefaultPolicy(), req.CampaignID, d.now())
	if err := d.store.CreateJob(ctx, j, tr); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.starts = append(d.starts, d.now())
	d.count[ep]++
	d.mu.Unlock()
	return j, nil
}

func (d *driver) Cancel(ctx context.Context, id, reason string) (*fwupdate.Job, error) {
	j, err := d.store.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	tr, err := j.Apply(fwupdate.StateCancelled, d.now(), reason)
	if err != nil {
		return nil, err
	}
	return j, d.store.SaveTransition(ctx, j, tr)
}

func (d *driver) CampaignJobs(ctx context.Context, id string, since time.Time) ([]*fwupdate.Job, error) {
	return d.store.CampaignJobs(ctx, id, since)
}

// finish ends every active job: failed with Update Result 5 for the endpoints in fail,
// succeeded for the others.
func (d *driver) finish(t *testing.T, fail map[string]bool) int {
	t.Helper()
	ctx := context.Background()
	jobs, err := d.store.ActiveJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		path := []fwupdate.State{fwupdate.StateDelivering, fwupdate.StateDownloaded, fwupdate.StateUpdating, fwupdate.StateVerifying, fwupdate.StateSucceeded}
		if fail[j.Endpoint] {
			path = []fwupdate.State{fwupdate.StateDelivering, fwupdate.StateFailed}
			j.DeviceResult = 5
		}
		for _, to := range path {
			reason := ""
			if to == fwupdate.StateFailed {
				reason = "integrity check failure for new downloaded package"
			}
			tr, err := j.Apply(to, d.now(), reason)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.store.SaveTransition(ctx, j, tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return len(jobs)
}

type fleet struct {
	mu      sync.Mutex
	regs    map[string]*registration.Registration
	filters []registration.Filter // every ListDevices filter, for the narrowing test
}

func (f *fleet) Device(_ context.Context, ep string) (*registration.Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.regs[ep]
	if !ok {
		return nil, registration.ErrNotFound
	}
	cp := *r
	return &cp, nil
}

// ListDevices honours the filter fields a campaign narrows by, as the SQL store does.
func (f *fleet) ListDevices(_ context.Context, flt registration.Filter) ([]*registration.Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	var out []*registration.Registration
	for _, r := range f.regs {
		if !strings.HasPrefix(r.Endpoint, flt.EndpointPrefix) || (flt.Model != "" && r.Model != flt.Model) ||
			(flt.Manufacturer != "" && r.Manufacturer != flt.Manufacturer) || (flt.DeviceType != "" && r.DeviceType != flt.DeviceType) {
			continue
		}
		if !maps.EqualFunc(flt.Labels, maps.Collect(func(yield func(string, string) bool) {
			for k := range flt.Labels {
				if !yield(k, r.Labels[k]) {
					return
				}
			}
		}), func(a, b string) bool { return a == b }) {
			continue
		}
		cp := *r
		out = append(out, &cp)
	}
	slices.SortFunc(out, func(a, b *registration.Registration) int { return cmpString(a.Endpoint, b.Endpoint) })
	return out, nil
}

func (f *fleet) add(ep, model, version string, labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs[ep] = &registration.Registration{Endpoint: ep, Model: model, FirmwareVersion: version, Labels: labels,
		Lifetime: 86400, UpdatedAt: time.Now(), RegisteredAt: time.Now()}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type images map[string]*firmware.Image

func (im images) Image(_ context.Context, id string) (*firmware.Image, error) {
	if i, ok := im[id]; ok {
		return i, nil
	}
	return nil, firmware.ErrNotFound
}

type rig struct {
	t     *testing.T
	store *sqlstore.Store
	clock *clock
	drv   *driver
	fleet *fleet
	m     *campaigns.Manager
}

func newRig(t *testing.T, devices int) *rig {
	t.Helper()
	store, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// The store refuses a job for an image it does not hold: the campaigns' image is saved.
	if err := store.SaveImage(context.Background(), &firmware.Image{ID: "img", Name: "fw", Version: imageVersion, Size: 1,
		SHA256: strings.Repeat("ab", 32), BlobKey: "images/sha256/" + strings.Repeat("ab", 32), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	r := &rig{t: t, store: store, clock: clk, drv: &driver{store: store, now: clk.now, count: map[string]int{}},
		fleet: &fleet{regs: map[string]*registration.Registration{}}}
	for i := range devices {
		r.fleet.add(fmt.Sprintf("dev-%04d", i), "m1", "1.0.0", map[string]string{"cell": fmt.Sprintf("c%d", i%4)})
	}
	r.m = r.manager()
	return r
}

// manager is a fresh manager over the rig's store: what a restarted lwota has.
func (r *rig) manager() *campaigns.Manager {
	imgs := images{"img": {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}}}
	return campaigns.New(campaigns.Config{}, r.store, r.drv, r.fleet, imgs, nil, nil, nil, r.clock.now)
}

func (r *rig) create(spec campaigns.Spec) *campaigns.Campaign {
	r.t.Helper()
	if spec.Name == "" {
		spec.Name = "rollout"
	}
	if spec.ImageID == "" {
		spec.ImageID = "img"
	}
	if spec.Query == "" && spec.Endpoints == nil {
		spec.Query = `model = "m1"`
	}
	c, err := r.m.Create(context.Background(), spec, "alice")
	if err != nil {
		r.t.Fatalf("Create: %v", err)
	}
	return c
}

func (r *rig) get(id string) *campaigns.Campaign {
	r.t.Helper()
	c, err := r.m.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) members(id string, st campaigns.MemberState) []campaigns.Member {
	r.t.Helper()
	ms, err := r.m.Members(context.Background(), id, campaigns.MemberFilter{State: st})
	if err != nil {
		r.t.Fatal(err)
	}
	return ms
}

// run ticks, lets the devices finish, and moves the clock, until stop says so or n rounds passed.
func (r *rig) run(id string, fail map[string]bool, step time.Duration, n int, stop func(c *campaigns.Campaign) bool) *campaigns.Campaign {
	r.t.Helper()
	var c *campaigns.Campaign
	for range n {
		r.m.Tick(context.Background())
		c = r.get(id)
		if stop(c) {
			return c
		}
		r.drv.finish(r.t, fail)
		r.clock.add(step)
	}
	r.t.Fatalf("campaign still %s (%s) after %d rounds", c.State, c.Reason, n)
	return nil
}

func ended(c *campaigns.Campaign) bool { return c.State.Ended() }

func waves(pcts ...float64) []plan.Wave {
	var out []plan.Wave
	for _, p := range pcts {
		out = append(out, plan.Wave{Percent: p})
	}
	return out
}

// The acceptance scenario on the engine: 500 devices, 100 failing, waves 2/20/100 %, a
// 10 % threshold that pauses. It pauses in the wave that crosses, the next wave has not
// started; resumed with a higher threshold it completes with exactly the failing devices failed.
func TestThresholdPausesThenResumeCompletes(t *testing.T) {
	r := newRig(t, 500)
	fail := map[string]bool{}
	for i := 0; i < 500; i += 5 {
		fail[fmt.Sprintf("dev-%04d", i)] = true
	}
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(2, 20, 100),
		WaveThreshold: plan.FailureThreshold{Percent: 10, MinDevices: 5, Action: plan.ActionPause}}})
	if c.State != campaigns.StateRunning {
		t.Fatalf("created with start: %s", c.State)
	}
	c = r.run(c.ID, fail, time.Second, 50, func(c *campaigns.Campaign) bool { return c.State != campaigns.StateRunning })
	if c.State != campaigns.StatePaused {
		t.Fatalf("state %s (%s), want paused", c.State, c.Reason)
	}
	if c.Reason == "" || !containsAll(c.Reason, "over the 10% threshold", fmt.Sprintf("wave %d", c.Wave+1)) {
		t.Errorf("reason %q does not explain the pause", c.Reason)
	}
	for _, m := range r.members(c.ID, "") {
		if m.Wave > c.Wave && m.State != campaigns.MemberPending {
			t.Fatalf("wave %d device %s is %s while the campaign paused in wave %d", m.Wave+1, m.Endpoint, m.State, c.Wave+1)
		}
	}
	pausedWave := c.Wave
	raised := plan.FailureThreshold{Percent: 60, MinDevices: 5, Action: plan.ActionPause}
	if _, err := r.m.Resume(context.Background(), c.ID, "alice", campaigns.ResumeOptions{WaveThreshold: &raised}); err != nil {
		t.Fatal(err)
	}
	c = r.run(c.ID, fail, time.Second, 100, ended)
	if c.State != campaigns.StateCompleted || c.Wave != 2 || pausedWave > c.Wave {
		t.Fatalf("state %s wave %d (%s), want completed after wave 3", c.State, c.Wave+1, c.Reason)
	}
	var failed []string
	for _, m := range r.members(c.ID, campaigns.MemberFailed) {
		failed = append(failed, m.Endpoint)
	}
	if len(failed) != len(fail) {
		t.Fatalf("%d devices failed, want exactly the %d injected", len(failed), len(fail))
	}
	for _, ep := range failed {
		if !fail[ep] {
			t.Fatalf("%s failed but was not injected", ep)
		}
	}
	if n := len(r.members(c.ID, campaigns.MemberSucceeded)); n != 400 {
		t.Fatalf("%d succeeded, want 400", n)
	}
	for ep, n := range r.drv.count {
		if n != 1 {
			t.Fatalf("%s got %d updates from one campaign, want 1", ep, n)
		}
	}
	hist, _ := r.m.History(context.Background(), c.ID)
	var actions []string
	for _, e := range hist {
		actions = append(actions, e.Action+":"+e.Actor)
	}
	// The waves started before the pause, the pause, the resume, the remaining waves.
	want := []string{"create:alice", "start:alice"}
	for range pausedWave {
		want = append(want, "wave:lwota")
	}
	want = append(want, "threshold:lwota", "resume:alice")
	for range 2 - pausedWave {
		want = append(want, "wave:lwota")
	}
	want = append(want, "complete:lwota")
	if !slices.Equal(actions, want) {
		t.Errorf("paused in wave %d, history %v; want %v", pausedWave+1, actions, want)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

// With at most 5 starts per minute, no 60-second span of the campaign's clock holds more than 5
// starts, and the rate is used (about 50 starts in 10 minutes).
func TestPacingHoldsStartRate(t *testing.T) {
	r := newRig(t, 200)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100), Pacing: plan.Pacing{MaxStartsPerMinute: 5}}})
	for range 600 {
		r.m.Tick(context.Background())
		r.drv.finish(t, nil)
		r.clock.add(time.Second)
	}
	starts := r.drv.starts
	for i := range starts {
		n := 0
		for _, s := range starts[i:] {
			if s.Sub(starts[i]) < time.Minute {
				n++
			}
		}
		if n > 5 {
			t.Fatalf("%d starts within 60 s of %s", n, starts[i].Format(time.TimeOnly))
		}
	}
	if len(starts) < 45 || len(starts) > 55 {
		t.Fatalf("%d starts in 10 minutes at 5 per minute", len(starts))
	}
	if c := r.get(c.ID); c.State != campaigns.StateRunning {
		t.Fatalf("state %s", c.State)
	}
}

// No update starts outside a maintenance window: windows of 20 s every 2 minutes.
func TestNoStartOutsideWindow(t *testing.T) {
	r := newRig(t, 300)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100), Pacing: plan.Pacing{MaxConcurrent: 3},
		Schedule: plan.Schedule{Windows: []plan.Window{{Cron: "*/2 * * * *", Duration: 20 * time.Second}}}}})
	for range 600 {
		r.m.Tick(context.Background())
		r.drv.finish(t, nil)
		r.clock.add(time.Second)
	}
	if len(r.drv.starts) == 0 {
		t.Fatal("nothing started in 10 minutes of windows")
	}
	for _, s := range r.drv.starts {
		if s.Minute()%2 != 0 || s.Second() >= 20 {
			t.Fatalf("an update started at %s, outside every window", s.Format(time.TimeOnly))
		}
	}
	if n := len(r.drv.starts); n < 100 {
		t.Fatalf("only %d started in 5 windows of 20 s at 3 at a time", n)
	}
	_ = c
}

// A job the campaign started but did not record before lwota stopped is adopted after the
// restart; the device gets no second update.
func TestRestartAdoptsUnrecordedJob(t *testing.T) {
	r := newRig(t, 4)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100)}})
	// The start that was stored as a job but never made it into the member row:
	ep := "dev-0002"
	if _, err := r.drv.Start(context.Background(), ep, fwupdate.StartRequest{ImageID: "img", CampaignID: c.ID}); err != nil {
		t.Fatal(err)
	}
	r.m = r.manager() // restart
	r.m.Tick(context.Background())
	if n := r.drv.count[ep]; n != 1 {
		t.Fatalf("%s has %d jobs after the restart, want the adopted one", ep, n)
	}
	for _, m := range r.members(c.ID, "") {
		if m.State != campaigns.MemberInProgress || m.JobID == "" {
			t.Fatalf("member %s is %s (job %q)", m.Endpoint, m.State, m.JobID)
		}
	}
	c = r.run(c.ID, nil, time.Second, 10, ended)
	if c.State != campaigns.StateCompleted {
		t.Fatalf("state %s", c.State)
	}
}

// A device already on the version is counted up to date, not updated; a device busy with a
// single-device update waits for it instead of colliding.
func TestUpToDateAndBusyDevice(t *testing.T) {
	r := newRig(t, 3)
	r.fleet.add("dev-0000", "m1", imageVersion, nil)
	// dev-0001 is being updated on its own.
	j, tr := fwupdate.NewJob("single", "dev-0001", fwupdate.ImageRef{ID: "img", Version: imageVersion, Size: 1},
		fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", r.clock.now())
	if err := r.store.CreateJob(context.Background(), j, tr); err != nil {
		t.Fatal(err)
	}
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100)}})
	r.m.Tick(context.Background())
	if up := r.members(c.ID, campaigns.MemberUpToDate); len(up) != 1 || up[0].Endpoint != "dev-0000" {
		t.Fatalf("up to date: %+v", up)
	}
	if p := r.members(c.ID, campaigns.MemberPending); len(p) != 1 || p[0].Endpoint != "dev-0001" || !contains(p[0].Reason, "another update") {
		t.Fatalf("pending: %+v", p)
	}
	r.drv.finish(t, nil) // ends the single update and the campaign's dev-0002
	r.fleet.add("dev-0001", "m1", "1.0.0", nil)
	c = r.run(c.ID, nil, time.Second, 10, ended)
	if c.State != campaigns.StateCompleted || r.drv.count["dev-0000"] != 0 || r.drv.count["dev-0001"] != 1 {
		t.Fatalf("state %s, starts %v", c.State, r.drv.count)
	}
}

// A manual gate waits for approval, and the next wave starts only after it.
func TestManualGate(t *testing.T) {
	r := newRig(t, 20)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: []plan.Wave{{Percent: 10, Gate: plan.Gate{Manual: true}}, {Percent: 100}}}})
	c = r.run(c.ID, nil, time.Second, 10, func(c *campaigns.Campaign) bool { return c.State == campaigns.StateWaitingApproval })
	if n := len(r.drv.starts); n != 2 {
		t.Fatalf("%d started before approval, want the 2 of wave 1", n)
	}
	if _, err := r.m.Pause(context.Background(), c.ID, "bob", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Approve(context.Background(), c.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Resume(context.Background(), c.ID, "bob", campaigns.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	c = r.run(c.ID, nil, time.Second, 10, ended)
	if c.State != campaigns.StateCompleted || len(r.drv.starts) != 20 {
		t.Fatalf("state %s, %d starts", c.State, len(r.drv.starts))
	}
}

// A hard abort cancels the updates in flight; a soft one lets them finish. Neither starts more.
func TestAbort(t *testing.T) {
	for _, hard := range []bool{false, true} {
		t.Run(fmt.Sprint("hard=", hard), func(t *testing.T) {
			r := newRig(t, 10)
			c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100), Pacing: plan.Pacing{MaxConcurrent: 4}}})
			r.m.Tick(context.Background())
			if _, err := r.m.Abort(context.Background(), c.ID, "bob", "bad build", hard); err != nil {
				t.Fatal(err)
			}
			r.m.Tick(context.Background())
			if !hard {
				r.drv.finish(t, nil)
			}
			r.m.Tick(context.Background())
			c = r.get(c.ID)
			want := campaigns.MemberSucceeded
			if hard {
				want = campaigns.MemberCancelled
			}
			if got := r.members(c.ID, want); len(got) != 4 || c.State != campaigns.StateAborted || c.InFlight != 0 {
				t.Fatalf("%d %s (want 4), state %s, in flight %d", len(got), want, c.State, c.InFlight)
			}
			if len(r.drv.starts) != 4 {
				t.Fatalf("%d started, want 4", len(r.drv.starts))
			}
			if _, err := r.m.Pause(context.Background(), c.ID, "bob", ""); !errors.Is(err, campaigns.ErrInvalidTransition) {
				t.Fatalf("pause an aborted campaign: %v", err)
			}
		})
	}
}

// Retry gives the failed devices one more attempt, even after the campaign completed, and
// the campaign completes again only once they finished, whatever wave they belong to.
func TestRetryFailed(t *testing.T) {
	r := newRig(t, 10)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(10, 100)}})
	fail := map[string]bool{}
	var canary string
	for _, m := range r.members(c.ID, "") {
		if m.Wave == 0 {
			canary = m.Endpoint
			fail[canary] = true
		}
	}
	c = r.run(c.ID, fail, time.Second, 10, ended)
	if n := len(r.members(c.ID, campaigns.MemberFailed)); c.State != campaigns.StateCompleted || n != 1 {
		t.Fatalf("state %s, %d failed", c.State, n)
	}
	if _, err := r.m.Retry(context.Background(), c.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	c = r.run(c.ID, nil, time.Second, 10, ended)
	if n := len(r.members(c.ID, campaigns.MemberSucceeded)); c.State != campaigns.StateCompleted || n != 10 {
		t.Fatalf("state %s, %d succeeded after the retry", c.State, n)
	}
	for ep, n := range r.drv.count {
		if want := map[bool]int{true: 2, false: 1}[ep == canary]; n != want {
			t.Fatalf("%s got %d updates, want %d: only the failed device gets a second attempt", ep, n, want)
		}
	}
}

// The plan's retryable attempts re-run a failed update before counting it failed.
func TestRetryableAttempts(t *testing.T) {
	r := newRig(t, 3)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100), Retries: plan.Retries{Retryable: 2}}})
	c = r.run(c.ID, map[string]bool{"dev-0001": true}, time.Second, 20, ended)
	if r.drv.count["dev-0001"] != 3 || len(r.members(c.ID, campaigns.MemberFailed)) != 1 {
		t.Fatalf("starts %v; a retryable failure gets 1+2 attempts", r.drv.count)
	}
}

// Dynamic membership: a device registering after the start joins.
func TestDynamicMembership(t *testing.T) {
	r := newRig(t, 2)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100), DynamicMembership: true,
		Schedule: plan.Schedule{EndAt: r.clock.now().Add(time.Hour), EndAction: plan.EndStopStarting}}})
	r.m.Tick(context.Background())
	r.fleet.add("dev-late", "m1", "1.0.0", nil)
	r.fleet.add("other-model", "m2", "1.0.0", nil)
	for range 30 {
		r.drv.finish(t, nil)
		r.clock.add(time.Second)
		r.m.Tick(context.Background())
	}
	if r.drv.count["dev-late"] != 1 || r.drv.count["other-model"] != 0 {
		t.Fatalf("starts %v", r.drv.count)
	}
	if got := r.get(c.ID); got.State != campaigns.StateRunning {
		t.Fatalf("state %s: a dynamic campaign runs until its end time", got.State)
	}
	r.clock.add(time.Hour)
	r.m.Tick(context.Background())
	if got := r.get(c.ID); got.State != campaigns.StateCompleted {
		t.Fatalf("state %s after the end time", got.State)
	}
}

// Bad campaigns are refused before anything is stored, each with the field at fault.
func TestCreateRefuses(t *testing.T) {
	r := newRig(t, 5)
	r.fleet.add("odd", "m9", "1.0.0", nil)
	r.create(campaigns.Spec{Endpoints: []string{"dev-0004"}, Plan: plan.Plan{Waves: waves(100)}})
	past := r.clock.now().Add(-time.Hour)
	for _, c := range []struct {
		name  string
		spec  campaigns.Spec
		field string
	}{
		{"waves not ending at 100", campaigns.Spec{Plan: plan.Plan{Waves: waves(10, 50)}}, "waves"},
		{"unknown image", campaigns.Spec{ImageID: "nope", Plan: plan.Plan{Waves: waves(100)}}, "image_id"},
		{"empty selection", campaigns.Spec{Query: `model = "m7"`, Plan: plan.Plan{Waves: waves(100)}}, "selector"},
		{"bad query", campaigns.Spec{Query: `model ==`, Plan: plan.Plan{Waves: waves(100)}}, "selector.query"},
		{"model mismatch", campaigns.Spec{Query: `endpoint = "odd"`, Plan: plan.Plan{Waves: waves(100)}}, "image_id"},
		{"unknown endpoint", campaigns.Spec{Endpoints: []string{"dev-0001", "ghost"}, Plan: plan.Plan{Waves: waves(100)}}, "selector.endpoints"},
		{"end in the past", campaigns.Spec{Plan: plan.Plan{Waves: waves(100), Schedule: plan.Schedule{EndAt: past, EndAction: plan.EndStopStarting}}}, "schedule"},
		{"window never opens", campaigns.Spec{Plan: plan.Plan{Waves: waves(100), Schedule: plan.Schedule{Windows: []plan.Window{{Cron: "0 0 30 2 *", Duration: time.Hour}}}}}, "schedule"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.spec.ImageID == "" {
				c.spec.ImageID = "img"
			}
			c.spec.Name = "bad"
			if c.spec.Query == "" && c.spec.Endpoints == nil {
				c.spec.Query = `model = "m1"`
			}
			_, err := r.m.Create(context.Background(), c.spec, "alice")
			var ie *campaigns.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Create = %v, want an InvalidError", err)
			}
			if !slices.ContainsFunc(ie.Problems, func(p campaigns.Problem) bool {
				return len(p.Field) >= len(c.field) && p.Field[:len(c.field)] == c.field
			}) {
				t.Fatalf("problems %+v do not name %s", ie.Problems, c.field)
			}
		})
	}
	// dev-0004 is in the draft created above: a draft holds its devices too.
	_, err := r.m.Create(context.Background(), campaigns.Spec{Name: "overlap", ImageID: "img", Endpoints: []string{"dev-0004"}, Plan: plan.Plan{Waves: waves(100)}}, "alice")
	var ce *campaigns.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("overlapping campaign: %v, want a ConflictError", err)
	}
	list, _ := r.m.List(context.Background())
	if len(list) != 1 {
		t.Fatalf("%d campaigns stored, want only the valid one", len(list))
	}
}

// At the schedule's end no update starts any more; with cancel-in-flight the updates in flight
// are cancelled, and the campaign completes saying how many devices were never started.
func TestScheduleEnd(t *testing.T) {
	for _, action := range []plan.EndAction{plan.EndStopStarting, plan.EndCancelInFlight} {
		t.Run(string(action), func(t *testing.T) {
			r := newRig(t, 10)
			c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100), Pacing: plan.Pacing{MaxConcurrent: 2},
				Schedule: plan.Schedule{EndAt: r.clock.now().Add(time.Minute), EndAction: action}}})
			r.m.Tick(context.Background())
			r.clock.add(2 * time.Minute)
			r.m.Tick(context.Background())
			if action == plan.EndStopStarting {
				if got := r.get(c.ID); got.State != campaigns.StateRunning || got.InFlight != 2 {
					t.Fatalf("state %s with %d in flight: the updates in flight finish first", got.State, got.InFlight)
				}
				r.drv.finish(t, nil)
			}
			r.m.Tick(context.Background())
			r.m.Tick(context.Background())
			got := r.get(c.ID)
			if got.State != campaigns.StateCompleted || !contains(got.Reason, "8 devices were not started") || len(r.drv.starts) != 2 {
				t.Fatalf("state %s (%s), %d started", got.State, got.Reason, len(r.drv.starts))
			}
			want := map[plan.EndAction]campaigns.MemberState{plan.EndStopStarting: campaigns.MemberSucceeded, plan.EndCancelInFlight: campaigns.MemberCancelled}[action]
			if n := len(r.members(c.ID, want)); n != 2 {
				t.Fatalf("%d members %s, want the 2 in flight", n, want)
			}
		})
	}
}

// An image deleted under a running campaign (the API refuses that, but a database edited by
// hand or a race may do it) fails the campaign at its next start of an update, with the
// reason, instead of leaving it running and retrying every tick.
func TestImageDeletedFailsCampaign(t *testing.T) {
	r := newRig(t, 20)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(10, 100)}})
	r.drv.mu.Lock()
	r.drv.gone = true
	r.drv.mu.Unlock()
	c = r.run(c.ID, nil, time.Second, 5, ended)
	if c.State != campaigns.StateFailed || c.Reason != "image img was deleted" {
		t.Fatalf("campaign %s (%q), want failed (%q)", c.State, c.Reason, "image img was deleted")
	}
	if n := len(r.members(c.ID, campaigns.MemberInProgress)); n != 0 {
		t.Errorf("%d members in progress after the image was deleted", n)
	}
}

// TestSelectionNarrowsTheDeviceList: creating (and ticking) a campaign asks the fleet only for
// the devices its selector's top-level conjunction allows (prefix, attributes, labels), briefly
// (no object lists), and
// the members are still exactly the devices the selector matches.
func TestSelectionNarrowsTheDeviceList(t *testing.T) {
	r := newRig(t, 40)
	c := r.create(campaigns.Spec{Start: true, Query: `endpoint ^= "dev-001" and model = "m1" and labels.cell = "c1"`,
		Plan: plan.Plan{Waves: waves(100)}})
	r.m.Tick(context.Background())
	var got []string
	for _, m := range r.members(c.ID, "") {
		got = append(got, m.Endpoint)
	}
	slices.Sort(got)
	if want := []string{"dev-0013", "dev-0017"}; !slices.Equal(got, want) { // dev-0010..0019 with i%4 == 1
		t.Fatalf("members %v, want %v", got, want)
	}
	r.fleet.mu.Lock()
	defer r.fleet.mu.Unlock()
	if len(r.fleet.filters) == 0 {
		t.Fatal("the fleet was never listed")
	}
	for _, f := range r.fleet.filters {
		if f.EndpointPrefix != "dev-001" || f.Model != "m1" || f.Labels["cell"] != "c1" {
			t.Fatalf("the fleet was listed with %+v: the selector's prefix, model and label were not passed down", f)
		}
		if !f.Brief {
			t.Fatalf("the fleet was listed with %+v: not Brief, every object list decoded for nothing", f)
		}
	}
}
