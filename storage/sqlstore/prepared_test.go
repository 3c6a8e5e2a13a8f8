package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/fwupdate"
)

// TestCampaignWritesPrepared: the writes a campaign makes for each of its devices (the update
// job and its transitions, the member's progress, the audit entry of each job) and its tick's
// own (event, compare-and-set, the claims' release) and its creation run through statements the
// writer prepared once, not parsed by SQLite for every write: after a start of 10,000 devices
// the tick makes 10,000 of each, and their parsing was 13% of a 250,000-device fleet's CPU in
// `lwota bench fleet`. (SQLite only: PostgreSQL's pgx caches its statements per connection.)
func TestCampaignWritesPrepared(t *testing.T) {
	s := openSQLiteForTest(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	img := &firmware.Image{ID: "img", Name: "fw", Version: "2.0.0", Size: 1, SHA256: strings.Repeat("ab", 32),
		BlobKey: "images/sha256/" + strings.Repeat("ab", 32), CreatedAt: now}
	if err := s.SaveImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	c := &campaigns.Campaign{ID: "cmp", Name: "c", ImageID: img.ID, State: campaigns.StateDraft, Version: 1,
		Plan: plan.Plan{Waves: []plan.Wave{{Percent: 100}}}, Gates: make([]plan.GateState, 1), CreatedAt: now, UpdatedAt: now}
	members := []campaigns.Member{
		{CampaignID: c.ID, Endpoint: "a", State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now},
		{CampaignID: c.ID, Endpoint: "b", Rank: 1, State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now},
	}
	before := s.w.unprepared.Load()
	if err := s.CreateCampaign(ctx, c, campaigns.Event{CampaignID: c.ID, Seq: 1, At: now, To: campaigns.StateDraft, Actor: "t", Action: "create"}, members); err != nil {
		t.Fatal(err)
	}
	j, tr := fwupdate.NewJob("job-a", "a", fwupdate.ImageRef{ID: img.ID, Version: img.Version, Size: 1}, fwupdate.MethodPull,
		fwupdate.DefaultPolicy(), "", now)
	if err := s.CreateJob(ctx, j, tr); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, &audit.Entry{At: now, Actor: "system", Action: "update.state", Target: "update:job-a", Outcome: audit.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveProgress(ctx, j); err != nil {
		t.Fatal(err)
	}
	tr, err := j.Apply(fwupdate.StateFailed, now.Add(time.Second), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTransition(ctx, j, tr); err != nil {
		t.Fatal(err)
	}
	members[0].State, members[0].JobID, members[0].Attempts, members[0].StartedAt = campaigns.MemberInProgress, j.ID, 1, now
	if err := s.SaveMembers(ctx, members[:1]); err != nil {
		t.Fatal(err)
	}
	c.State, c.Version, c.UpdatedAt = campaigns.StateAborted, 2, now.Add(time.Second)
	if err := s.SaveTick(ctx, c, members[1:], campaigns.Event{At: c.UpdatedAt, From: campaigns.StateDraft, To: campaigns.StateAborted, Actor: "t", Action: "abort"}); err != nil {
		t.Fatal(err)
	}
	// The campaign outbox rows (one per event, when a webhook is subscribed) are the only
	// statements built per write: 2 here, one per event.
	if got := s.w.unprepared.Load() - before; got > 2 {
		t.Fatalf("%d statements of a campaign's writes ran unprepared; want at most the 2 campaign outbox rows", got)
	}
}

// BenchmarkCampaignJobWritesParallel makes the writes a campaign's tick makes for each device it
// starts (startOne: the update job with its creation record and outbox row, the audit entry,
// the member's progress), from 32 goroutines as the tick's do, on SQLite. cpu-us/op is the
// process's CPU per device.
func BenchmarkCampaignJobWritesParallel(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "lwota.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	now := time.Now()
	img := &firmware.Image{ID: "img", Name: "fw", Version: "2.0.0", Size: 1, SHA256: strings.Repeat("ab", 32),
		BlobKey: "images/sha256/" + strings.Repeat("ab", 32), CreatedAt: now}
	if err := s.SaveImage(ctx, img); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(16)
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ep := fmt.Sprintf("dev-%08d", n.Add(1))
			j, tr := fwupdate.NewJob("job-"+ep, ep, fwupdate.ImageRef{ID: img.ID, Version: img.Version, Size: 1}, fwupdate.MethodPull,
				fwupdate.DefaultPolicy(), "", now)
			if err := s.CreateJob(ctx, j, tr); err != nil {
				b.Error(err)
				return
			}
			if err := s.AppendAudit(ctx, &audit.Entry{At: now, Actor: "system", Action: "update.state", Target: "update:" + j.ID,
				Outcome: audit.OutcomeSuccess}); err != nil {
				b.Error(err)
				return
			}
			m := campaigns.Member{CampaignID: "cmp", Endpoint: ep, State: campaigns.MemberInProgress, JobID: j.ID, Attempts: 1,
				StartedAt: now, PendingSince: now, UpdatedAt: now}
			if err := s.SaveMembers(ctx, []campaigns.Member{m}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
}
