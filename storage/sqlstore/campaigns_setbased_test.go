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

// TestCreateCampaignSetBased: the members of a campaign of 12,050 devices (alike but for their
// endpoint, wave and rank, each wave in rank order, as Create makes them) and their claims go in
// a few INSERTs carrying the endpoints as a JSON array, prepared once per writer
// (queries.writes), instead of 122 INSERTs binding 200 rows each; members that differ in more
// are stored row by row; and every member and claim is stored as given on both paths.
func TestCreateCampaignSetBased(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	const n = 12050
	for _, tc := range []struct {
		name                 string
		alike                bool
		wantMembers, wantRaw int // member INSERTs, of them not prepared
	}{
		// Two waves: 50 devices, then 12,000 (two statements: setRowsPerStatement).
		{"alike", true, 3, 0},
		// A member with progress: rowsPerInsert a statement, the last chunk not prepared.
		{"unlike", false, (n + rowsPerInsert - 1) / rowsPerInsert, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &campaigns.Campaign{ID: "cmp_" + tc.name, Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
				Plan: plan.Plan{Waves: []plan.Wave{{Count: 50}, {Percent: 100}}}, Gates: make([]plan.GateState, 2), CreatedAt: now, UpdatedAt: now}
			members := make([]campaigns.Member, n)
			for i := range members {
				members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("%s-%05d", tc.name, i), Rank: i,
					CapLabel: "cell-1", State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
				if i >= 50 {
					members[i].Wave, members[i].Rank = 1, i-50
				}
			}
			members[7].Endpoint = `quote"d\back ünï 📡 ` + tc.name
			if !tc.alike {
				members[n-1].State, members[n-1].JobID, members[n-1].Attempts, members[n-1].StartedAt = campaigns.MemberInProgress, "job-1", 1, now
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
			var memberIns, memberRaw, claimIns, claimRaw int
			for _, st := range stmts {
				switch {
				case strings.HasPrefix(st.query, "INSERT INTO campaign_members"):
					memberIns++
					if !prepared[st.query] {
						memberRaw++
					}
				case strings.HasPrefix(st.query, "INSERT INTO campaign_claims"):
					claimIns++
					if !prepared[st.query] {
						claimRaw++
					}
				}
			}
			if memberIns != tc.wantMembers || memberRaw != tc.wantRaw || claimIns != 2 || claimRaw != 0 {
				t.Fatalf("CreateCampaign of %d members: %d member INSERTs (%d not prepared), %d claim INSERTs (%d not prepared); want %d (%d), 2 (0)",
					n, memberIns, memberRaw, claimIns, claimRaw, tc.wantMembers, tc.wantRaw)
			}
			ctx := context.Background()
			if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
				t.Fatal(err)
			}
			got, err := s.Members(ctx, c.ID, campaigns.MemberFilter{})
			if err != nil || len(got) != n {
				t.Fatalf("Members = %d, %v; want %d", len(got), err, n)
			}
			for i, m := range got { // by wave and rank: the order given
				if want := members[i]; m.Endpoint != want.Endpoint || m.Wave != want.Wave || m.Rank != want.Rank || m.CapLabel != want.CapLabel ||
					m.State != want.State || m.JobID != want.JobID || m.Attempts != want.Attempts || !m.StartedAt.Equal(want.StartedAt) ||
					!m.PendingSince.Equal(want.PendingSince) || !m.UpdatedAt.Equal(want.UpdatedAt) || !m.EndedAt.IsZero() {
					t.Fatalf("member %d = %+v, want %+v", i, m, want)
				}
			}
			if claimed, err := s.Claimed(ctx, endpointsOf(members)); err != nil || len(claimed) != n {
				t.Fatalf("Claimed = %d, %v; want %d", len(claimed), err, n)
			}
		})
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

// BenchmarkClaimed looks up the claims of 10,000 devices, as a preview does, and a creation
// refused for devices claimed already to name them.
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
	claims, err := s.claimInserts("cmp_x", eps[:5000], false)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.w.do(ctx, "claims", claims...); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := s.Claimed(ctx, eps)
		if err != nil || len(got) != 5000 {
			b.Fatalf("Claimed = %d, %v", len(got), err)
		}
	}
}

// BenchmarkMemberSummary10000 counts the members of a campaign of 10,000 per wave and state, as
// every answer about a campaign does (create, start, get, the actions).
func BenchmarkMemberSummary10000(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "lwota.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	c := &campaigns.Campaign{ID: "cmp_sum", Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
		Plan: plan.Plan{Waves: []plan.Wave{{Percent: 1}, {Percent: 10}, {Percent: 100}}}, Gates: make([]plan.GateState, 3), CreatedAt: now, UpdatedAt: now}
	members := make([]campaigns.Member, 10000)
	for i := range members {
		members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("dev-%05d", i), Wave: min(i/100, 2), Rank: i,
			State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
	}
	ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "bench", Action: "create"}
	if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sum, err := s.MemberSummary(ctx, c.ID, 3)
		if err != nil || sum.Waves[2].Pending != 9800 {
			b.Fatalf("MemberSummary = %+v, %v", sum, err)
		}
	}
}
