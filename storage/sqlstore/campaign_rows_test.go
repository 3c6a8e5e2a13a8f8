package sqlstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/storage/pgtest"
)

// TestCampaignRowsSQLite: on SQLite, a campaign's members and claims live each in their primary
// key's B-tree (WITHOUT ROWID, migration 00017), and claims have no index beside their key: a
// campaign start writes three B-trees per device (member, its state index entry, claim), not six
// (two since 00018, whose state index holds no pending member: TestCampaignStartWritesNoStateIndex).
func TestCampaignRowsSQLite(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, tc := range []struct {
		table   string
		indexes []string // besides the primary key
	}{
		{"campaign_members", []string{"campaign_members_state"}},
		{"campaign_claims", nil},
	} {
		var ddl string
		if err := s.db.QueryRow("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", tc.table).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(strings.TrimSpace(ddl), "WITHOUT ROWID") {
			t.Errorf("%s is a rowid table (its key a second B-tree): %s", tc.table, ddl)
		}
		rows, err := s.db.Query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name", tc.table)
		if err != nil {
			t.Fatal(err)
		}
		got, err := collect(rows, func(r scanner) (string, error) {
			var n string
			return n, r.Scan(&n)
		})
		if err != nil || !slices.Equal(got, tc.indexes) {
			t.Errorf("indexes of %s = %v, %v; want %v", tc.table, got, err, tc.indexes)
		}
	}
}

// TestCreateCampaignWavesOneInsert: the members of a campaign of 10 waves of 1,000 devices, each
// wave in the plan's hashed order (as Create makes them), go in one INSERT in endpoint order
// (the primary key's; sorted in Go since no sort in SQL, TestSetInsertsNeedNoSort), not one
// INSERT per wave each writing all over the key's B-tree; every member comes back with its wave
// and rank.
func TestCreateCampaignWavesOneInsert(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	const waves, perWave = 10, 1000
	c := &campaigns.Campaign{ID: "cmp_waves", Name: "big", ImageID: "img", State: campaigns.StateDraft, Version: 1,
		Plan: plan.Plan{Waves: make([]plan.Wave, waves)}, Gates: make([]plan.GateState, waves), CreatedAt: now, UpdatedAt: now}
	eps := make([]string, waves*perWave)
	for i := range eps {
		eps[i] = fmt.Sprintf("dev-%05d", i)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
	members := make([]campaigns.Member, len(eps))
	for i, ep := range eps {
		members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: ep, Wave: i / perWave, Rank: i % perWave,
			State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
	}
	ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "test", Action: "create"}
	stmts, err := s.createStmts(c, ev, members)
	if err != nil {
		t.Fatal(err)
	}
	var inserts []stmt
	for _, st := range stmts {
		if strings.HasPrefix(st.query, "INSERT INTO campaign_members") {
			inserts = append(inserts, st)
		}
	}
	if len(inserts) != 1 {
		t.Fatalf("%d member INSERTs for %d waves, want one", len(inserts), waves)
	}
	doc, _ := inserts[0].args[len(inserts[0].args)-1].(string)
	sorted := slices.Sorted(slices.Values(eps))
	if want := `{"` + sorted[0] + `":`; !strings.HasPrefix(doc, want) || strings.Index(doc, `"`+sorted[1]+`":`) > strings.Index(doc, `"`+sorted[2]+`":`) {
		t.Fatalf("member INSERT's document %.60q..., want it in endpoint order", doc)
	}
	ctx := context.Background()
	if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
		t.Fatal(err)
	}
	got, err := s.Members(ctx, c.ID, campaigns.MemberFilter{})
	if err != nil || len(got) != len(members) {
		t.Fatalf("Members = %d, %v; want %d", len(got), err, len(members))
	}
	for i, m := range got { // by wave and rank: the order given
		if want := members[i]; m.Endpoint != want.Endpoint || m.Wave != want.Wave || m.Rank != want.Rank || m.State != want.State ||
			!m.PendingSince.Equal(want.PendingSince) || !m.UpdatedAt.Equal(want.UpdatedAt) {
			t.Fatalf("member %d = %+v, want %+v", i, m, want)
		}
	}
}

// TestMigration17KeepsCampaigns: migration 00017 rebuilds campaign_members and campaign_claims
// (SQLite) with their rows, down and up again: the members and claims stored before it are all
// there after it, on both backends.
func TestMigration17KeepsCampaigns(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "lwota.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Unix(1_800_000_000, 0)
			members := []campaigns.Member{
				{Endpoint: "a", Wave: 0, Rank: 0, CapLabel: "x", State: campaigns.MemberInProgress, JobID: "job-a",
					JobState: "downloading", Attempts: 1, StartedAt: now, PendingSince: now, UpdatedAt: now},
				{Endpoint: "b", Wave: 1, Rank: 0, State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now},
			}
			s, c := keptCampaign(t, tc.dsn(t), members)
			check := func(when string) {
				t.Helper()
				got, err := s.Members(ctx, c.ID, campaigns.MemberFilter{})
				if err != nil || len(got) != 2 {
					t.Fatalf("%s: Members = %v, %v", when, got, err)
				}
				for i, m := range got {
					if want := members[i]; m.Endpoint != want.Endpoint || m.Wave != want.Wave || m.CapLabel != want.CapLabel || m.State != want.State ||
						m.JobID != want.JobID || m.JobState != want.JobState || m.Attempts != want.Attempts || !m.StartedAt.Equal(want.StartedAt) {
						t.Fatalf("%s: member %d = %+v, want %+v", when, i, m, want)
					}
				}
				if claimed, err := s.Claimed(ctx, []string{"a", "b", "c"}); err != nil || len(claimed) != 2 || claimed["a"] != c.ID || claimed["b"] != c.ID {
					t.Fatalf("%s: Claimed = %v, %v; want a and b by %s", when, claimed, err, c.ID)
				}
			}
			migrateDownAndUp(t, s, 16, check)
		})
	}
}
