package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpcoder "github.com/plgd-dev/go-coap/v3/udp/coder"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/firmware"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

var firmwareStatus = []lwm2m.Path{lwm2m.NewPath(3, 0, 3), lwm2m.NewPath(5, 0, 3), lwm2m.NewPath(5, 0, 5)}

// Read-Composite of three paths over SenML CBOR and Write-Composite of two resources against the
// simulator (LwM2M 1.1 Transport §6.3.1, §6.3.3): one request each, answered as one.
func TestCompositeWithSimulator(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "comp", LwM2MVersion: "1.1", FirmwareVersion: "1.4.2",
		RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	cbor := lwm2m.FormatSenMLCBOR
	res, _, err := h.srv.Do(ctx, "comp", dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: firmwareStatus, Format: &cbor})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != lwm2m.FormatSenMLCBOR || len(res.Records) != 3 {
		t.Fatalf("answer %s with %d records %+v, want senml-cbor with 3", res.Format.Name(), len(res.Records), res.Records)
	}
	want := map[lwm2m.Path]lwm2m.Value{firmwareStatus[0]: lwm2m.String("1.4.2"), firmwareStatus[1]: lwm2m.Integer(0), firmwareStatus[2]: lwm2m.Integer(0)}
	for _, r := range res.Records {
		if w, ok := want[r.Path]; !ok || !r.Value.Equal(w) {
			t.Errorf("%s = %+v, want %+v", r.Path, r.Value, w)
		}
	}
	if st := dev.Stats(); st.Requests[lwm2mtest.OpReadComposite] != 1 || st.Requests[lwm2mtest.OpRead] != 0 || st.CompositePaths != 3 {
		t.Fatalf("device saw %v (composite paths %d), want one Read-Composite of 3 paths", st.Requests, st.CompositePaths)
	}

	write := dm.Request{Op: dm.OpWriteComposite, Path: lwm2m.RootPath, Records: []lwm2m.Record{
		{Path: lwm2m.NewPath(1, 0, 2), Value: lwm2m.Unsigned(7)},
		{Path: lwm2m.NewPath(1, 0, 3), Value: lwm2m.Unsigned(120)},
	}}
	if res, _, err := h.srv.Do(ctx, "comp", write); err != nil || res.Code != "2.04" {
		t.Fatalf("write-composite: %+v, %v", res, err)
	}
	for _, r := range write.Records {
		if v, ok := dev.Value(r.Path); !ok || v.Uint != r.Value.Uint && v.Int != int64(r.Value.Uint) {
			t.Errorf("device %s = %+v, want %d", r.Path, v, r.Value.Uint)
		}
	}
	// A refused record changes nothing: /3/0/3 is read-only, so /1/0/2 keeps its value.
	bad := dm.Request{Op: dm.OpWriteComposite, Path: lwm2m.RootPath, Records: []lwm2m.Record{
		{Path: lwm2m.NewPath(1, 0, 2), Value: lwm2m.Unsigned(9)},
		{Path: lwm2m.NewPath(3, 0, 3), Value: lwm2m.String("9.9")},
	}}
	var de *dm.DeviceError
	if _, _, err := h.srv.Do(ctx, "comp", bad); !errors.As(err, &de) || de.Code != "4.05" {
		t.Fatalf("write-composite of a read-only resource: %v, want the device's 4.05", err)
	}
	if v, _ := dev.Value(lwm2m.NewPath(1, 0, 2)); v.Uint == 9 || v.Int == 9 {
		t.Fatalf("refused write-composite changed /1/0/2 to %+v", v)
	}
}

// A 1.1 client without composite operations answers 4.05; lwota reports the device's answer.
func TestCompositeRefusedByClientWithout(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	cfg := lwm2mtest.DeviceConfig{Endpoint: "nocomp", LwM2MVersion: "1.1", RequestTimeout: 30 * time.Second}
	if err := lwm2mtest.ApplyProfiles(&cfg, lwm2mtest.ProfileNoComposite); err != nil {
		t.Fatal(err)
	}
	dev := lwm2mtest.NewDevice(cfg, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.srv.Do(ctx, "nocomp", dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: firmwareStatus})
	var de *dm.DeviceError
	if !errors.As(err, &de) || de.Code != "4.05" {
		t.Fatalf("read-composite: %v, want the device's 4.05", err)
	}
}

