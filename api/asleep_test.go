package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
)

// fakeQueue is the queue of one sleeping device.
type fakeQueue struct{ waiting []*dm.Pending }

func (f *fakeQueue) PendingFor(context.Context, string) ([]*dm.Pending, error) { return f.waiting, nil }

func queuedOps(ops ...dm.Op) []*dm.Pending {
	var out []*dm.Pending
	for i, op := range ops {
		out = append(out, &dm.Pending{ID: "q" + strconv.Itoa(i), Request: dm.Request{Op: op, Path: lwm2m.MustParsePath("/3/0")}, State: dm.PendingQueued})
	}
	return out
}

func sleepingEnv(t *testing.T) (*testEnv, *fakeQueue) {
	t.Helper()
	env := newTestEnv(t, Config{MaxQueuedReads: 3})
	env.op.asleep = true
	env.op.result = nil
	env.op.pending = &dm.Pending{ID: "p1", Endpoint: "dev-a", State: dm.PendingQueued, Request: dm.Request{Op: dm.OpRead}}
	q := &fakeQueue{}
	env.api.WithQueue(q)
	return env, q
}

// TestReadOnlyReadsOfSleepingDevice: 40 Reads of a support token on a sleeping device queue
// nothing: each is 409 device_asleep with the time the device is due, or, when lwota has notified
// values under the path, 200 with those values marked source "latest".
func TestReadOnlyReadsOfSleepingDevice(t *testing.T) {
	env, _ := sleepingEnv(t)
	support := bearer(env.auth.secrets[apitoken.RoleSupport])
	for i := range 40 {
		r := env.do(t, "GET", "/api/v1/devices/dev-a/objects/3/0/0", "", "Authorization", support)
		msg := wantError(t, r, http.StatusConflict, codeDeviceAsleep)
		if i == 0 {
			// dev-a was last seen a minute before testNow with a 300 s lifetime: due in 240 s.
			due := testNow.Add(4 * time.Minute).Format(time.RFC3339)
			if !strings.Contains(msg, due) || !strings.Contains(string(r.body), `"expected_at":"`+due+`"`) {
				t.Fatalf("body %s: want the due time %s", r.body, due)
			}
			if ra := r.header.Get("Retry-After"); ra != "241" {
				t.Fatalf("Retry-After %q, want 241", ra)
			}
		}
	}
	if n := env.op.callCount(); n != 0 {
		t.Fatalf("Operator.Do called %d times for read-only reads of a sleeping device, want 0", n)
	}

	env.obs.latest = []*observe.Latest{{Endpoint: "dev-a", Path: lwm2m.MustParsePath("/3/0"), Time: testNow.Add(-time.Hour),
		Records: []lwm2m.Record{rec("/3/0/9", lwm2m.Integer(87)), rec("/3/0/0", lwm2m.String("ACME"))}}}
	r := env.do(t, "GET", "/api/v1/devices/dev-a/objects/3/0", "", "Authorization", support)
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want 200 from the latest values", r.status, r.body)
	}
	jsonEqual(t, r.body, `{"code":"2.05","source":"latest","as_of":"2026-03-01T11:00:00Z","records":[
		{"path":"/3/0/0","type":"string","value":"ACME"},{"path":"/3/0/9","type":"integer","value":87}]}`)
	if n := env.op.callCount(); n != 0 {
		t.Fatalf("Operator.Do called %d times, want 0", n)
	}
}

// TestQueuedReadsLeaveRoomForWrites: a writer's Read of a sleeping device is queued (202) while
// reads hold less than MaxQueuedReads of the queue; past that it is 429 queue_full, and a write
// still queues. Every queued request, the GET included, is in the audit log.
func TestQueuedReadsLeaveRoomForWrites(t *testing.T) {
	env, q := sleepingEnv(t)
	q.waiting = queuedOps(dm.OpRead, dm.OpWrite, dm.OpDiscover, dm.OpWrite, dm.OpWrite)
	r := env.do(t, "GET", "/api/v1/devices/dev-a/objects/3/0/0", "")
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d %s, want 202 queued", r.status, r.body)
	}
	entries, err := env.auth.log.List(context.Background(), auditFilter("GET "+Prefix+"/devices/:endpoint/objects/*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Detail["queued_request"] != "p1" || entries[0].Status != http.StatusAccepted {
		t.Fatalf("audit entries for the queued GET: %+v", entries)
	}

	q.waiting = queuedOps(dm.OpRead, dm.OpWrite, dm.OpDiscover, dm.OpRead)
	before := env.op.callCount()
	r = env.do(t, "GET", "/api/v1/devices/dev-a/objects/3/0/0", "")
	wantError(t, r, http.StatusTooManyRequests, codeQueueFull)
	if env.op.callCount() != before {
		t.Fatal("a read past its share of the queue reached the Operator")
	}
	r = env.do(t, "PUT", "/api/v1/devices/dev-a/objects/3/0/14", `{"value":"+02:00"}`, "Content-Type", "application/json")
	if r.status != http.StatusAccepted {
		t.Fatalf("write: status %d %s, want 202", r.status, r.body)
	}
	// Unchanged: a plain GET that is not queued is not audited.
	env.op.asleep, env.op.result, env.op.pending = false, &dm.Result{Code: "2.05"}, nil
	r = env.do(t, "GET", "/api/v1/devices/dev-a/objects/3/0/0", "")
	if r.status != http.StatusOK {
		t.Fatalf("awake read: status %d %s", r.status, r.body)
	}
	if entries, _ := env.auth.log.List(context.Background(), auditFilter("GET "+Prefix+"/devices/:endpoint/objects/*")); len(entries) != 1 {
		t.Fatalf("%d audit entries for GETs, want 1 (the queued one)", len(entries))
	}
}

func auditFilter(action string) audit.Filter { return audit.Filter{Action: action} }
