package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/audit"
)

// RunAudit is the contract of audit.Store.
func RunAudit(t *testing.T, open func(t *testing.T) audit.Store) {
	parallel(t, "RoundTrip", open, testAuditRoundTrip)
	parallel(t, "Filter", open, testAuditFilter)
}

func testAuditRoundTrip(t *testing.T, s audit.Store) {
	ctx := context.Background()
	if l, err := s.ListAudit(ctx, audit.Filter{}); err != nil || len(l) != 0 {
		t.Fatalf("empty log lists %v, %v", l, err)
	}
	want := audit.Entry{At: at(0), Actor: "token:t1", ActorName: "ci bot", Role: "ci", Action: "POST /api/v1/images",
		Target: "/api/v1/images", RemoteAddr: "192.0.2.1", Status: 201, Outcome: audit.OutcomeSuccess,
		Detail: map[string]string{"request_id": "r1", "image": "img-1"}}
	if err := s.AppendAudit(ctx, &want); err != nil {
		t.Fatal(err)
	}
	bare := audit.Entry{At: at(time.Second), Actor: audit.ActorSystem, Action: "update.state"}
	if err := s.AppendAudit(ctx, &bare); err != nil {
		t.Fatal(err)
	}
	l, err := s.ListAudit(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 {
		t.Fatalf("listed %d entries, want 2", len(l))
	}
	got := l[1]
	if got.Seq <= 0 || l[0].Seq <= got.Seq {
		t.Fatalf("seqs %d, %d: want positive and the newest first", l[0].Seq, got.Seq)
	}
	if !utc(got.At).Equal(utc(want.At)) || got.Actor != want.Actor || got.ActorName != want.ActorName || got.Role != want.Role ||
		got.Action != want.Action || got.Target != want.Target || got.RemoteAddr != want.RemoteAddr ||
		got.Status != want.Status || got.Outcome != want.Outcome || fmt.Sprint(got.Detail) != fmt.Sprint(want.Detail) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if l[0].Detail != nil || l[0].Action != "update.state" {
		t.Fatalf("bare entry came back as %+v", l[0])
	}
}

func testAuditFilter(t *testing.T, s audit.Store) {
	ctx := context.Background()
	for i := range 10 {
		e := audit.Entry{At: at(time.Duration(i) * time.Minute), Actor: fmt.Sprintf("token:t%d", i%2),
			Action: []string{"a", "b", "c"}[i%3], Target: fmt.Sprint(i)}
		if err := s.AppendAudit(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}
	targets := func(f audit.Filter) string {
		t.Helper()
		l, err := s.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range l {
			out = append(out, e.Target)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		name string
		f    audit.Filter
		want string
	}{
		{"all, newest first", audit.Filter{}, "[9 8 7 6 5 4 3 2 1 0]"},
		{"actor", audit.Filter{Actor: "token:t1"}, "[9 7 5 3 1]"},
		{"action", audit.Filter{Action: "b"}, "[7 4 1]"},
		{"actor and action", audit.Filter{Actor: "token:t0", Action: "a"}, "[6 0]"},
		{"since inclusive", audit.Filter{Since: at(7 * time.Minute)}, "[9 8 7]"},
		{"until exclusive", audit.Filter{Until: at(2 * time.Minute)}, "[1 0]"},
		{"window", audit.Filter{Since: at(3 * time.Minute), Until: at(5 * time.Minute)}, "[4 3]"},
		{"limit", audit.Filter{Limit: 3}, "[9 8 7]"},
		{"nothing", audit.Filter{Actor: "nobody"}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := targets(tc.f); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	// Paging: the cursor is the last Seq seen.
	page, err := s.ListAudit(ctx, audit.Filter{Limit: 4})
	if err != nil || len(page) != 4 {
		t.Fatalf("first page %v, %v", page, err)
	}
	if got := targets(audit.Filter{Limit: 4, Before: page[3].Seq}); got != "[5 4 3 2]" {
		t.Fatalf("second page %s, want [5 4 3 2]", got)
	}
}