// rawDevice is a device made of one UDP socket: the test writes and reads datagrams itself.
type rawDevice struct {
	t    *testing.T
	conn *net.UDPConn
	srv  *net.UDPAddr
	mid  uint16
}

func newRawDevice(t *testing.T, srv net.Addr) *rawDevice {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawDevice{t: t, conn: c, srv: srv.(*net.UDPAddr), mid: 100}
}

func (d *rawDevice) send(m message.Message) {
	d.t.Helper()
	b := make([]byte, 2048)
	n, err := udpcoder.DefaultCoder.Encode(m, b)
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.conn.WriteToUDP(b[:n], d.srv); err != nil {
		d.t.Fatal(err)
	}
}

func (d *rawDevice) recv() message.Message {
	d.t.Helper()
	b := make([]byte, 2048)
	_ = d.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := d.conn.Read(b)
	if err != nil {
		d.t.Fatalf("read: %v", err)
	}
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := udpcoder.DefaultCoder.Decode(b[:n], &m); err != nil {
		d.t.Fatalf("decode %x: %v", b[:n], err)
	}
	return m
}

// register sends a Register with ct on the root link and waits for 2.01.
func (d *rawDevice) register(ep, links string) {
	d.t.Helper()
	opts := message.Options{
		{ID: message.URIPath, Value: []byte("rd")},
		{ID: message.ContentFormat, Value: []byte{40}},
		{ID: message.URIQuery, Value: []byte("ep=" + ep)},
		{ID: message.URIQuery, Value: []byte("lt=300")},
		{ID: message.URIQuery, Value: []byte("lwm2m=1.1")},
	}
	d.mid++
	d.send(message.Message{Token: []byte{1, 2}, Options: opts, Code: codes.POST, Payload: []byte(links), MessageID: int32(d.mid), Type: message.Confirmable})
	if m := d.recv(); m.Code != codes.Created {
		d.t.Fatalf("register answered %v", m.Code)
	}
}

// answer sends a piggybacked answer to req.
func (d *rawDevice) answer(req message.Message, code codes.Code, format uint16, payload []byte) {
	d.t.Helper()
	var opts message.Options
	if payload != nil {
		buf := make([]byte, 4)
		opts, _, _ = opts.SetContentFormat(buf, message.MediaType(format))
	}
	d.send(message.Message{Token: req.Token, Options: opts, Code: code, Payload: payload, MessageID: req.MessageID, Type: message.Acknowledgement})
}

func uintOpt(m message.Message, id message.OptionID) (uint32, bool) {
	v, err := m.Options.GetUint32(id)
	return v, err == nil
}

