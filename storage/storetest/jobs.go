package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/fwupdate"
)

// RunJobs is the contract of fwupdate.Store.
func RunJobs(t *testing.T, openStore func(t *testing.T) fwupdate.Store) {
	// The jobs' made-up images are saved first where the store keeps images (see withImages).
	open := func(t *testing.T) fwupdate.Store {
		s := openStore(t)
		if ji, ok := s.(jobsAndImages); ok {
			return withImages{ji}
		}
		return s
	}
	parallel(t, "JobNeedsImage", openStore, testJobNeedsImage)
	parallel(t, "DeleteImageRacesCreateJob", openStore, testDeleteRacesJob)
	parallel(t, "RoundTrip", open, testJobRoundTrip)
	parallel(t, "OneActivePerEndpoint", open, testJobOneActive)
	parallel(t, "ConcurrentCreate", open, testJobConcurrentCreate)
	parallel(t, "History", open, testJobHistory)
	parallel(t, "ActiveAfterTerminal", open, testJobActive)
	parallel(t, "Atomic", open, testJobAtomic)
	parallel(t, "Cancelled", open, testJobCancelled)
	parallel(t, "Progress", open, testJobProgress)
	parallel(t, "ImageInUse", open, testImageInUse)
	parallel(t, "CampaignJobs", open, testCampaignJobs)
	parallel(t, "Stats", open, testJobStats)
}

