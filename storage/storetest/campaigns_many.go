package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// testCampaignManyMembers: a campaign of more members than one set-based statement carries
// (10,000) stores every member with every field as given and claims every device, and a second
// campaign over one of them is refused whole.
func testCampaignManyMembers(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	const n = 12345
	eps := make([]string, n)
	for i := range eps {
		eps[i] = fmt.Sprintf("dev-%05d", i)
	}
	// Endpoints and labels a JSON or SQL text encoding could mangle.
	eps[7], eps[8], eps[9] = `quote"d\back`, "ünï-cødé 📡", "it's"
	c, ev, members := newCampaign("cmp_many", eps...)
	for i := range members {
		m := &members[i]
		m.Wave, m.Rank = i%2, i/2
		if i%1000 == 3 { // a member stored with progress: every column must come back
			m.State, m.JobID, m.JobState, m.Reason, m.Attempts = campaigns.MemberFailed, "job-x", "failed", `no "space" left`, 3
			m.StartedAt, m.EndedAt = at(time.Second+7), at(time.Minute+9)
		}
	}
	members[9].CapLabel = ""
	if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
		t.Fatalf("CreateCampaign(%d members): %v", n, err)
	}
	got, err := s.Members(ctx, "cmp_many", campaigns.MemberFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("Members = %d, want %d", len(got), n)
	}
	byEP := make(map[string]campaigns.Member, n)
	for _, m := range got {
		byEP[m.Endpoint] = m
	}
	for _, want := range members {
		g, ok := byEP[want.Endpoint]
		if !ok {
			t.Fatalf("member %q missing", want.Endpoint)
		}
		if !sameMember(g, want) {
			t.Fatalf("member %q = %+v, want %+v", want.Endpoint, g, want)
		}
	}
	claimed, err := s.Claimed(ctx, eps)
	if err != nil || len(claimed) != n {
		t.Fatalf("Claimed = %d devices, %v; want %d", len(claimed), err, n)
	}
	for _, ep := range eps {
		if claimed[ep] != "cmp_many" {
			t.Fatalf("Claimed[%q] = %q, want cmp_many", ep, claimed[ep])
		}
	}
	// A second campaign over one claimed device (the last, in the second statement's range)
	// and many free ones is refused, and stores none of its members or claims.
	other := []string{eps[n-1]}
	for i := range 11000 {
		other = append(other, fmt.Sprintf("free-%05d", i))
	}
	c2, ev2, members2 := newCampaign("cmp_other", other...)
	err = s.CreateCampaign(ctx, c2, ev2, members2)
	if ce, ok := err.(*campaigns.ConflictError); !ok || !maps.Equal(ce.Claimed, map[string]string{eps[n-1]: "cmp_many"}) {
		t.Fatalf("CreateCampaign over a claimed device = %v, want a ConflictError naming %s", err, eps[n-1])
	}
	if ms, _ := s.Members(ctx, "cmp_other", campaigns.MemberFilter{}); len(ms) != 0 {
		t.Fatalf("refused campaign stored %d members", len(ms))
	}
	if cl, _ := s.Claimed(ctx, other[1:]); len(cl) != 0 {
		t.Fatalf("refused campaign claimed %d devices", len(cl))
	}
}

// sameMember compares members with times at the microsecond the contract keeps.
func sameMember(a, b campaigns.Member) bool {
	ts := func(m campaigns.Member) []time.Time {
		return []time.Time{utc(m.StartedAt), utc(m.PendingSince), utc(m.EndedAt), utc(m.UpdatedAt)}
	}
	ta, tb := ts(a), ts(b)
	a.StartedAt, a.PendingSince, a.EndedAt, a.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	b.StartedAt, b.PendingSince, b.EndedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b && slices.EqualFunc(ta, tb, func(x, y time.Time) bool { return x.Truncate(time.Microsecond).Equal(y.Truncate(time.Microsecond)) })
}

// testCampaignMemberSummary: the store's counts per wave and state, and of failed members per
// reason, are what campaigns.Summarise makes of the members themselves.
func testCampaignMemberSummary(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	eps := make([]string, 40)
	for i := range eps {
		eps[i] = fmt.Sprintf("e%02d", i)
	}
	mustCreateCampaign(t, s, "cmp_sum", eps...)
	ms, err := s.Members(ctx, "cmp_sum", campaigns.MemberFilter{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := []string{"integrity", "integrity", "", "timeout"}
	for i := range ms {
		m := &ms[i]
		m.State = campaigns.MemberStates[i%len(campaigns.MemberStates)]
		if m.State == campaigns.MemberFailed {
			m.Reason = reasons[(i/len(campaigns.MemberStates))%len(reasons)]
		}
	}
	if err := s.SaveMembers(ctx, ms); err != nil {
		t.Fatal(err)
	}
	ms, err = s.Members(ctx, "cmp_sum", campaigns.MemberFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.MemberSummary(ctx, "cmp_sum", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := campaigns.Summarise(ms, 2)
	if !slices.Equal(got.Waves, want.Waves) || !maps.Equal(got.Failed, want.Failed) {
		t.Fatalf("MemberSummary = %+v, want %+v", got, want)
	}
	if total := addAll(got.Waves); total != 40 || len(got.Failed) != 3 {
		t.Fatalf("MemberSummary counts %d members (want 40) and %d reasons (want 3)", total, len(got.Failed))
	}
	if none, err := s.MemberSummary(ctx, "cmp_none", 3); err != nil || len(none.Waves) != 3 || addAll(none.Waves) != 0 {
		t.Fatalf("MemberSummary of no campaign = %+v, %v", none, err)
	}
}

func addAll(cs []plan.Counts) int {
	n := 0
	for _, c := range cs {
		n += c.Total()
	}
	return n
}
