package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// TestCreateCampaignSetBased: the members of a campaign of 12,050 devices (alike but for their
// endpoint, wave and rank, each wave in rank order and the endpoints in no order, as Create
// makes them) and their claims go in a few INSERTs carrying the endpoints as one JSON document,
// prepared once per writer (queries.writes), instead of 122 INSERTs binding 200 rows each;
// members that differ in more are stored row by row; and every member and claim is stored as
// given on both paths, on both backends.
func TestCreateCampaignSetBased(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testCreateCampaignSetBased(t, b.dsn(t)) })
	}
}

func testCreateCampaignSetBased(t *testing.T, dsn string) {
	s, err := Open(context.Background(), dsn, nil)
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
		// Two waves: 50 devices, then 12,000; two statements of setRowsPerStatement at most.
		{"alike", true, 2, 0},
		// A member with progress: rowsPerInsert a statement, the last chunk not prepared.
		{"unlike", false, (n + rowsPerInsert - 1) / rowsPerInsert, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &campaigns.Campaign{ID: "cmp_" + tc.name, Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
				Plan: plan.Plan{Waves: []plan.Wave{{Count: 50}, {Percent: 100}}}, Gates: make([]plan.GateState, 2), CreatedAt: now, UpdatedAt: now}
			members := make([]campaigns.Member, n)
			for i := range members {
				// 7919 is prime to n: the endpoints are a permutation, in no order of rank or wave.
				members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("%s-%05d", tc.name, i*7919%n), Rank: i,
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

// TestSetInsertsNeedNoSort: a campaign's members (in wave order, their endpoints in none) and
// claims go to SQLite in their primary key's order without a sort in the statement: the JSON
// document of each INSERT holds the endpoints sorted, and the plan of neither statement has a
// temporary B-tree (an ORDER BY's sorter: about a fifth of a 10,000-member create's CPU).
func TestSetInsertsNeedNoSort(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	const n = 1000
	c := &campaigns.Campaign{ID: "cmp_sort", Name: "sort", ImageID: "img", State: campaigns.StateDraft, Version: 1,
		Plan: plan.Plan{Waves: []plan.Wave{{Count: 10}, {Percent: 100}}}, Gates: make([]plan.GateState, 2), CreatedAt: now, UpdatedAt: now}
	members := make([]campaigns.Member, n)
	for i := range members {
		members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("dev-%04d", i*7919%n), Wave: min(i/10, 1), Rank: i,
			State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
	}
	ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "test", Action: "create"}
	stmts, err := s.createStmts(c, ev, members)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, st := range stmts {
		if !strings.HasPrefix(st.query, "INSERT INTO campaign_members") && !strings.HasPrefix(st.query, "INSERT INTO campaign_claims") {
			continue
		}
		seen++
		doc, _ := st.args[len(st.args)-1].(string)
		var keys []string
		dec := json.NewDecoder(strings.NewReader(doc))
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if k, ok := tok.(string); ok {
				keys = append(keys, k)
			}
		}
		if len(keys) != n || !slices.IsSorted(keys) {
			t.Errorf("%.40s: %d endpoints, sorted %v; want %d sorted", st.query, len(keys), slices.IsSorted(keys), n)
		}
		rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+st.query, st.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%.40s: plan %q sorts", st.query, p)
		}
	}
	if seen != 2 {
		t.Fatalf("%d member and claim INSERTs; want 2", seen)
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
	var cpu time.Duration
	for i := 0; b.Loop(); i++ {
		c := &campaigns.Campaign{ID: fmt.Sprintf("cmp_%d", i), Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
			Plan: plan.Plan{Waves: []plan.Wave{{Percent: 100}}}, Gates: make([]plan.GateState, 1), CreatedAt: now, UpdatedAt: now}
		members := make([]campaigns.Member, n)
		for j := range members {
			members[j] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("dev-%d-%05d", i, j), Rank: j,
				State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
		}
		ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "bench", Action: "create"}
		cpu0 := processCPU()
		if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - cpu0
	}
	// The process's CPU per create (the store's writer included): on a busy machine the time
	// per create measures the neighbours as much as the store.
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
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

// processCPU is the CPU time this process has used, user and system (as bench_test.go's, of
// the external test package).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
