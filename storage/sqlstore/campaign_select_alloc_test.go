package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/server/registration"
)

// TestSelectExactAllocations: selecting 4,000 devices for a campaign allocates what their
// endpoints need, not a registration each. A start over 10,000 devices at 250,000 registered
// ones pays for every byte it allocates in mark assists when it meets a collection of the
// fleet's heap; a *registration.Registration per selected device (~400 bytes, only its Endpoint
// set) was 4 MB of a start's 12 MB. Measured as the fewest bytes of three selections, so that
// a background allocation (the writer's, the database pool's) does not count against it.
func TestSelectExactAllocations(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const n = 4000
	now := time.Now()
	for i := range n {
		r := &registration.Registration{ID: fmt.Sprintf("r%d", i), Endpoint: fmt.Sprintf("dev-%05d", i), Version: "1.1",
			Lifetime: 86400, Binding: "U", Model: "m1", RegisteredAt: now, UpdatedAt: now, LastSeen: now}
		if err := s.SaveRegistration(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		labels []string
	}{
		{"endpoints", nil},
		{"with labels", []string{"ring"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := campaigns.ExactQuery{Filter: registration.Filter{EndpointPrefix: "dev-"}, Labels: tc.labels}
			// The endpoints (16 bytes each), their slice (grown by doubling) and the driver's
			// per-row work come to ~100-150 bytes a device; a registration each was over 500.
			checkBytesPer(t, "SelectExact", "selected device", n, 300, func() error {
				sel, err := s.SelectExact(ctx, q)
				if err == nil && len(sel.Devices) != n {
					t.Fatalf("selected %d devices, want %d", len(sel.Devices), n)
				}
				return err
			})
		})
	}
}

// TestCreateStmtsAllocations: the statements that store a 10,000-device campaign's members and
// claims carry their endpoints in JSON documents built once each, with no copy of the endpoint
// list sorted again and no document copied from a buffer to a string (json.Marshal of the
// claims copied theirs twice, the members' document once): about 110 bytes a member, where they
// took 240.
func TestCreateStmtsAllocations(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	const n = 10000
	// In wave order, as Create makes them: the endpoints in no order (7919 is prime to n).
	c, members := runningCampaign("cmp_1", n, now, func(i int) int { return i * 7919 % n })
	ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "test", Action: "create"}
	checkBytesPer(t, "createStmts", "member", n, 150, func() error {
		_, err := s.createStmts(c, ev, members)
		return err
	})
}

// TestMembersAllocations: reading every member of a 10,000-device campaign (the leader's view,
// read again whenever the campaign changed elsewhere: two or three times for a start and its
// abort) allocates the members' slice once at its size: about 940 bytes a member (most of it
// the driver's, per row), where a slice doubled from empty took about 1,880.
func TestMembersAllocations(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	const n = 10000
	c, members := runningCampaign("cmp_0123456789abcdef", n, now, func(i int) int { return i })
	if err := s.CreateCampaign(ctx, c, campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "test", Action: "create"}, members); err != nil {
		t.Fatal(err)
	}
	checkBytesPer(t, "Members", "member", n, 1300, func() error {
		got, err := s.Members(ctx, c.ID, campaigns.MemberFilter{})
		if err == nil && (len(got) != n || got[0].CampaignID != c.ID || got[n-1].Endpoint != members[n-1].Endpoint) {
			t.Fatalf("read %d members, want %d", len(got), n)
		}
		return err
	})
}

// runningCampaign is a running campaign id of n pending members in waves of 1,000, member i
// with the endpoint numbered imei(i).
func runningCampaign(id string, n int, now time.Time, imei func(i int) int) (*campaigns.Campaign, []campaigns.Member) {
	c := &campaigns.Campaign{ID: id, Name: "big", ImageID: "img", State: campaigns.StateRunning, Version: 2, CreatedAt: now, UpdatedAt: now}
	members := make([]campaigns.Member, n)
	for i := range members {
		members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: fmt.Sprintf("urn:imei:%015d", imei(i)), Wave: i / 1000, Rank: i % 1000,
			State: campaigns.MemberPending, PendingSince: now, UpdatedAt: now}
	}
	return c, members
}

// checkBytesPer fails t if f allocates more than limit bytes per each of n items, counting the
// fewest bytes of three calls so that a background allocation (the writer's, the database
// pool's) does not count against it.
func checkBytesPer(t *testing.T, what, item string, n int, limit uint64, f func() error) {
	t.Helper()
	best := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := f()
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	if per := best / uint64(n); per > limit {
		t.Errorf("%s allocated %d bytes a %s (%d for %d), want at most %d", what, per, item, best, n, limit)
	} else {
		t.Logf("%s allocated %d bytes a %s", what, per, item)
	}
}
