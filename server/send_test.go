package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/observe"
)

// The Send operation (issue 12, item 3): a registered device's POST /dp is answered 2.04, its
// values are stored as the latest values and published as notifications, and Object 3 values
// reach the registration; a peer that is not registered gets 4.04; a payload lwota cannot take
// gets 4.15 or 4.00 and changes nothing.
func TestSend(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	evs := h.srv.SubscribeN(t.Context(), 64)
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "sender", FirmwareVersion: "1.2.3", RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	// The device reports its firmware version by Send (a value lwota never read).
	if err := dev.Send(ctx, lwm2m.NewPath(3, 0, 3), lwm2m.NewPath(5, 0, 3), lwm2m.NewPath(5, 0, 5)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	latest, err := h.srv.Latest(ctx, "sender")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range latest {
		for _, r := range l.Records {
			got[l.Path.String()+" "+r.Path.String()] = r.Value.String()
		}
	}
	want := map[string]string{"/3/0/3 /3/0/3": "string:1.2.3", "/5/0/3 /5/0/3": "integer:0", "/5/0/5 /5/0/5": "integer:0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("latest values after Send: %v, want %v", got, want)
	}
	if reg, _ := h.srv.Registry().Get("sender"); reg.FirmwareVersion != "1.2.3" {
		t.Errorf("firmware version on the registration: %q, want 1.2.3 from the Send", reg.FirmwareVersion)
	}
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for len(seen) < 3 {
		select {
		case e := <-evs:
			if l, ok := e.Data.(*observe.Latest); ok && e.Type == events.TypeNotification && e.Endpoint == "sender" {
				seen[l.Path.String()] = true
			}
		case <-deadline:
			t.Fatalf("notification events for %v, want /3/0/3, /5/0/3 and /5/0/5", seen)
		}
	}

	stranger := plainClient(t, h.srv.Addr())
	raw := plainClient(t, h.srv.Addr()) // registers, then sends what the simulator would not
	if c, diag := post(t, raw, "/rd", message.AppLinkFormat, []byte("</3/0>,</5/0>"), "ep=raw", "lt=60", "lwm2m=1.1"); c != codes.Created {
		t.Fatalf("register raw: %s %q", c, diag)
	}
	senml := func(f lwm2m.ContentFormat, recs ...lwm2m.Record) []byte {
		b, err := codec.Encode(f, lwm2m.RootPath, recs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	state2 := lwm2m.Record{Path: lwm2m.NewPath(5, 0, 3), Value: lwm2m.Integer(2)}
	tests := []struct {
		name   string
		from   *client.Conn
		format message.MediaType
		body   []byte
		want   codes.Code
		reason string // of lwota_send_refused_total; "" for an accepted Send
	}{
		{"not registered", stranger, message.MediaType(lwm2m.FormatSenMLJSON), senml(lwm2m.FormatSenMLJSON, state2), codes.NotFound, "not_registered"},
		{"plain text", raw, message.TextPlain, []byte("2"), codes.UnsupportedMediaType, "format"},
		{"TLV", raw, message.MediaType(lwm2m.FormatTLV), []byte{0xc1, 0x03, 0x02}, codes.UnsupportedMediaType, "format"},
		{"broken CBOR", raw, message.MediaType(lwm2m.FormatSenMLCBOR), []byte{0x81, 0xa2, 0x00}, codes.BadRequest, "bad_payload"},
		{"empty", raw, message.MediaType(lwm2m.FormatSenMLCBOR), nil, codes.BadRequest, "bad_payload"},
		{"name without value", raw, message.MediaType(lwm2m.FormatSenMLJSON), []byte(`[{"n":"/5/0/3"}]`), codes.BadRequest, "bad_payload"},
		{"SenML JSON", raw, message.MediaType(lwm2m.FormatSenMLJSON), senml(lwm2m.FormatSenMLJSON, state2), codes.Changed, ""},
		{"LwM2M CBOR", raw, message.MediaType(lwm2m.FormatLwM2MCBOR), senml(lwm2m.FormatLwM2MCBOR, state2), codes.Changed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.counter(t, "lwota_send_refused_total", map[string]string{"reason": tc.reason})
			if c, diag := post(t, tc.from, "/dp", tc.format, tc.body); c != tc.want {
				t.Fatalf("answered %s %q, want %s", c, diag, tc.want)
			}
			if tc.reason == "" {
				return
			}
			if got := h.counter(t, "lwota_send_refused_total", map[string]string{"reason": tc.reason}); got != before+1 {
				t.Errorf("lwota_send_refused_total{reason=%q} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	if l, err := h.srv.Latest(ctx, "raw"); err != nil || len(l) != 1 || l[0].Records[0].Value.Int != 2 {
		t.Errorf("latest values of raw: %+v, %v; want /5/0/3 = 2 from the accepted Sends only", l, err)
	}
	if n := h.counter(t, "lwota_send_total", nil); n != 3 {
		t.Errorf("lwota_send_total = %v, want 3", n)
	}
}

// images serves package bytes over HTTP and tells the driver where (fwupdate.Packages).
type images struct {
	srv *httptest.Server
	pkg []byte
	sum string
}

func newImages(t *testing.T, pkg []byte) *images {
	t.Helper()
	sum := sha256.Sum256(pkg)
	im := &images{pkg: pkg, sum: hex.EncodeToString(sum[:])}
	im.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(pkg))
	}))
	t.Cleanup(im.srv.Close)
	return im
}

func (im *images) Package(ctx context.Context, imageID string) (fwupdate.Package, error) {
	return fwupdate.Package{ID: imageID, Version: "2.0.0", Size: int64(len(im.pkg)), SHA256: im.sum}, nil
}

func (im *images) Body(ctx context.Context, imageID string) (io.ReaderAt, error) {
	return bytes.NewReader(im.pkg), nil
}

func (im *images) URI(ctx context.Context, j *fwupdate.Job, delivery string, until time.Time) (string, error) {
	return im.srv.URL + "/fw/" + j.ID, nil
}

// An update driven to success by a device that reports State and Update Result only by Send
// (it refuses Observe on Object 5): each Send wakes the job as a notification would. The
// driver's own polling is set to an hour, so without Send the job would not move from
// delivering within the test.
func TestUpdateDrivenBySend(t *testing.T) {
	h := startHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fwcfg := fwupdate.DefaultConfig()
	fwcfg.PollInterval = time.Hour
	fwcfg.Offered = []string{fwupdate.DeliveryHTTP}
	im := newImages(t, []byte("LWOTA-FW 2.0.0\n"+string(bytes.Repeat([]byte("x"), 4000))))
	// The store refuses a job for an image it does not hold.
	if err := h.store.SaveImage(ctx, &firmware.Image{ID: "img", Name: "fw", Version: "2.0.0", Size: int64(len(im.pkg)),
		SHA256: im.sum, BlobKey: "images/sha256/" + im.sum, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	drv := fwupdate.New(fwcfg, h.srv, h.store, im, nil, nil, nil, nil)
	done := make(chan error, 1)
	go func() { done <- drv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cfg := lwm2mtest.DeviceConfig{Endpoint: "by-send", Delivery: lwm2mtest.DeliveryPull, Protocols: []int{lwm2mtest.ProtoHTTP},
		RequestTimeout: 30 * time.Second, UpdateDelay: 100 * time.Millisecond}
	if err := lwm2mtest.ApplyProfiles(&cfg, lwm2mtest.ProfileReportsBySend); err != nil {
		t.Fatal(err)
	}
	dev := lwm2mtest.NewDevice(cfg, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	var job *fwupdate.Job
	waitFor(t, "the driver to run", 30*time.Second, func() bool {
		var err error
		job, err = drv.Start(ctx, "by-send", fwupdate.StartRequest{ImageID: "img", Method: fwupdate.MethodPull})
		return err == nil
	})
	waitFor(t, "the job to succeed", 2*time.Minute, func() bool {
		j, err := drv.Job(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == fwupdate.StateFailed {
			t.Fatalf("job failed: %s", j.Reason)
		}
		return j.State == fwupdate.StateSucceeded
	})
	if s := dev.Stats(); s.Sends == 0 || s.Requests[lwm2mtest.OpObserve] > 0 && s.Notifications > 0 {
		t.Fatalf("device stats %+v: want Sends and no notifications", s)
	}
}
