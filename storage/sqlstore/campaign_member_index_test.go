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
	"github.com/lwota/lwota/storage/pgtest"
)

// backends opens a store on SQLite and one on PostgreSQL, each a subtest.
var backends = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "lwota.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
}

// explain returns the plan of q (args bound) on s's read pool, one line a step. On PostgreSQL
// sequential scans are switched off for the query's connection: the test tables are tiny, and
// what matters is whether the planner may use the index at all (a partial index whose term the
// query does not imply is never a candidate, and the plan falls back to the primary key).
func explain(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q = "EXPLAIN QUERY PLAN " + q
	if s.dialect.name != sqliteDialect.name {
		// The generic plan, which a statement pgx has prepared may get after five runs: one
		// that does not know the bound state (EXPLAIN of the query itself would plan it for the
		// values bound), so only the partial index's own term in the query lets it use the index.
		for _, set := range []string{"SET enable_seqscan = off", "SET plan_cache_mode = force_generic_plan",
			"PREPARE lwota_explain AS " + s.dialect.rebind(q[len("EXPLAIN QUERY PLAN "):])} {
			if _, err := conn.ExecContext(ctx, set); err != nil {
				t.Fatalf("%s: %v", set, err)
			}
		}
		defer func() { _, _ = conn.ExecContext(ctx, "DEALLOCATE lwota_explain; RESET ALL") }()
		lits := make([]string, len(args)) // EXECUTE takes no bound parameters: the test's own values as literals
		for i, a := range args {
			switch v := a.(type) {
			case string:
				lits[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			default:
				lits[i] = fmt.Sprint(v)
			}
		}
		q, args = "EXPLAIN (COSTS OFF) EXECUTE lwota_explain("+strings.Join(lits, ", ")+")", nil
	}
	rows, err := conn.QueryContext(ctx, s.dialect.rebind(q), args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		// SQLite: id, parent, notused, detail; PostgreSQL: one column of text.
		switch v := vals[len(vals)-1].(type) {
		case string:
			lines = append(lines, v)
		case []byte:
			lines = append(lines, string(v))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "; ")
}

// TestMemberStateReadsUseIndex: the reads of a campaign's members in one state other than
// pending (the console's device list by state, paged, and the failure reasons of the summary)
// are answered from the partial index campaign_members_state (migration 00018) on both
// backends, and the paged read of pending members walks the primary key in endpoint order
// without sorting.
func TestMemberStateReadsUseIndex(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, err := Open(context.Background(), b.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			members := func(f campaigns.MemberFilter) (string, []any) { return membersQuery(s.dialect, "cmp", f) }
			type query struct {
				q    string
				args []any
			}
			for _, tc := range []struct {
				name string
				query
			}{
				{"failed page", query{}},
				{"failed after", query{}},
				{"in progress, all", query{}},
				{"failure reasons", query{failureReasonsQuery(s.dialect), []any{"cmp", string(campaigns.MemberFailed)}}},
			} {
				switch tc.name {
				case "failed page":
					tc.q, tc.args = members(campaigns.MemberFilter{State: campaigns.MemberFailed, Limit: 51})
				case "failed after":
					tc.q, tc.args = members(campaigns.MemberFilter{State: campaigns.MemberFailed, After: "dev-1", Limit: 51})
				case "in progress, all":
					tc.q, tc.args = members(campaigns.MemberFilter{State: campaigns.MemberInProgress})
				}
				t.Run(tc.name, func(t *testing.T) {
					if got := explain(t, s, tc.q, tc.args...); !strings.Contains(got, "campaign_members_state") {
						t.Errorf("%s: plan %q; want it served by campaign_members_state", tc.q, got)
					}
				})
			}
			if s.dialect.name == sqliteDialect.name {
				q, args := membersQuery(s.dialect, "cmp", campaigns.MemberFilter{State: campaigns.MemberPending, After: "dev-1", Limit: 51})
				got := explain(t, s, q, args...)
				if !strings.Contains(got, "USING PRIMARY KEY") || strings.Contains(got, "TEMP B-TREE") {
					t.Errorf("%s: plan %q; want the primary key's range in its order", q, got)
				}
			}
		})
	}
}