// TestWireCompositeDatagrams checks lwota's composite requests byte by byte on a raw socket:
// FETCH with Content-Format and Accept 112, no Uri-Path, and the SenML CBOR path list; iPATCH
// with Content-Format 112 and the two records; the answers decoded into records.
func TestWireCompositeDatagrams(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	dev := newRawDevice(t, h.srv.Addr())
	dev.register("raw-comp", `</>;rt="oma.lwm2m";ct="112 11542",</1/0>,</3/0>,</5/0>`)

	type outcome struct {
		res *dm.Result
		err error
	}
	do := func(req dm.Request) <-chan outcome {
		ch := make(chan outcome, 1)
		go func() {
			res, _, err := h.srv.Do(ctx, "raw-comp", req)
			ch <- outcome{res, err}
		}()
		return ch
	}

	done := do(dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: firmwareStatus})
	req := dev.recv()
	if req.Code != codes.FETCH || req.Type != message.Confirmable {
		t.Fatalf("read-composite sent as %v type %v, want a confirmable FETCH", req.Code, req.Type)
	}
	if p, err := req.Options.Path(); err == nil && p != "/" {
		t.Fatalf("FETCH on %q, want the root (no Uri-Path)", p)
	}
	if cf, ok := uintOpt(req, message.ContentFormat); !ok || cf != 112 {
		t.Fatalf("Content-Format %d (%v), want 112", cf, ok)
	}
	if acc, ok := uintOpt(req, message.Accept); !ok || acc != 112 {
		t.Fatalf("Accept %d (%v), want 112", acc, ok)
	}
	if _, ok := uintOpt(req, message.Observe); ok {
		t.Fatal("Read-Composite carries Observe")
	}
	if got := hex.EncodeToString(req.Payload); got != "83a100662f332f302f33a100662f352f302f33a100662f352f302f35" {
		t.Fatalf("path list %s", got)
	}
	// [{0:"/3/0/3",3:"2.0"},{0:"/5/0/3",2:1},{0:"/5/0/5",2:0}]
	answer, _ := hex.DecodeString("83a200662f332f302f330363322e30a200662f352f302f330201a200662f352f302f350200")
	dev.answer(req, codes.Content, 112, answer)
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	if len(out.res.Records) != 3 || out.res.Records[0].Value.Str != "2.0" || out.res.Records[1].Value.Int != 1 {
		t.Fatalf("records %+v", out.res.Records)
	}
	// The firmware version read this way is kept like one from a plain Read.
	if r, _ := h.srv.Registry().Get("raw-comp"); r.FirmwareVersion != "2.0" {
		t.Errorf("registration firmware version %q, want 2.0", r.FirmwareVersion)
	}

	done = do(dm.Request{Op: dm.OpWriteComposite, Path: lwm2m.RootPath, Records: []lwm2m.Record{
		{Path: lwm2m.NewPath(1, 0, 1), Value: lwm2m.Integer(60)},
		{Path: lwm2m.NewPath(1, 0, 3), Value: lwm2m.Integer(5)},
	}})
	req = dev.recv()
	if req.Code != codes.IPATCH {
		t.Fatalf("write-composite sent as %v, want iPATCH", req.Code)
	}
	if cf, ok := uintOpt(req, message.ContentFormat); !ok || cf != 112 {
		t.Fatalf("Content-Format %d (%v), want 112", cf, ok)
	}
	if got := hex.EncodeToString(req.Payload); got != "82a200662f312f302f3102183ca200662f312f302f330205" {
		t.Fatalf("records %s", got)
	}
	dev.answer(req, codes.Changed, 0, nil)
	if out := <-done; out.err != nil || out.res.Code != "2.04" {
		t.Fatalf("write-composite: %+v %v", out.res, out.err)
	}

	// An answer that is not 2.05 is the device's error.
	done = do(dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: firmwareStatus[:1]})
	req = dev.recv()
	dev.answer(req, codes.MethodNotAllowed, 0, nil)
	var de *dm.DeviceError
	if out := <-done; !errors.As(out.err, &de) || de.Code != "4.05" {
		t.Fatalf("4.05 answer: %v", out.err)
	}
}