func newJob(id, endpoint string) (*fwupdate.Job, fwupdate.Transition) {
	return fwupdate.NewJob(id, endpoint, fwupdate.ImageRef{ID: "img-" + id, Version: "1.4.2", Size: 1 << 20},
		fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", at(0))
}

func mustCreateJob(t *testing.T, s fwupdate.Store, j *fwupdate.Job, tr fwupdate.Transition) {
	t.Helper()
	if err := s.CreateJob(context.Background(), j, tr); err != nil {
		t.Fatalf("CreateJob(%s): %v", j.ID, err)
	}
}

// step applies to and saves it.
func step(t *testing.T, s fwupdate.Store, j *fwupdate.Job, to fwupdate.State, when time.Time, reason string) fwupdate.Transition {
	t.Helper()
	tr, err := j.Apply(to, when, reason)
	if err != nil {
		t.Fatalf("Apply(%s): %v", to, err)
	}
	if err := s.SaveTransition(context.Background(), j, tr); err != nil {
		t.Fatalf("SaveTransition(%s -> %s): %v", tr.From, to, err)
	}
	return tr
}

func normJob(j *fwupdate.Job) *fwupdate.Job {
	if j == nil {
		return nil
	}
	c := *j
	c.CreatedAt, c.UpdatedAt, c.NextAttemptAt = utc(c.CreatedAt), utc(c.UpdatedAt), utc(c.NextAttemptAt)
	c.StepAt = make(map[fwupdate.State]time.Time, len(j.StepAt))
	for st, when := range j.StepAt {
		c.StepAt[st] = utc(when)
	}
	return &c
}

func checkJob(t *testing.T, what string, got, want *fwupdate.Job) {
	t.Helper()
	if g, w := normJob(got), normJob(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func normHistory(trs []fwupdate.Transition) []fwupdate.Transition {
	out := make([]fwupdate.Transition, len(trs))
	for i, tr := range trs {
		tr.At = utc(tr.At)
		out[i] = tr
	}
	return out
}

func testJobRoundTrip(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	j, tr := newJob("j1", "urn:imei:1")
	j.CampaignID = "c-7"
	j.Method = fwupdate.MethodAuto
	j.Policy = fwupdate.Policy{MaxAttempts: 5, BackoffBase: 90 * time.Second, BackoffMax: 2 * time.Hour,
		Strict: true, MinLinkRate: 300, StepSlack: 7 * time.Minute}
	mustCreateJob(t, s, j, tr)
	got, err := s.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	checkJob(t, "GetJob after CreateJob", got, j)

	// Every field set, times with microseconds in a non-UTC zone.
	j.DeviceState, j.DeviceResult = 1, 0
	step(t, s, j, fwupdate.StateDelivering, at(time.Second), "")
	j.BytesDelivered = 123456
	j.ProtocolsTried = []int{0, 2}
	j.DeviceState, j.DeviceResult = 0, 4
	tr, err = j.Settle(fwupdate.Decision{Action: fwupdate.ActionRetry, RetryAt: at(time.Hour + time.Microsecond),
		Reason: "connection lost"}, at(2*time.Second+3*time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTransition(ctx, j, tr); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	checkJob(t, "GetJob after SaveTransition", got, j)
	if len(got.StepAt) != 3 {
		t.Errorf("StepAt = %v, want queued, delivering and failed", got.StepAt)
	}

	if _, err := s.GetJob(ctx, "nope"); !errors.Is(err, fwupdate.ErrJobNotFound) {
		t.Errorf("GetJob(nope): err = %v, want ErrJobNotFound", err)
	}
	other, otr := newJob("ghost", "urn:imei:9")
	if _, err := other.Apply(fwupdate.StateWaiting, at(time.Second), ""); err != nil {
		t.Fatal(err)
	}
	otr.Seq, otr.From, otr.To = other.Seq, fwupdate.StateQueued, other.State
	if err := s.SaveTransition(ctx, other, otr); !errors.Is(err, fwupdate.ErrJobNotFound) {
		t.Errorf("SaveTransition of an unknown job: err = %v, want ErrJobNotFound", err)
	}
	if h, err := s.History(ctx, "ghost"); err != nil || len(h) != 0 {
		t.Errorf("History(ghost) = %v, %v; want none", h, err)
	}
}

func testJobOneActive(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	a, atr := newJob("a", "ep")
	mustCreateJob(t, s, a, atr)
	b, btr := newJob("b", "ep")
	if err := s.CreateJob(ctx, b, btr); !errors.Is(err, fwupdate.ErrActiveJob) {
		t.Fatalf("second active job: err = %v, want ErrActiveJob", err)
	}
	if _, err := s.GetJob(ctx, "b"); !errors.Is(err, fwupdate.ErrJobNotFound) {
		t.Errorf("the refused job was stored: %v", err)
	}
	c, ctr := newJob("c", "other-ep")
	mustCreateJob(t, s, c, ctr)

	// A failed job with a retry scheduled still holds the endpoint.
	ftr, err := a.Settle(fwupdate.Decision{Action: fwupdate.ActionRetry, RetryAt: at(time.Minute)}, at(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTransition(ctx, a, ftr); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJob(ctx, b, btr); !errors.Is(err, fwupdate.ErrActiveJob) {
		t.Fatalf("job while a retry is pending: err = %v, want ErrActiveJob", err)
	}
	// Cancelled: the endpoint is free.
	step(t, s, a, fwupdate.StateQueued, at(time.Minute), "retry")
	step(t, s, a, fwupdate.StateCancelled, at(2*time.Minute), "operator")
	mustCreateJob(t, s, b, btr)
	jobs, err := s.JobsFor(ctx, "ep", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("JobsFor(ep) = %d jobs, want 2", len(jobs))
	}
}

func testJobConcurrentCreate(t *testing.T, s fwupdate.Store) {
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []string
		errs []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, tr := newJob(fmt.Sprintf("race-%02d", i), "urn:imei:race")
			err := s.CreateJob(context.Background(), j, tr)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, j.ID)
			case !errors.Is(err, fwupdate.ErrActiveJob):
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || len(errs) != 0 {
		t.Fatalf("%d concurrent CreateJob: winners %v, unexpected errors %v; want exactly one winner", n, won, errs)
	}
	active, err := s.ActiveJobs(context.Background())
	if err != nil || len(active) != 1 || active[0].ID != won[0] {
		t.Errorf("ActiveJobs = %v, %v; want only %s", active, err, won[0])
	}
}

func testJobHistory(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	j, tr := newJob("h", "ep")
	want := []fwupdate.Transition{tr}
	mustCreateJob(t, s, j, tr)
	for i, to := range []fwupdate.State{fwupdate.StateWaiting, fwupdate.StateDelivering, fwupdate.StateDownloaded,
		fwupdate.StateUpdating, fwupdate.StateVerifying, fwupdate.StateSucceeded} {
		j.DeviceState, j.DeviceResult = i%4, i
		want = append(want, step(t, s, j, to, at(time.Duration(i+1)*time.Minute), fmt.Sprintf("step %d", i)))
	}
	got, err := s.History(ctx, "h")
	if err != nil {
		t.Fatal(err)
	}
	if g, w := normHistory(got), normHistory(want); !reflect.DeepEqual(g, w) {
		t.Errorf("History:\n got %+v\nwant %+v", g, w)
	}
	// JobsFor: newest first, limited.
	for i := range 3 {
		j, tr := fwupdate.NewJob(fmt.Sprintf("n%d", i), "ep-n", fwupdate.ImageRef{ID: "i"}, fwupdate.MethodPush,
			fwupdate.DefaultPolicy(), "", at(time.Duration(i)*time.Hour))
		mustCreateJob(t, s, j, tr)
		step(t, s, j, fwupdate.StateCancelled, at(time.Duration(i)*time.Hour+time.Second), "")
	}
	jobs, err := s.JobsFor(ctx, "ep-n", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != "n2" || jobs[1].ID != "n1" {
		t.Errorf("JobsFor(ep-n, 2) = %v, want n2, n1", jobs)
	}
}

func testJobActive(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	ends := map[string]fwupdate.State{"done": fwupdate.StateSucceeded, "broken": fwupdate.StateFailed,
		"stopped": fwupdate.StateCancelled, "busy": fwupdate.StateDelivering}
	for i, id := range []string{"busy", "done", "broken", "stopped", "new"} {
		j, tr := fwupdate.NewJob(id, "ep-"+id, fwupdate.ImageRef{ID: "i"}, fwupdate.MethodPull,
			fwupdate.DefaultPolicy(), "", at(time.Duration(i)*time.Second))
		mustCreateJob(t, s, j, tr)
		if to, ok := ends[id]; ok {
			if to == fwupdate.StateSucceeded {
				for _, st := range []fwupdate.State{fwupdate.StateDelivering, fwupdate.StateDownloaded,
					fwupdate.StateUpdating, fwupdate.StateVerifying} {
					step(t, s, j, st, at(time.Minute), "")
				}
			}
			step(t, s, j, to, at(time.Hour), "")
		}
	}
	active, err := s.ActiveJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range active {
		ids = append(ids, j.ID)
	}
	if !reflect.DeepEqual(ids, []string{"busy", "new"}) {
		t.Errorf("ActiveJobs = %v, want [busy new] (oldest first)", ids)
	}
}

// testJobAtomic checks that a refused transition leaves neither the job nor its history changed.
func testJobAtomic(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	j, tr := newJob("at", "ep")
	mustCreateJob(t, s, j, tr)
	stale := j.Clone()
	step(t, s, j, fwupdate.StateWaiting, at(time.Second), "")
	// A second writer working on the old copy loses.
	tr2, err := stale.Apply(fwupdate.StateDelivering, at(2*time.Second), "late")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTransition(ctx, stale, tr2); !errors.Is(err, fwupdate.ErrStaleJob) {
		t.Errorf("SaveTransition on a stale copy: err = %v, want ErrStaleJob", err)
	}
	// A job update whose history row cannot be stored (Seq stored already) rolls back too.
	dup := j.Clone()
	dup.Reason = "should not be stored"
	trDup := fwupdate.Transition{JobID: j.ID, Seq: j.Seq, From: fwupdate.StateQueued, To: j.State, At: at(time.Second)}
	if err := s.SaveTransition(ctx, dup, trDup); !errors.Is(err, fwupdate.ErrStaleJob) {
		t.Errorf("SaveTransition repeating #%d: err = %v, want ErrStaleJob", j.Seq, err)
	}
	got, err := s.GetJob(ctx, "at")
	if err != nil {
		t.Fatal(err)
	}
	checkJob(t, "job after refused transitions", got, j)
	h, err := s.History(ctx, "at")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[1].To != fwupdate.StateWaiting {
		t.Errorf("History = %+v, want creation and waiting only", h)
	}
}

func testJobCancelled(t *testing.T, s fwupdate.Store) {
	j, tr := newJob("cx", "ep")
	wantCanceled(t, "CreateJob", s.CreateJob(cancelled(), j, tr))
	mustCreateJob(t, s, j, tr)
	tr, err := j.Apply(fwupdate.StateWaiting, at(time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	wantCanceled(t, "SaveTransition", s.SaveTransition(cancelled(), j, tr))
	_, err = s.GetJob(cancelled(), "cx")
	wantCanceled(t, "GetJob", err)
	_, err = s.JobsFor(cancelled(), "ep", 1)
	wantCanceled(t, "JobsFor", err)
	_, err = s.ActiveJobs(cancelled())
	wantCanceled(t, "ActiveJobs", err)
	_, err = s.History(cancelled(), "cx")
	wantCanceled(t, "History", err)
}

// testJobProgress: progress within a state is stored in place, without a history line, and
// only while the job is still at the Seq the writer saw.
func testJobProgress(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	j, tr := newJob("p1", "urn:imei:p")
	mustCreateJob(t, s, j, tr)
	step(t, s, j, fwupdate.StateDelivering, at(time.Second), "")
	j.BytesDelivered, j.DeviceState, j.DeviceResult = 4096, 1, 0
	j.FromVersion, j.Delivery = "1.0.0", fwupdate.DeliveryCoAP
	j.UpdatedAt = at(2 * time.Second)
	if err := s.SaveProgress(ctx, j); err != nil {
		t.Fatalf("SaveProgress: %v", err)
	}
	got, err := s.GetJob(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	checkJob(t, "GetJob after SaveProgress", got, j)
	if h, err := s.History(ctx, "p1"); err != nil || len(h) != 2 {
		t.Errorf("History = %d lines, %v; want 2 (progress adds none)", len(h), err)
	}

	stale := j.Clone()
	step(t, s, j, fwupdate.StateDownloaded, at(3*time.Second), "")
	stale.BytesDelivered = 1
	if err := s.SaveProgress(ctx, stale); !errors.Is(err, fwupdate.ErrStaleJob) {
		t.Errorf("SaveProgress of a job that moved on: err = %v, want ErrStaleJob", err)
	}
	if got, _ := s.GetJob(ctx, "p1"); got == nil || got.BytesDelivered != 4096 || got.State != fwupdate.StateDownloaded {
		t.Errorf("a stale SaveProgress changed the job: %+v", got)
	}
	if err := s.SaveProgress(ctx, &fwupdate.Job{ID: "nope", Endpoint: "x", Seq: 1}); !errors.Is(err, fwupdate.ErrStaleJob) {
		t.Errorf("SaveProgress of an unknown job: err = %v, want ErrStaleJob", err)
	}
}

// testImageInUse: an image is in use while an active job delivers it, and free once the job ends.
func testImageInUse(t *testing.T, s fwupdate.Store) {
	u, ok := s.(interface {
		ImageInUse(ctx context.Context, id string) (bool, error)
	})
	if !ok {
		t.Fatalf("%T does not tell whether an image is in use (firmware.UsageChecker)", s)
	}
	ctx := context.Background()
	j, tr := newJob("u1", "urn:imei:u") // image "img-u1"
	mustCreateJob(t, s, j, tr)
	for _, c := range []struct {
		id   string
		want bool
	}{{"img-u1", true}, {"img-other", false}} {
		if got, err := u.ImageInUse(ctx, c.id); err != nil || got != c.want {
			t.Errorf("ImageInUse(%s) = %v, %v; want %v", c.id, got, err, c.want)
		}
	}
	step(t, s, j, fwupdate.StateCancelled, at(time.Second), "operator")
	if got, err := u.ImageInUse(ctx, "img-u1"); err != nil || got {
		t.Errorf("ImageInUse after the job ended = %v, %v; want false", got, err)
	}
}

// testCampaignJobs: a campaign finds its jobs by their last change, and only its own.
func testCampaignJobs(t *testing.T, s fwupdate.Store) {
	ctx := context.Background()
	mk := func(id, ep, campaign string) *fwupdate.Job {
		j, tr := fwupdate.NewJob(id, ep, fwupdate.ImageRef{ID: "img", Version: "2", Size: 10},
			fwupdate.MethodPull, fwupdate.DefaultPolicy(), campaign, at(0))
		mustCreateJob(t, s, j, tr)
		return j
	}
	a, b := mk("c1", "ep-a", "cmp_1"), mk("c2", "ep-b", "cmp_1")
	mk("c3", "ep-c", "cmp_2")
	mk("c4", "ep-d", "")
	step(t, s, b, fwupdate.StateWaiting, at(time.Minute), "")
	ids := func(since time.Time) []string {
		t.Helper()
		jobs, err := s.CampaignJobs(ctx, "cmp_1", since)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	if got := ids(time.Time{}); !slices.Equal(got, []string{a.ID, b.ID}) {
		t.Errorf("CampaignJobs(since zero) = %v, want [c1 c2] (oldest change first)", got)
	}
	if got := ids(at(30 * time.Second)); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("CampaignJobs(since 30s) = %v, want [c2]", got)
	}
	if got := ids(at(time.Minute)); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("CampaignJobs(since the change itself) = %v, want [c2]: since is inclusive", got)
	}
}
