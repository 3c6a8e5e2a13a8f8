package registration_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// countingStore counts the registration writes that reach the real store.
type countingStore struct {
	registration.Store
	saves atomic.Int64
}

func (s *countingStore) SaveRegistration(ctx context.Context, r *registration.Registration) error {
	s.saves.Add(1)
	return s.Store.SaveRegistration(ctx, r)
}

func str(path, v string) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: lwm2m.String(v)}
}

// deviceRecords is what a Read of /3/0 answers, give or take.
func deviceRecords(manufacturer, model, fw, typ string) []lwm2m.Record {
	return []lwm2m.Record{
		str("/3/0/0", manufacturer), str("/3/0/1", model), str("/3/0/2", "SN-1"), str("/3/0/3", fw),
		{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Integer(100)},
		str("/3/0/17", typ),
	}
}

func TestRecordDeviceInfo(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{Store: f.store}
	reg := registration.New(cs, nil, registration.DefaultConfig(), nil, nil, f.clock.Now)
	ctx := context.Background()
	if resp := reg.ServeCoAP(ctx, peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=600")); resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	saves := func() int64 { return cs.saves.Load() }
	base := saves()

	tests := []struct {
		name      string
		recs      []lwm2m.Record
		want      [4]string // manufacturer, model, firmware version, device type
		wantSaves int64
	}{
		{"nothing of interest", []lwm2m.Record{{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Integer(80)}}, [4]string{}, 0},
		{"read of /3/0", deviceRecords("Acme", "M1", "1.0.0", "meter"), [4]string{"Acme", "M1", "1.0.0", "meter"}, 1},
		{"the same again", deviceRecords("Acme", "M1", "1.0.0", "meter"), [4]string{"Acme", "M1", "1.0.0", "meter"}, 0},
		{"a notification of /3/0/3", []lwm2m.Record{str("/3/0/3", "1.1.0")}, [4]string{"Acme", "M1", "1.1.0", "meter"}, 1},
		{"other instances and non-strings are ignored", []lwm2m.Record{
			str("/3/1/1", "M9"),
			{Path: lwm2m.MustParsePath("/3/0/1"), Value: lwm2m.Integer(7)},
			str("/33/0/0", "x"),
		}, [4]string{"Acme", "M1", "1.1.0", "meter"}, 0},
		{"two values, one write", []lwm2m.Record{str("/3/0/1", "M2"), str("/3/0/17", "tracker")}, [4]string{"Acme", "M2", "1.1.0", "tracker"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := saves()
			if err := reg.RecordDeviceInfo(ctx, "dev", tc.recs); err != nil {
				t.Fatalf("RecordDeviceInfo: %v", err)
			}
			if n := saves() - before; n != tc.wantSaves {
				t.Errorf("%d writes, want %d", n, tc.wantSaves)
			}
			for what, r := range map[string]*registration.Registration{"live": mustLive(t, reg, "dev"), "stored": mustStored(t, f, "dev")} {
				if got := info(r); got != tc.want {
					t.Errorf("%s info = %q, want %q", what, got, tc.want)
				}
			}
		})
	}
	if err := reg.RecordDeviceInfo(ctx, "nobody", deviceRecords("a", "b", "c", "d")); err != nil || saves() != base+3 {
		t.Errorf("RecordDeviceInfo of an unregistered endpoint: %v, %d writes", err, saves()-base-3)
	}
}

func info(r *registration.Registration) [4]string {
	return [4]string{r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType}
}

func mustLive(t *testing.T, reg *registration.Registry, ep string) *registration.Registration {
	t.Helper()
	r, ok := reg.Get(ep)
	if !ok {
		t.Fatalf("%s is not live", ep)
	}
	return r
}

func mustStored(t *testing.T, f *fixture, ep string) *registration.Registration {
	t.Helper()
	r, err := f.store.GetRegistration(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The identity a device reported stays through Updates, re-registrations (live or after a
// restart) and its De-register, until it reports another value.
func TestDeviceInfoIsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	want := [4]string{"Acme", "M1", "1.0.0", "meter"}
	first := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=60"))
	if err := f.reg.RecordDeviceInfo(ctx, "dev", deviceRecords(want[0], want[1], want[2], want[3])); err != nil {
		t.Fatal(err)
	}
	if resp := f.do(peer(40000, ""), request(transport.POST, "/rd/"+first.LocationPath[1], "", "lt=90")); resp.Code != transport.Changed {
		t.Fatalf("update answered %s", resp.Code)
	}
	if got := info(mustLive(t, f.reg, "dev")); got != want {
		t.Fatalf("after Update: %q", got)
	}
	f.do(peer(40001, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=60"))
	if got := info(mustLive(t, f.reg, "dev")); got != want {
		t.Fatalf("after a new Register: %q", got)
	}

	// lwota restarts after the lifetime ran out: the Register takes the values from the store.
	f.clock.Add(2 * time.Minute)
	f.open(t)
	if f.reg.Count() != 0 {
		t.Fatalf("lapsed registration came back")
	}
	second := f.do(peer(40002, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=60"))
	if got := info(mustLive(t, f.reg, "dev")); got != want {
		t.Fatalf("after a restart and Register: %q", got)
	}
	if got := info(mustStored(t, f, "dev")); got != want {
		t.Fatalf("stored after Register: %q", got)
	}
	if err := f.reg.RecordDeviceInfo(ctx, "dev", []lwm2m.Record{str("/3/0/3", "2.0.0")}); err != nil {
		t.Fatal(err)
	}
	f.do(peer(40002, ""), request(transport.DELETE, "/rd/"+second.LocationPath[1], ""))
	gone := mustStored(t, f, "dev")
	if got := info(gone); got != [4]string{"Acme", "M1", "2.0.0", "meter"} || gone.DeregisteredAt.IsZero() {
		t.Fatalf("stored after De-register: %q, deregistered %v", got, gone.DeregisteredAt)
	}
}

// infoReader reads from a table of devices, as a device would answer, and hands the records to
// the registry as the server's value sink does.
type infoReader struct {
	reg     *registration.Registry
	devices map[string][]lwm2m.Record
	block   chan struct{} // when not nil, reads wait for it

	mu       sync.Mutex
	reads    []string       // "endpoint path"
	failures map[string]int // reads of an endpoint that fail before it answers
}

func (ir *infoReader) ReadDeviceInfo(ctx context.Context, endpoint string, path lwm2m.Path) error {
	if ir.block != nil {
		select {
		case <-ir.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ir.mu.Lock()
	ir.reads = append(ir.reads, endpoint+" "+path.String())
	lost := ir.failures[endpoint] > 0
	if lost {
		ir.failures[endpoint]--
	}
	ir.mu.Unlock()
	if lost {
		return fmt.Errorf("%s: the answer was lost", endpoint)
	}
	recs, ok := ir.devices[endpoint]
	if !ok {
		return fmt.Errorf("%s does not answer", endpoint)
	}
	var answer []lwm2m.Record
	for _, r := range recs {
		if r.Path.HasPrefix(path) {
			answer = append(answer, r)
		}
	}
	return ir.reg.RecordDeviceInfo(ctx, endpoint, answer)
}

func (ir *infoReader) list() []string {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return append([]string(nil), ir.reads...)
}

// infoReads returns lwota_device_info_reads_total by result.
func infoReads(t *testing.T, m *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "lwota_device_info_reads_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = s.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func readsByResult(t *testing.T, m *prometheus.Registry, result string) float64 {
	t.Helper()
	return infoReads(t, m)[result]
}

func TestInfoReadsAfterRegister(t *testing.T) {
	f := newFixture(t)
	m := prometheus.NewRegistry()
	reg := registration.New(f.store, nil, registration.DefaultConfig(), nil, registration.NewMetrics(m), f.clock.Now)
	ir := &infoReader{reg: reg, devices: map[string][]lwm2m.Record{
		"dev":     deviceRecords("Acme", "M1", "1.0.0", "meter"),
		"no-type": deviceRecords("Acme", "M1", "1.0.0", "")[:5], // /3/0/17 is optional
	}}
	reg.SetInfoReader(ir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reg.RunInfoReads(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	register := func(ep, objects string, port uint16) {
		t.Helper()
		if resp := reg.ServeCoAP(ctx, peer(port, ""), request(transport.POST, "/rd", objects, "ep="+ep)); resp.Code != transport.Created {
			t.Fatalf("register %s answered %s", ep, resp.Code)
		}
	}
	waitReads := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(ir.list()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("reads %q, want %d", ir.list(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return ir.list()
	}

	register("dev", "</1/0>,</3/0>", 40000)
	if got := waitReads(1); got[0] != "dev /3/0" {
		t.Fatalf("first Register read %q, want all of /3/0", got)
	}
	waitFor(t, func() bool { return mustLive(t, reg, "dev").HasDeviceInfo() })
	register("dev", "</1/0>,</3/0>", 40001) // a reboot: only the firmware version may have moved
	if got := waitReads(2); got[1] != "dev /3/0/3" {
		t.Fatalf("second Register read %q, want /3/0/3", got)
	}
	register("no-type", "</3/0>", 40002)
	waitReads(3)
	register("no-type", "</3/0>", 40003) // still without a device type: all of /3/0 again
	if got := waitReads(4); got[3] != "no-type /3/0" {
		t.Fatalf("reads %q, want no-type /3/0 twice", got)
	}
	register("no-object-3", "</1/0>,</5/0>", 40004)
	register("silent", "</3/0>", 40005)
	waitFor(t, func() bool { return readsByResult(t, m, "failed") == 1 })
	if got := ir.list(); len(got) != 5 || got[4] != "silent /3/0" {
		t.Fatalf("reads %q: a device without Object 3 is not read, a silent one is", got)
	}
	if ok := readsByResult(t, m, "ok"); ok != 4 {
		t.Errorf("ok reads = %v, want 4", ok)
	}
	// The silent device's identity is still unknown: its next Update asks again; a device whose
	// identity is known is not read on Update.
	for _, u := range []struct {
		ep   string
		port uint16
	}{{"dev", 40000}, {"silent", 40005}} {
		live, ok := reg.Get(u.ep)
		if !ok {
			t.Fatalf("%s not registered", u.ep)
		}
		if resp := reg.ServeCoAP(ctx, peer(u.port, ""), request(transport.POST, "/rd/"+live.ID, "")); resp.Code != transport.Changed {
			t.Fatalf("update %s answered %s", u.ep, resp.Code)
		}
	}
	waitReads(6)
	time.Sleep(100 * time.Millisecond)
	if got := ir.list(); len(got) != 6 || got[5] != "silent /3/0" {
		t.Fatalf("reads %q: only the silent device is read again on its Update", got)
	}
}

// A failed identity read of a device that is not in queue mode is tried again after a backoff
// (2 s, 4 s, 8 s, 16 s), without waiting for its next Update: one lost answer on a loaded server
// must not leave a device without its model for a lifetime. A queue-mode device is read again at
// its next Update only, and a device that never answers is given up after the retries.
func TestInfoReadRetriedAfterBackoff(t *testing.T) {
	f := newFixture(t)
	m := prometheus.NewRegistry()
	reg := registration.New(f.store, nil, registration.DefaultConfig(), nil, registration.NewMetrics(m), f.clock.Now)
	ir := &infoReader{reg: reg, devices: map[string][]lwm2m.Record{
		"flaky":  deviceRecords("Acme", "M1", "1.0.0", "meter"),
		"sleepy": deviceRecords("Acme", "M1", "1.0.0", "meter"),
	}, failures: map[string]int{"flaky": 2, "sleepy": 1}}
	reg.SetInfoReader(ir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reg.RunInfoReads(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for i, r := range []struct{ ep, binding string }{{"flaky", "U"}, {"silent", "U"}, {"sleepy", "UQ"}} {
		if resp := reg.ServeCoAP(ctx, peer(uint16(41000+i), ""), request(transport.POST, "/rd", "</3/0>", "ep="+r.ep, "b="+r.binding)); resp.Code != transport.Created {
			t.Fatalf("register %s answered %s", r.ep, resp.Code)
		}
	}
	reads := func(ep string) int {
		n := 0
		for _, r := range ir.list() {
			if strings.HasPrefix(r, ep+" ") {
				n++
			}
		}
		return n
	}
	waitFor(t, func() bool { return readsByResult(t, m, "failed") == 3 })

	// Each step moves the clock past the next backoff and waits for the retries it makes due,
	// and for their outcomes: a failed read schedules its retry from the clock when it ends, so
	// moving the clock before that would push the retry past the next step.
	outcomes := func() int { return int(readsByResult(t, m, "failed") + readsByResult(t, m, "ok")) }
	for step, want := range []struct{ flaky, silent int }{{2, 2}, {3, 3}, {3, 4}, {3, 5}} {
		f.clock.Add(infoBackoff(step))
		waitFor(t, func() bool {
			return reads("flaky") == want.flaky && reads("silent") == want.silent && outcomes() == want.flaky+want.silent+1
		})
	}
	if !mustLive(t, reg, "flaky").HasDeviceInfo() {
		t.Fatal("flaky: its third read answered, yet its identity is unknown")
	}
	f.clock.Add(time.Hour)             // the silent device has had its retries; the queue-mode one waits for its Update
	time.Sleep(600 * time.Millisecond) // two refills
	if s, q := reads("silent"), reads("sleepy"); s != 5 || q != 1 {
		t.Fatalf("silent read %d times (want 1 + 4 retries), sleepy %d (want 1: queue mode waits for its Update)", s, q)
	}
	live := mustLive(t, reg, "sleepy")
	if resp := reg.ServeCoAP(ctx, peer(41002, ""), request(transport.POST, "/rd/"+live.ID, "")); resp.Code != transport.Changed {
		t.Fatalf("update sleepy answered %s", resp.Code)
	}
	waitFor(t, func() bool { return mustLive(t, reg, "sleepy").HasDeviceInfo() })
}

// infoBackoff is the registry's wait before retry step+1 of a failed identity read.
func infoBackoff(step int) time.Duration { return (2 * time.Second) << step }

// A full queue defers the read and counts it; the Register itself does not wait, and the
// deferred reads run once the queue has room. A read queued for a registration that was replaced
// before it ran is dropped (the replacement's own read, deferred, runs instead).
func TestInfoReadQueueFull(t *testing.T) {
	f := newFixture(t)
	m := prometheus.NewRegistry()
	cfg := registration.DefaultConfig()
	cfg.InfoReadQueue, cfg.InfoReadWorkers = 2, 1
	reg := registration.New(f.store, nil, cfg, nil, registration.NewMetrics(m), f.clock.Now)
	ir := &infoReader{reg: reg, devices: map[string][]lwm2m.Record{}}
	reg.SetInfoReader(ir)
	ctx := context.Background()
	for i := range 5 { // no reader runs yet: two wait in the queue, three are deferred
		ep := fmt.Sprintf("dev-%d", i)
		if i == 4 {
			ep = "dev-0" // replaces dev-0's registration, whose queued read goes stale
		}
		if resp := reg.ServeCoAP(ctx, peer(uint16(40000+i), ""), request(transport.POST, "/rd", "</3/0>", "ep="+ep)); resp.Code != transport.Created {
			t.Fatalf("register answered %s", resp.Code)
		}
	}
	if n := readsByResult(t, m, "deferred"); n != 3 {
		t.Fatalf("deferred = %v, want 3", n)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { reg.RunInfoReads(runCtx); close(done) }()
	// The fake device answers nothing, so every read that runs fails: dev-1, then the deferred
	// dev-2, dev-3 and the new dev-0.
	waitFor(t, func() bool { return readsByResult(t, m, "stale") == 1 && readsByResult(t, m, "failed") == 4 })
	cancel()
	<-done
	got := ir.list()
	slices.Sort(got)
	if want := []string{"dev-0 /3/0", "dev-1 /3/0", "dev-2 /3/0", "dev-3 /3/0"}; !slices.Equal(got, want) {
		t.Fatalf("reads %q, want %q", got, want)
	}
}

// RecordDeviceInfo racing Updates and re-registrations of the same device never leaves the store
// behind memory: every write builds on the newest snapshot.
func TestDeviceInfoConcurrentWrites(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=600"))
	id := first.LocationPath[1]
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				_ = f.reg.RecordDeviceInfo(ctx, "dev", []lwm2m.Record{str("/3/0/3", fmt.Sprintf("%d.%d", w, i)), str("/3/0/1", "M1")})
			}
		})
	}
	wg.Go(func() {
		for range 25 {
			f.do(peer(40000, ""), request(transport.POST, "/rd/"+id, "", "lt=600"))
		}
	})
	wg.Wait()
	live, stored := mustLive(t, f.reg, "dev"), mustStored(t, f, "dev")
	if live.FirmwareVersion == "" || live.Model != "M1" || info(live) != info(stored) || live.ID != stored.ID {
		t.Fatalf("live %q (%s), stored %q (%s)", info(live), live.ID, info(stored), stored.ID)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A device that answers /3/0 with an empty Device Type (/3/0/17 = "") is read after its
// Register only: its Updates do not read it again (issue 12, item 4). One reader works the
// queue in order, so the read of a device registered after the Updates proves that none of
// them queued one.
func TestNoInfoReadOnUpdateWithEmptyDeviceType(t *testing.T) {
	f := newFixture(t)
	m := prometheus.NewRegistry()
	cfg := registration.DefaultConfig()
	cfg.InfoReadWorkers = 1
	reg := registration.New(f.store, nil, cfg, nil, registration.NewMetrics(m), f.clock.Now)
	ir := &infoReader{reg: reg, devices: map[string][]lwm2m.Record{
		"empty-type": deviceRecords("Acme", "M1", "1.0.0", ""),
		"marker":     deviceRecords("Acme", "M1", "1.0.0", "meter"),
	}}
	reg.SetInfoReader(ir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reg.RunInfoReads(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if resp := reg.ServeCoAP(ctx, peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=empty-type")); resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	waitFor(t, func() bool { return readsByResult(t, m, "ok") == 1 })
	live := mustLive(t, reg, "empty-type")
	if live.Manufacturer != "Acme" || live.DeviceType != "" {
		t.Fatalf("after the read: %+v", live)
	}
	for i := range 3 {
		if resp := reg.ServeCoAP(ctx, peer(40000, ""), request(transport.POST, "/rd/"+live.ID, "")); resp.Code != transport.Changed {
			t.Fatalf("update %d answered %s", i, resp.Code)
		}
	}
	if resp := reg.ServeCoAP(ctx, peer(40001, ""), request(transport.POST, "/rd", "</3/0>", "ep=marker")); resp.Code != transport.Created {
		t.Fatalf("register marker answered %s", resp.Code)
	}
	waitFor(t, func() bool { return readsByResult(t, m, "ok") >= 2 })
	if got := ir.list(); !slices.Equal(got, []string{"empty-type /3/0", "marker /3/0"}) {
		t.Fatalf("reads %q: the Updates of a device with an empty Device Type read it again", got)
	}
}

// infoSavingStore counts whole-row saves and device-info saves on the way to the real store.
type infoSavingStore struct {
	registration.Store
	saver     registration.InfoSaver
	saves     atomic.Int64
	infoSaves atomic.Int64
}

func (s *infoSavingStore) SaveRegistration(ctx context.Context, r *registration.Registration) error {
	s.saves.Add(1)
	return s.Store.SaveRegistration(ctx, r)
}

func (s *infoSavingStore) SaveDeviceInfo(ctx context.Context, r *registration.Registration) error {
	s.infoSaves.Add(1)
	return s.saver.SaveDeviceInfo(ctx, r)
}

// TestRecordDeviceInfoSavesInfoOnly checks that new device attributes are stored through
// InfoSaver (four columns, not the whole row) when the store has it, durable before
// RecordDeviceInfo returns, and that a row replaced behind the registry's back (another id)
// gets the whole registration instead.
func TestRecordDeviceInfoSavesInfoOnly(t *testing.T) {
	f := newFixture(t)
	is := &infoSavingStore{Store: f.store, saver: f.store}
	reg := registration.New(is, nil, registration.DefaultConfig(), nil, nil, f.clock.Now)
	ctx := context.Background()
	resp := reg.ServeCoAP(ctx, peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=600"))
	if resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	saves := is.saves.Load()
	if err := reg.RecordDeviceInfo(ctx, "dev", deviceRecords("acme", "m1", "1.0", "meter")); err != nil {
		t.Fatal(err)
	}
	if got, gotInfo := is.saves.Load()-saves, is.infoSaves.Load(); got != 0 || gotInfo != 1 {
		t.Errorf("new device info: %d whole-row saves, %d info saves; want 0, 1", got, gotInfo)
	}
	live, _ := reg.Get("dev")
	stored, err := f.store.GetRegistration(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Manufacturer != "acme" || stored.Model != "m1" || stored.FirmwareVersion != "1.0" || stored.DeviceType != "meter" ||
		stored.ID != live.ID || stored.Addr != live.Addr || !stored.UpdatedAt.Equal(live.UpdatedAt) || len(stored.Objects) != 1 {
		t.Errorf("stored after the info save = %+v, live %+v", stored, live)
	}

	replaced := *stored
	replaced.ID = "another-node"
	if err := f.store.SaveRegistration(ctx, &replaced); err != nil {
		t.Fatal(err)
	}
	saves = is.saves.Load()
	if err := reg.RecordDeviceInfo(ctx, "dev", deviceRecords("acme", "m1", "1.1", "meter")); err != nil {
		t.Fatal(err)
	}
	if got := is.saves.Load() - saves; got != 1 {
		t.Errorf("device info of a row that holds another id: %d whole-row saves, want 1", got)
	}
	if stored, err := f.store.GetRegistration(ctx, "dev"); err != nil || stored.FirmwareVersion != "1.1" || stored.ID != live.ID {
		t.Errorf("stored after the fallback = %+v, %v; want firmware 1.1 under id %s", stored, err, live.ID)
	}
}