// The update driver reads /3/0/3, /5/0/3 and /5/0/5 in one Read-Composite when it verifies the
// update of a device whose registration allows it, counted in lwota_fwupdate_composite_reads_total;
// a 1.1 client that refuses it is read one path at a time, and a 1.0 device is never asked.
func TestUpdateVerifiesWithComposite(t *testing.T) {
	tests := []struct {
		name      string
		version   string
		profile   string
		ok        float64 // composite reads answered
		refused   float64
		composite bool // the device saw Read-Composite requests it answered
	}{
		{"1.1 device", "1.1", "", 1, 0, true},
		{"1.1 device without composite", "1.1", lwm2mtest.ProfileNoComposite, 0, 1, false},
		{"1.0 device", "1.0", "", 0, 0, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fwcfg := fwupdate.DefaultConfig()
			fwcfg.PollInterval = time.Second
			fwcfg.Offered = []string{fwupdate.DeliveryHTTP}
			im := newImages(t, []byte("LWOTA-FW 2.0.0\n"+string(bytes.Repeat([]byte("c"), 3000))))
			if err := h.store.SaveImage(ctx, &firmware.Image{ID: "img", Name: "fw", Version: "2.0.0", Size: int64(len(im.pkg)),
				SHA256: im.sum, BlobKey: "images/sha256/" + im.sum, CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			drv := fwupdate.New(fwcfg, h.srv, h.store, im, nil, nil, reg, nil)
			done := make(chan error, 1)
			go func() { done <- drv.Run(ctx) }()
			defer func() { cancel(); <-done }()

			ep := fmt.Sprintf("upd-comp-%d", i)
			cfg := lwm2mtest.DeviceConfig{Endpoint: ep, LwM2MVersion: tc.version, Delivery: lwm2mtest.DeliveryPull,
				Protocols: []int{lwm2mtest.ProtoHTTP}, RequestTimeout: 30 * time.Second, UpdateDelay: 100 * time.Millisecond}
			if err := lwm2mtest.ApplyProfiles(&cfg, tc.profile); err != nil {
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
				job, err = drv.Start(ctx, ep, fwupdate.StartRequest{ImageID: "img", Method: fwupdate.MethodPull})
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
			ok := metricValue(t, reg, "lwota_fwupdate_composite_reads_total", "ok")
			refused := metricValue(t, reg, "lwota_fwupdate_composite_reads_total", "refused")
			if ok < tc.ok || (tc.ok == 0 && ok != 0) || refused != tc.refused {
				t.Fatalf("composite reads ok=%v refused=%v, want ok>=%v refused=%v", ok, refused, tc.ok, tc.refused)
			}
			st := dev.Stats()
			if got := st.CompositePaths > 0; got != tc.composite {
				t.Fatalf("device answered composite reads of %d paths (%v); want composite %v", st.CompositePaths, st.Requests, tc.composite)
			}
			if tc.composite && st.CompositePaths%3 != 0 {
				t.Fatalf("composite reads named %d paths, want three per request", st.CompositePaths)
			}
		})
	}
}

// metricValue is the value of counter name with label outcome.
func metricValue(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{outcome=%q}", name, outcome)
	return 0
}

// Observe-Composite (Transport §6.4.1): one FETCH with Observe 0 observes several paths; a
// change of any of them is notified with all of them; the observation is stored with its paths,
// observed again after the device re-registers, and cancelled with Observe 1.
func TestObserveComposite(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "obs-comp", LwM2MVersion: "1.1", FirmwareVersion: "1.0.0",
		RequestTimeout: 30 * time.Second, UpdateDelay: 50 * time.Millisecond}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	paths := []lwm2m.Path{lwm2m.NewPath(3, 0, 3), lwm2m.NewPath(3, 0, 14)}
	res, _, err := h.srv.Do(ctx, "obs-comp", dm.Request{Op: dm.OpObserveComposite, Path: lwm2m.RootPath, Paths: paths})
	if err != nil || len(res.Records) != 2 {
		t.Fatalf("observe-composite: %+v, %v", res, err)
	}
	obs, err := h.srv.Observations(ctx, "obs-comp")
	if err != nil || len(obs) != 1 || obs[0].Path != lwm2m.RootPath || len(obs[0].Paths) != 2 || obs[0].Paths[1] != paths[1] {
		t.Fatalf("stored observations %+v, %v; want one on / with both paths", obs, err)
	}
	latest := func(p lwm2m.Path) string {
		ls, err := h.srv.Latest(ctx, "obs-comp")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			for _, r := range l.Records {
				if r.Path == p {
					return r.Value.Str
				}
			}
		}
		return ""
	}
	dev.SetValue(lwm2m.NewPath(3, 0, 14), lwm2m.String("+05"))
	waitFor(t, "the notification of /3/0/14", 30*time.Second, func() bool { return latest(lwm2m.NewPath(3, 0, 14)) == "+05" })
	if got := latest(lwm2m.NewPath(3, 0, 3)); got != "1.0.0" {
		t.Fatalf("the notification did not carry /3/0/3 too: %q", got)
	}

	// The device reboots and registers anew: lwota observes the same paths again, and stores
	// the new observation (a new token) once the device accepted it.
	first := string(obs[0].Token)
	if err := dev.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the observation to be made again", 30*time.Second, func() bool {
		obs, err := h.srv.Observations(ctx, "obs-comp")
		return err == nil && len(obs) == 1 && string(obs[0].Token) != first && len(obs[0].Paths) == 2 &&
			dev.Stats().Requests[lwm2mtest.OpObserveComposite] == 2
	})

	if _, _, err := h.srv.Do(ctx, "obs-comp", dm.Request{Op: dm.OpCancelObserveComposite, Path: lwm2m.RootPath, Paths: paths}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if st := dev.Stats(); st.Requests[lwm2mtest.OpCancelObserveComposite] != 1 {
		t.Fatalf("device saw %v", st.Requests)
	}
	if obs, _ := h.srv.Observations(ctx, "obs-comp"); len(obs) != 0 {
		t.Fatalf("observations after cancel: %+v", obs)
	}
}
