package storetest

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// RunQueue is the contract of dm.QueueStore.
func RunQueue(t *testing.T, open func(t *testing.T) dm.QueueStore) {
	parallel(t, "RoundTrip", open, testPendingRoundTrip)
	parallel(t, "NotFound", open, testPendingNotFound)
	parallel(t, "StateUpdates", open, testPendingStates)
	parallel(t, "Order", open, testPendingOrder)
	parallel(t, "Cancelled", open, testPendingCancelled)
}

// records holds one value of every type, with and without a timestamp.
func records() []lwm2m.Record {
	return []lwm2m.Record{
		{Path: lwm2m.NewPath(3, 0, 0), Value: lwm2m.String("lwota \u2713")},
		{Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Integer(-42), Time: at(time.Second)},
		{Path: lwm2m.NewPath(3, 0, 21), Value: lwm2m.Unsigned(math.MaxUint64)},
		{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(-12.375e-3)},
		{Path: lwm2m.NewPath(3, 0, 16), Value: lwm2m.Boolean(true)},
		{Path: lwm2m.NewPath(5, 0, 0), Value: lwm2m.Opaque([]byte{0, 1, 0xfe, 0xff})},
		{Path: lwm2m.NewPath(3, 0, 13), Value: lwm2m.Time(time.Unix(1795000000, 0))},
		{Path: lwm2m.NewPath(3, 0, 11, 2), Value: lwm2m.Objlnk(3, 0)},
		{Path: lwm2m.NewPath(3, 0, 7), Value: lwm2m.Corelnk("</3/0>")},
		{Path: lwm2m.NewPath(3, 0, 4), Value: lwm2m.Value{}},
	}
}

// normRecords normalizes the record timestamps with utc.
func normRecords(rs []lwm2m.Record) []lwm2m.Record {
	if rs == nil {
		return nil
	}
	out := make([]lwm2m.Record, len(rs))
	for i, r := range rs {
		r.Time = utc(r.Time)
		out[i] = r
	}
	return out
}

func normPending(p *dm.Pending) *dm.Pending {
	if p == nil {
		return nil
	}
	c := *p
	c.Request.Records = normRecords(c.Request.Records)
	if c.Result != nil {
		res := *c.Result
		res.Records = normRecords(res.Records)
		c.Result = &res
	}
	c.CreatedAt = utc(c.CreatedAt)
	c.UpdatedAt = utc(c.UpdatedAt)
	return &c
}

func checkPending(t *testing.T, what string, got, want *dm.Pending) {
	t.Helper()
	if g, w := normPending(got), normPending(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func mustSavePending(t *testing.T, s dm.QueueStore, ps ...*dm.Pending) {
	t.Helper()
	for _, p := range ps {
		if err := s.SavePending(context.Background(), p); err != nil {
			t.Fatalf("SavePending(%s): %v", p.ID, err)
		}
	}
}

func mustGetPending(t *testing.T, s dm.QueueStore, id string) *dm.Pending {
	t.Helper()
	p, err := s.GetPending(context.Background(), id)
	if err != nil {
		t.Fatalf("GetPending(%s): %v", id, err)
	}
	return p
}

func queued(id, ep string, created time.Duration) *dm.Pending {
	return &dm.Pending{
		ID: id, Endpoint: ep, State: dm.PendingQueued,
		Request:   dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0)},
		CreatedAt: at(created), UpdatedAt: at(created),
	}
}

