package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/events"
)

func TestEventStreamKinds(t *testing.T) {
	tests := []struct {
		query  string
		want   []string     // event types streamed, in order
		marker events.Event // passes the filter and ends the test's reading
	}{
		{"", []string{"registered", "notification", "update_job", "campaign", "expired"}, mark(events.TypeRegistered, "end")},
		{"?kind=update_job", []string{"update_job"}, mark(events.TypeUpdateJob, "end")},
		{"?kind=campaign,registration", []string{"registered", "campaign", "expired"}, mark(events.TypeRegistered, "end")},
		{"?kind=update_job&endpoint=dev-a", []string{"update_job"}, mark(events.TypeUpdateJob, "dev-a")},
		// campaign events belong to no device: a device's stream has none
		{"?kind=campaign,notification&endpoint=dev-b", nil, mark(events.TypeNotification, "dev-b")},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			env := newTestEnv(t, Config{KeepAlive: time.Hour})
			c := openStream(t, env, tt.query)
			for _, ev := range []events.Event{
				{Type: events.TypeRegistered, Endpoint: "dev-a", Time: testNow},
				{Type: events.TypeNotification, Endpoint: "dev-a", Time: testNow},
				{Type: events.TypeUpdateJob, Endpoint: "dev-a", Time: testNow, Data: events.JobTransition{
					JobID: "j1", ImageID: "i1", ImageVersion: "1.4.2", From: "delivering", To: "downloaded", Attempt: 1}},
				{Type: events.TypeCampaign, Time: testNow, Data: events.CampaignChange{
					CampaignID: "cmp_1", Action: "pause", From: "running", To: "paused", Actor: "ops", Reason: "checking"}},
				{Type: events.TypeExpired, Endpoint: "dev-a", Time: testNow},
			} {
				env.sub.publish(ev)
			}
			env.sub.publish(tt.marker)
			var got []string
			for {
				l := c.next()
				if !strings.HasPrefix(l, "event: ") {
					continue
				}
				data := c.next()
				if strings.Contains(data, `"marker"`) {
					break
				}
				typ := strings.TrimPrefix(l, "event: ")
				got = append(got, typ)
				switch typ {
				case "update_job":
					jsonEqual(t, []byte(strings.TrimPrefix(data, "data: ")), `{"type":"update_job","endpoint":"dev-a","time":"2026-03-01T12:00:00Z",
						"data":{"job_id":"j1","image_id":"i1","image_version":"1.4.2","from":"delivering","to":"downloaded","attempt":1}}`)
				case "campaign":
					jsonEqual(t, []byte(strings.TrimPrefix(data, "data: ")), `{"type":"campaign","endpoint":"","time":"2026-03-01T12:00:00Z",
						"data":{"campaign_id":"cmp_1","action":"pause","from":"running","to":"paused","actor":"ops","reason":"checking"}}`)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("streamed %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventStreamUnknownKind(t *testing.T) {
	env := newTestEnv(t, Config{KeepAlive: time.Hour})
	r := env.do(t, http.MethodGet, "/api/v1/events?kind=update_job,updates", "")
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"invalid_query"`) || !strings.Contains(string(r.body), `updates`) {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
}

// mark is the last event a test publishes, recognisable by its data.
func mark(typ, endpoint string) events.Event {
	return events.Event{Type: typ, Endpoint: endpoint, Time: testNow, Data: map[string]bool{"marker": true}}
}
