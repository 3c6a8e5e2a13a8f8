package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// TestCreateCampaignPrepared: the member and claim INSERTs of a campaign of 12,000 devices run
// through statements the writer prepared once (queries.writes), all but the last partial chunk
// of each, instead of SQLite parsing 60 statements of up to 2,800 parameters per campaign (the
// largest part of storing it); and every member and claim is stored.
func TestCreateCampaignPrepared(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	c := &campaigns.Campaign{ID: "cmp_big", Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
		Plan: plan.Plan{Waves: []plan.Wave{{Percent: 100}}}, Gates: make([]plan.GateState, 1), CreatedAt: now, UpdatedAt: now}
	const n = 12050
	members := make([]campaigns.Member, n)
	for i := range members {
		members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("dev-%05d", i), Rank: i,
			State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
	}
	ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "test", Action: "create"}
	stmts, err := s.createStmts(c, ev, members)
	if err != nil {
		t.Fatal(err)
	}
	prepared := map[string]bool{}
	for _, q := range s.q.writes() {
		prepared[q] = true
	}
	var bulk, unprepared int
	for _, st := range stmts {
		if !strings.HasPrefix(st.query, "INSERT INTO campaign_members") && !strings.HasPrefix(st.query, "INSERT INTO campaign_claims") {
			continue
		}
		bulk++
		if !prepared[st.query] {
			unprepared++
		}
	}
	if want := 2 * ((n + rowsPerInsert - 1) / rowsPerInsert); bulk != want || unprepared != 2 {
		t.Fatalf("CreateCampaign of %d members: %d member and claim INSERTs (want %d), %d not prepared (want 2: the last chunks)",
			n, bulk, want, unprepared)
	}
	ctx := context.Background()
	if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
		t.Fatal(err)
	}
	sum, err := s.MemberSummary(ctx, c.ID, 1)
	if err != nil || sum.Waves[0].Pending != n {
		t.Fatalf("MemberSummary = %+v, %v; want %d pending", sum, err, n)
	}
	if claimed, err := s.Claimed(ctx, endpointsOf(members)); err != nil || len(claimed) != n {
		t.Fatalf("Claimed = %d, %v; want %d", len(claimed), err, n)
	}
}

func endpointsOf(ms []campaigns.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Endpoint
	}
	return out
}

// BenchmarkCreateCampaign stores campaigns of 10,000 members each (on SQLite), as a campaign
// start over 10,000 devices does.
func BenchmarkCreateCampaign(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "lwota.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	const n = 10000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := &campaigns.Campaign{ID: fmt.Sprintf("cmp_%d", i), Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
			Plan: plan.Plan{Waves: []plan.Wave{{Percent: 100}}}, Gates: make([]plan.GateState, 1), CreatedAt: now, UpdatedAt: now}
		members := make([]campaigns.Member, n)
		for j := range members {
			members[j] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("dev-%d-%05d", i, j), Rank: j,
				State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
		}
		ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "bench", Action: "create"}
		if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimed looks up the claims of 10,000 devices, as a campaign's creation does before
// it stores them.
func BenchmarkClaimed(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "lwota.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	eps := make([]string, 10000)
	for i := range eps {
		eps[i] = fmt.Sprintf("dev-%05d", i)
	}
	ctx := context.Background()
	if err := s.w.do(ctx, "claims", s.claimInserts("cmp_x", eps[:5000], false)...); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := s.Claimed(ctx, eps)
		if err != nil || len(got) != 5000 {
			b.Fatalf("Claimed = %d, %v", len(got), err)
		}
	}
}