func ids(ps []*dm.Pending) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func testPendingRoundTrip(t *testing.T, s dm.QueueStore) {
	pmin, pmax, gt := uint32(10), uint32(300), 25.5
	write := &dm.Pending{
		ID:       "req-1",
		Endpoint: "urn:imei:350000000000001",
		Request: dm.Request{
			Op:      dm.OpWritePartial,
			Path:    lwm2m.NewPath(3, 0),
			Records: records(),
			Args:    "0='x'",
			Attributes: &dm.Attributes{
				Pmin: &pmin, Pmax: &pmax, Gt: &gt, Clear: []string{"st", "lt"},
			},
		},
		State:     dm.PendingQueued,
		Attempts:  2,
		CreatedAt: at(-time.Minute),
		UpdatedAt: at(-time.Second),
	}
	done := &dm.Pending{
		ID:       "req-2",
		Endpoint: "urn:imei:350000000000001",
		Request:  dm.Request{Op: dm.OpDiscover, Path: lwm2m.NewPath(5)},
		State:    dm.PendingDone,
		Result: &dm.Result{
			Code:     "2.05",
			Format:   lwm2m.FormatSenMLCBOR,
			Records:  records(),
			Links:    "</5>;ver=1.1,</5/0/1>",
			Payload:  []byte{0x81, 0xa2},
			Location: "/5/1",
		},
		Error:     "",
		CreatedAt: at(-time.Hour),
		UpdatedAt: at(0),
	}
	failed := &dm.Pending{
		ID: "req-3", Endpoint: "other", State: dm.PendingFailed, Error: "device answered 4.04",
		Request: dm.Request{Op: dm.OpExecute, Path: lwm2m.NewPath(3, 0, 4)},
	}
	mustSavePending(t, s, write, done, failed)
	for _, want := range []*dm.Pending{write, done, failed} {
		checkPending(t, "GetPending("+want.ID+")", mustGetPending(t, s, want.ID), want)
	}
	got, err := s.PendingFor(context.Background(), write.Endpoint)
	if err != nil {
		t.Fatalf("PendingFor: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("PendingFor(%s) = %q, want only req-1", write.Endpoint, ids(got))
	}
	checkPending(t, "PendingFor", got[0], write)
}

func testPendingNotFound(t *testing.T, s dm.QueueStore) {
	_, err := s.GetPending(context.Background(), "nope")
	if !errors.Is(err, dm.ErrRequestNotFound) {
		t.Errorf("GetPending(nope): err = %v, want dm.ErrRequestNotFound", err)
	}
	got, err := s.PendingFor(context.Background(), "nobody")
	if err != nil || len(got) != 0 {
		t.Errorf("PendingFor(nobody) = %q, %v; want nothing", ids(got), err)
	}
}

// testPendingStates walks one request through queued, sent and done.
func testPendingStates(t *testing.T, s dm.QueueStore) {
	p := queued("r1", "ep", 0)
	mustSavePending(t, s, p, queued("r2", "ep", time.Second))

	sent := *p
	sent.State = dm.PendingSent
	sent.UpdatedAt = at(time.Minute)
	mustSavePending(t, s, &sent)
	checkPending(t, "after sent", mustGetPending(t, s, "r1"), &sent)
	got, err := s.PendingFor(context.Background(), "ep")
	if err != nil {
		t.Fatalf("PendingFor: %v", err)
	}
	if want := []string{"r2"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("PendingFor after r1 was sent = %q, want %q", ids(got), want)
	}

	final := sent
	final.State = dm.PendingDone
	final.Result = &dm.Result{Code: "2.04"}
	final.UpdatedAt = at(2 * time.Minute)
	mustSavePending(t, s, &final)
	checkPending(t, "after done", mustGetPending(t, s, "r1"), &final)

	// Back to queued (a send that timed out): it is pending again, in creation order.
	again := final
	again.State = dm.PendingQueued
	again.Result = nil
	again.Attempts = 1
	mustSavePending(t, s, &again)
	checkPending(t, "requeued", mustGetPending(t, s, "r1"), &again)
	got, err = s.PendingFor(context.Background(), "ep")
	if err != nil {
		t.Fatalf("PendingFor: %v", err)
	}
	if want := []string{"r1", "r2"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("PendingFor after requeue = %q, want %q", ids(got), want)
	}
}

// testPendingOrder checks that PendingFor is oldest first whatever the insertion order, and only
// holds the endpoint's queued requests.
func testPendingOrder(t *testing.T, s dm.QueueStore) {
	sent := queued("a-sent", "a", -time.Hour)
	sent.State = dm.PendingSent
	failed := queued("a-failed", "a", -2*time.Hour)
	failed.State = dm.PendingFailed
	mustSavePending(t, s,
		queued("a-3", "a", 3*time.Second),
		queued("a-1", "a", time.Second),
		queued("b-1", "b", 0),
		sent,
		queued("a-2", "a", 2*time.Second),
		queued("a-0", "a", time.Microsecond),
		failed,
		queued("ab-1", "ab", 0),
	)
	tests := []struct {
		endpoint string
		want     []string
	}{
		{"a", []string{"a-0", "a-1", "a-2", "a-3"}},
		{"b", []string{"b-1"}},
		{"ab", []string{"ab-1"}},
	}
	for _, tc := range tests {
		got, err := s.PendingFor(context.Background(), tc.endpoint)
		if err != nil {
			t.Fatalf("PendingFor(%s): %v", tc.endpoint, err)
		}
		if !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("PendingFor(%s) = %q, want %q", tc.endpoint, ids(got), tc.want)
		}
	}
}

func testPendingCancelled(t *testing.T, s dm.QueueStore) {
	ctx := cancelled()
	wantCanceled(t, "SavePending", s.SavePending(ctx, queued("late", "ep", 0)))
	_, err := s.GetPending(ctx, "late")
	wantCanceled(t, "GetPending", err)
	_, err = s.PendingFor(ctx, "ep")
	wantCanceled(t, "PendingFor", err)
	if _, err := s.GetPending(context.Background(), "late"); !errors.Is(err, dm.ErrRequestNotFound) {
		t.Errorf("GetPending after a cancelled save: err = %v, want dm.ErrRequestNotFound", err)
	}
}