// TestCampaignStartWritesNoStateIndex: the members' state index holds only members that have
// left pending, so the members a campaign start stores (all pending) have no entry in it, and
// a member gets one when it moves, and the reads by state find it.
func TestCampaignStartWritesNoStateIndex(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, b.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			var def string
			q := "SELECT sql FROM sqlite_master WHERE name = 'campaign_members_state'"
			if s.dialect.name != sqliteDialect.name {
				q = "SELECT indexdef FROM pg_indexes WHERE indexname = 'campaign_members_state'"
			}
			if err := s.db.QueryRowContext(ctx, q).Scan(&def); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(def, "WHERE") || !strings.Contains(def, "pending") {
				t.Fatalf("campaign_members_state = %q; want a partial index of the members not pending", def)
			}
			now := time.Unix(1_800_000_000, 0)
			c := &campaigns.Campaign{ID: "cmp_idx", Name: "idx", ImageID: "img", State: campaigns.StateRunning, Version: 1,
				Plan: plan.Plan{Waves: make([]plan.Wave, 1)}, Gates: make([]plan.GateState, 1), CreatedAt: now, UpdatedAt: now}
			var members []campaigns.Member
			for _, ep := range []string{"a", "b", "c", "d"} {
				members = append(members, campaigns.Member{CampaignID: c.ID, Endpoint: ep, Rank: len(members), State: campaigns.MemberPending,
					PendingSince: now, UpdatedAt: now})
			}
			ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateRunning, Actor: "test", Action: "create"}
			if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
				t.Fatal(err)
			}
			members[1].State, members[1].Reason, members[1].EndedAt = campaigns.MemberFailed, "boom", now
			members[2].State, members[2].JobID, members[2].StartedAt = campaigns.MemberInProgress, "job-c", now
			if err := s.SaveMembers(ctx, members[1:3]); err != nil {
				t.Fatal(err)
			}
			for st, want := range map[campaigns.MemberState]string{campaigns.MemberPending: "a,d", campaigns.MemberFailed: "b",
				campaigns.MemberInProgress: "c", campaigns.MemberSucceeded: ""} {
				for _, f := range []campaigns.MemberFilter{{State: st}, {State: st, Limit: 10}, {State: st, After: "a", Limit: 10}} {
					got, err := s.Members(ctx, c.ID, f)
					if err != nil {
						t.Fatal(err)
					}
					var eps []string
					for _, m := range got {
						if f.After == "" || m.Endpoint > f.After {
							eps = append(eps, m.Endpoint)
						}
					}
					w := want
					if f.After == "a" {
						w = strings.TrimPrefix(strings.TrimPrefix(want, "a"), ",")
					}
					if strings.Join(eps, ",") != w || len(got) != len(eps) {
						t.Errorf("Members(%+v) = %v; want %s", f, got, w)
					}
				}
			}
			sum, err := s.MemberSummary(ctx, c.ID, 1)
			if err != nil || sum.Failed["boom"] != 1 || len(sum.Failed) != 1 || sum.Waves[0].Pending != 2 || sum.Waves[0].InProgress != 1 {
				t.Fatalf("MemberSummary = %+v, %v", sum, err)
			}
			// Entries of the index: only the two members that moved.
			count := "SELECT COUNT(*) FROM campaign_members INDEXED BY campaign_members_state WHERE campaign_id = ? AND state <> 'pending'"
			if s.dialect.name != sqliteDialect.name {
				return // PostgreSQL has no INDEXED BY; the definition above is its check
			}
			var n int
			if err := s.db.QueryRowContext(ctx, count, c.ID).Scan(&n); err != nil || n != 2 {
				t.Fatalf("state index entries = %d, %v; want 2", n, err)
			}
		})
	}
}

// TestMigration18KeepsMemberReads: migration 00018 makes the members' state index partial,
// down and up again, on both backends, with every read by state answering the same at 17 and 18.
func TestMigration18KeepsMemberReads(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Unix(1_800_000_000, 0)
			members := []campaigns.Member{
				{Endpoint: "a", Wave: 0, Rank: 0, State: campaigns.MemberFailed, Reason: "boom", Attempts: 1,
					StartedAt: now, PendingSince: now, EndedAt: now, UpdatedAt: now},
				{Endpoint: "b", Wave: 1, Rank: 0, State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now},
			}
			s, c := keptCampaign(t, b.dsn(t), members)
			check := func(when string) {
				t.Helper()
				for st, want := range map[campaigns.MemberState]string{campaigns.MemberFailed: "a", campaigns.MemberPending: "b"} {
					got, err := s.Members(ctx, c.ID, campaigns.MemberFilter{State: st, Limit: 10})
					if err != nil || len(got) != 1 || got[0].Endpoint != want {
						t.Fatalf("%s: Members(%s) = %v, %v; want %s", when, st, got, err, want)
					}
				}
				sum, err := s.MemberSummary(ctx, c.ID, 2)
				if err != nil || sum.Failed["boom"] != 1 || sum.Waves[0].Failed != 1 || sum.Waves[1].Pending != 1 {
					t.Fatalf("%s: MemberSummary = %+v, %v", when, sum, err)
				}
			}
			migrateDownAndUp(t, s, 17, check)
		})
	}
}
