package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
)

func testFleetCounts(t *testing.T, s registration.Store) {
	fc, ok := s.(registration.FleetCounter)
	if !ok {
		t.Skipf("%T does not count the fleet", s)
	}
	ctx := context.Background()
	empty, err := fc.FleetCounts(ctx, base, 10)
	if err != nil || empty.Known != 0 || empty.Online != 0 || len(empty.Versions) != 0 {
		t.Fatalf("FleetCounts(empty) = %+v, %v; want zeros", empty, err)
	}
	now := base
	fleet := filterFixture(now)
	fleet[len(fleet)-1].UpdatedAt = time.Time{}
	mustSave(t, s, fleet...)
	// Online: dev-a1, dev-b1, other, dev-a, dev-ä (dev-a2 and edge expired, dev-b2 de-registered,
	// never-updated never updated).
	got, err := fc.FleetCounts(ctx, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := &registration.Fleet{Known: 9, Online: 5, MoreVersions: true, Versions: []registration.FleetVersion{
		{FirmwareVersion: "1.0", Model: "", Devices: 3, Online: 1}, // dev-b2, dev-ä, never-updated
		{FirmwareVersion: "1.0", Model: "M1", Devices: 2, Online: 2},
		{FirmwareVersion: "", Model: "M1", Devices: 1, Online: 1},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FleetCounts:\n got %+v\nwant %+v", got, want)
	}
	all, err := fc.FleetCounts(ctx, now, 100)
	if err != nil || all.MoreVersions || len(all.Versions) != 6 {
		t.Errorf("FleetCounts(100) = %+v, %v; want 6 groups and no more", all, err)
	}
}

func testJobStats(t *testing.T, s fwupdate.Store) {
	ss, ok := s.(fwupdate.StatsStore)
	if !ok {
		if w, isW := s.(withImages); isW {
			ss, ok = w.jobsAndImages.(fwupdate.StatsStore)
		}
	}
	if !ok {
		t.Skipf("%T does not aggregate jobs", s)
	}
	ctx := context.Background()
	mk := func(id, ep string) *fwupdate.Job {
		j, tr := newJob(id, ep)
		mustCreateJob(t, s, j, tr)
		return j
	}
	mk("j-queued", "ep-1")
	d := mk("j-deliv", "ep-2")
	step(t, s, d, fwupdate.StateDelivering, at(time.Second), "")
	old := mk("j-old", "ep-3")
	step(t, s, old, fwupdate.StateFailed, at(-48*time.Hour), "the device did not come online")
	for i, ep := range []string{"ep-4", "ep-5", "ep-6"} {
		j := mk("j-fail-"+ep, ep)
		reason := "the device did not come online"
		if i == 2 {
			reason = "integrity check failure"
		}
		step(t, s, j, fwupdate.StateFailed, at(time.Minute), reason)
	}
	// ep-1 gets a newer job after an old, finished one.
	ok1 := mk("j-a-done", "ep-7")
	step(t, s, ok1, fwupdate.StateCancelled, at(2*time.Second), "")
	later, tr := fwupdate.NewJob("j-0-later", "ep-7", fwupdate.ImageRef{ID: "img-j-0-later", Version: "1.4.2", Size: 1},
		fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", at(time.Hour))
	mustCreateJob(t, s, later, tr)

	st, err := ss.JobStats(ctx, at(-24*time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	wantActive := map[fwupdate.State]int{fwupdate.StateQueued: 2, fwupdate.StateDelivering: 1}
	if !reflect.DeepEqual(st.Active, wantActive) {
		t.Errorf("Active = %v, want %v", st.Active, wantActive)
	}
	wantFail := []fwupdate.FailureCount{{DeviceResult: fwupdate.Unknown, Reason: "the device did not come online", Jobs: 2}}
	if !reflect.DeepEqual(st.Failures, wantFail) || !st.MoreFailures || st.Failed != 3 {
		t.Errorf("Failures = %+v (more %v, %d failed), want %+v and more, 3 failed", st.Failures, st.MoreFailures, st.Failed, wantFail)
	}

	latest, err := ss.LatestJobs(ctx, []string{"ep-1", "ep-7", "ep-none", "ep-3"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for ep, j := range latest {
		got[ep] = j.ID
	}
	want := map[string]string{"ep-1": "j-queued", "ep-7": "j-0-later", "ep-3": "j-old"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LatestJobs = %v, want %v", got, want)
	}
	if none, err := ss.LatestJobs(ctx, nil); err != nil || len(none) != 0 {
		t.Errorf("LatestJobs(nil) = %v, %v", none, err)
	}
}
