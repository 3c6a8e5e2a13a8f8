package clustertest

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to look at tables
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/cluster"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testLogger logs warnings and errors to stderr, where a failing test shows them.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// node is one in-process lwota core of a cluster: its own store connection pool, its own UDP
// socket, its cluster membership.
type node struct {
	name    string
	srv     *server.Server
	store   *sqlstore.Store
	node    *cluster.Node
	metrics *prometheus.Registry
	stop    context.CancelFunc // ends the node without any clean-up of its rows (a kill)
	done    chan struct{}
	// released hears the endpoints the node let go of (the firmware driver's LetGo in lwota).
	released chan string
}

// releaser records LetGo calls.
type releaser chan string

func (r releaser) LetGo(endpoint string) { r <- endpoint }

// startNode starts a node named name on the database dsn and waits until it serves CoAP and
// listens for handovers.
func startNode(t *testing.T, dsn, name string) *node {
	t.Helper()
	return startNodeWith(t, dsn, cluster.Config{Name: name})
}

// startNodeWith is startNode with a cluster configuration of the test's.
func startNodeWith(t *testing.T, dsn string, cc cluster.Config) *node {
	t.Helper()
	name := cc.Name
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, dsn, testLogger())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	n := &node{name: name, store: st, metrics: prometheus.NewRegistry(), stop: cancel, done: make(chan struct{})}
	// Owned devices are reloaded only hourly: a move must reach the old node by notification.
	if cc.OwnedRefresh == 0 {
		cc.OwnedRefresh = time.Hour
	}
	n.node = cluster.New(cc, st, st, testLogger(), n.metrics, nil)
	n.released = make(chan string, 16)
	n.node.SetReleaser(releaser(n.released))
	if err := n.node.Join(ctx); err != nil {
		t.Fatal(err)
	}
	st.OwnDevices(n.node.ID(), n.node.Grace())
	cfg := server.DefaultConfig()
	cfg.CoAPAddr, cfg.CoAPSAddr = "127.0.0.1:0", "" // plain CoAP: no credentials needed
	cfg.AllowNoSec = true
	cfg.ReadDeviceInfo = false
	cfg.Registration.Shared = true
	n.srv = server.New(cfg, st, lwm2m.NewModel(), nil, nil, n.metrics)
	n.srv.SetCluster(n.node)
	n.node.SetExecutor(n.srv)
	srvDone, nodeDone := make(chan error, 1), make(chan error, 1)
	go func() {
		err := n.srv.Run(ctx)
		if err != nil {
			t.Errorf("node %s: %v", name, err)
		}
		srvDone <- err
		cancel() // a server that stopped takes its node down with it
	}()
	go func() { nodeDone <- n.node.Run(ctx) }()
	go func() {
		<-srvDone
		<-nodeDone
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		st.Close()
	})
	for _, c := range []<-chan struct{}{n.srv.Ready(), n.node.Ready()} {
		select {
		case <-c:
		case <-n.done:
			t.Fatalf("node %s stopped while starting", name)
		case <-time.After(time.Minute):
			t.Fatalf("node %s not ready within a minute", name)
		}
	}
	return n
}

// kill stops the node's server and cluster membership without touching the database.
func (n *node) kill() {
	n.stop()
	<-n.done
}

func (n *node) addr() string { return n.srv.Addr().String() }

// startDevice registers a plain CoAP device at n.
func startDevice(t *testing.T, n *node, ep string) *lwm2mtest.Device {
	t.Helper()
	d := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: ep, Manufacturer: "maker-" + ep}, nil)
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx, n.addr()); err != nil {
		t.Fatalf("device %s at node %s: %v", ep, n.name, err)
	}
	return d
}

// ownerOf is the node id the device's owner row names.
func ownerOf(t *testing.T, st *sqlstore.Store, ep string) uint16 {
	t.Helper()
	o, err := st.DeviceOwner(context.Background(), ep)
	if err != nil {
		t.Fatalf("owner of %s: %v", ep, err)
	}
	return o.NodeID
}

// readManufacturer reads /3/0/0 of ep through n's core, as the REST API does.
func readManufacturer(t *testing.T, n *node, ep string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, pending, err := n.srv.Do(ctx, ep, dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0/0")})
	if err != nil || pending != nil {
		t.Fatalf("read %s through node %s: pending %v, err %v", ep, n.name, pending, err)
	}
	if len(res.Records) != 1 {
		t.Fatalf("read %s through node %s: %d records", ep, n.name, len(res.Records))
	}
	return res.Records[0].Value.Str
}

// handovers is the node's lwota_cluster_handover_requests_total{direction,result}.
func handovers(n *node, direction, result string) float64 {
	c, err := n.node.HandoverCounter(direction, result)
	if err != nil {
		return -1
	}
	return testutil.ToFloat64(c)
}

// waitFor polls cond until it holds, failing after a minute: the condition is set by another
// node's notification, which has no event this process can wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOwnerStoredBeforeAck: once the device has its Register's answer, the owner row naming the
// node it registered at is in the database (it is written in the registration's transaction).
func TestOwnerStoredBeforeAck(t *testing.T) {
	dsn := pgtest.Start(t)
	a := startNode(t, dsn, "a")
	startDevice(t, a, "dev-ack")
	if got := ownerOf(t, a.store, "dev-ack"); got != a.node.ID() {
		t.Fatalf("owner = node %d, want %d (a)", got, a.node.ID())
	}
	if !a.node.Owns("dev-ack") || !a.srv.Local("dev-ack") {
		t.Error("node a does not know it owns dev-ack")
	}
}

// TestHandover: a read through a node that does not own the device is handed to the owner,
// which alone talks to the device; when the device moves to the other node (its datagrams land
// there), ownership follows at its Update and reads go the other way.
func TestHandover(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := startNode(t, dsn, "a"), startNode(t, dsn, "b")
	dev := startDevice(t, a, "dev-1")
	if got := ownerOf(t, a.store, "dev-1"); got != a.node.ID() {
		t.Fatalf("owner after Register at a = %d, want %d", got, a.node.ID())
	}

	// The device's socket is connected to a: anything b sent itself would never be answered.
	if got := readManufacturer(t, b, "dev-1"); got != "maker-dev-1" {
		t.Fatalf("read through b = %q, want maker-dev-1", got)
	}
	if got := handovers(b, "sent", "ok"); got != 1 {
		t.Errorf("b sent %v handovers, want 1", got)
	}
	if got := handovers(a, "served", "ok"); got != 1 {
		t.Errorf("a served %v handovers, want 1", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dev.MoveTo(ctx, b.addr()); err != nil {
		t.Fatal(err)
	}
	if s := dev.Stats(); s.Registrations != 1 || s.Updates != 1 {
		t.Errorf("device registered %d times and updated %d times, want 1 and 1: b took over the registration", s.Registrations, s.Updates)
	}
	if got := ownerOf(t, b.store, "dev-1"); got != b.node.ID() {
		t.Fatalf("owner after Update at b = %d, want %d", got, b.node.ID())
	}
	select {
	case ep := <-a.released:
		if ep != "dev-1" {
			t.Fatalf("a let go of %s, want dev-1", ep)
		}
	case <-ctx.Done():
		t.Fatal("a never heard that dev-1 moved")
	}
	if a.node.Owns("dev-1") || a.srv.Local("dev-1") {
		t.Error("a still drives dev-1's jobs")
	}
	if got := readManufacturer(t, a, "dev-1"); got != "maker-dev-1" {
		t.Fatalf("read through a = %q, want maker-dev-1", got)
	}
	if got := handovers(a, "sent", "ok"); got != 1 {
		t.Errorf("a sent %v handovers, want 1", got)
	}
	if got := handovers(b, "served", "ok"); got != 1 {
		t.Errorf("b served %v handovers, want 1", got)
	}
	if got := dev.Stats().Requests[lwm2mtest.OpRead]; got != 2 {
		t.Errorf("device answered %d reads, want 2", got)
	}
}

// TestKilledNodeLosesDevices: a node that dies without clean-up keeps its owner rows, but a
// device that then talks to another node belongs to that node at once.
func TestKilledNodeLosesDevices(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := startNode(t, dsn, "a"), startNode(t, dsn, "b")
	dev := startDevice(t, a, "dev-k")
	a.kill()
	if got := ownerOf(t, b.store, "dev-k"); got != a.node.ID() {
		t.Fatalf("owner after a's death = %d, want still %d", got, a.node.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dev.MoveTo(ctx, b.addr()); err != nil {
		t.Fatal(err)
	}
	if got := ownerOf(t, b.store, "dev-k"); got != b.node.ID() {
		t.Fatalf("owner after Update at b = %d, want %d", got, b.node.ID())
	}
	if !b.node.Owns("dev-k") {
		t.Error("b does not know it owns dev-k")
	}
	if got := readManufacturer(t, b, "dev-k"); got != "maker-dev-k" {
		t.Fatalf("read through b = %q", got)
	}
	if got := handovers(b, "sent", "ok"); got != 0 {
		t.Errorf("b handed %v reads over, want 0: it owns the device", got)
	}
}

// TestDrain: a draining node answers a new Register 5.03 (with Max-Age, so the device tries
// again elsewhere) and owns nothing once its devices have talked to another node.
func TestDrain(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := startNode(t, dsn, "a"), startNode(t, dsn, "b")
	dev := startDevice(t, a, "dev-d")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := b.node.Drain(ctx, "a", true) // asked through another node, as the API may be
	if err != nil {
		t.Fatal(err)
	}
	if !info.Draining || info.Owned != 1 {
		t.Fatalf("a after drain: %+v, want draining with 1 device", info)
	}
	waitFor(t, "a sees its draining flag at its heartbeat", a.node.Draining)

	late := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "dev-late"}, nil)
	defer late.Close()
	err = late.Start(ctx, a.addr())
	var rej *lwm2mtest.RejectedError
	if !errors.As(err, &rej) || rej.Code != "5.03" || rej.MaxAge != 30 {
		t.Fatalf("Register at draining a: %v (%+v), want 5.03 with Max-Age 30", err, rej)
	}
	if _, err := a.store.DeviceOwner(ctx, "dev-late"); !errors.Is(err, cluster.ErrNoOwner) {
		t.Errorf("refused device has an owner row: %v", err)
	}

	if err := dev.MoveTo(ctx, b.addr()); err != nil {
		t.Fatal(err)
	}
	nodes, err := b.node.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		want := map[string]int{"a": 0, "b": 1}[n.Name]
		if n.Owned != want {
			t.Errorf("node %s owns %d devices, want %d", n.Name, n.Owned, want)
		}
	}
}

// TestJoinKeepsID: a node that comes back under its name gets its id back; other names get
// other ids, also when they join at once.
func TestJoinKeepsID(t *testing.T) {
	dsn := pgtest.Start(t)
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const names = 8
	ids := make(chan uint16, names)
	errs := make(chan error, names)
	for i := range names {
		go func() {
			id, err := st.JoinCluster(ctx, cluster.NodeInfo{Name: string(rune('a' + i))}, time.Now())
			ids <- id
			errs <- err
		}()
	}
	seen := map[uint16]bool{}
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		id := <-ids
		if id < 1 || id > names || seen[id] {
			t.Fatalf("ids %v, then %d: want %d distinct ids from 1", seen, id, names)
		}
		seen[id] = true
	}
	c1, err := st.JoinCluster(ctx, cluster.NodeInfo{Name: "c"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := st.JoinCluster(ctx, cluster.NodeInfo{Name: "c", ForwardAddr: "10.0.0.3:5690"}, time.Now())
	if err != nil || c1 != c2 {
		t.Fatalf("rejoin of c: %d then %d (%v)", c1, c2, err)
	}
}

// TestHandoverLargeAnswer: a request and an answer larger than a notification may carry come
// through cluster_messages, whole. The nodes' limit is lowered from 7900 bytes so that a value
// a device sends in one datagram is over it.
func TestHandoverLargeAnswer(t *testing.T) {
	dsn := pgtest.Start(t)
	a := startNodeWith(t, dsn, cluster.Config{Name: "a", MaxNotify: 300})
	b := startNodeWith(t, dsn, cluster.Config{Name: "b", MaxNotify: 300})
	big := strings.Repeat("m", 600)
	d := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "dev-big", Manufacturer: big}, nil)
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx, a.addr()); err != nil {
		t.Fatal(err)
	}
	if got := readManufacturer(t, b, "dev-big"); got != big {
		t.Fatalf("read through b: %d bytes, want %d", len(got), len(big))
	}
	// A write of a value over the limit: the request goes through the table too.
	w := dm.Request{Op: dm.OpWrite, Path: lwm2m.MustParsePath("/1/0/1"), Records: []lwm2m.Record{{Path: lwm2m.MustParsePath("/1/0/1"), Value: lwm2m.Integer(400)}}}
	for range 40 {
		w.Records = append(w.Records, w.Records[0])
	}
	if _, _, err := b.srv.Do(ctx, "dev-big", w); err != nil {
		var de *dm.DeviceError
		if !errors.As(err, &de) {
			t.Fatalf("write through b: %v, want the device's own answer", err)
		}
	}
	if got := handovers(a, "served", "ok") + handovers(a, "served", "device"); got != 2 {
		t.Errorf("a served %v handovers, want 2", got)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var left int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM cluster_messages").Scan(&left); err != nil || left != 0 {
		t.Errorf("cluster_messages keeps %d rows (%v), want 0: the caller takes its answer", left, err)
	}
}

// TestOwnerDown: a request for a device whose owner stopped heartbeating fails at once as
// offline (409 from the API) instead of waiting for a node that cannot answer.
func TestOwnerDown(t *testing.T) {
	dsn := pgtest.Start(t)
	a := startNode(t, dsn, "a")
	// b takes any heartbeat as too old: a is down to it, whatever the clock.
	b := startNodeWith(t, dsn, cluster.Config{Name: "b", DeadAfter: time.Nanosecond})
	startDevice(t, a, "dev-down")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err := b.srv.Do(ctx, "dev-down", dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0/0")})
	if !errors.Is(err, cluster.ErrOwnerDown) || !errors.Is(err, dm.ErrOffline) {
		t.Fatalf("read through b: %v, want the owner down (offline)", err)
	}
	if got := handovers(b, "sent", "owner_down"); got != 1 {
		t.Errorf("owner_down handovers %v, want 1", got)
	}
}

// TestHandoverNow: DoNow (the API's reads, the firmware driver's requests: never queued) on a
// node that does not own the device is handed over as DoNow and answers with the device's value.
func TestHandoverNow(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := startNode(t, dsn, "a"), startNode(t, dsn, "b")
	dev := startDevice(t, a, "dev-now")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := b.srv.DoNow(ctx, "dev-now", dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0/0")})
	if err != nil || len(res.Records) != 1 || res.Records[0].Value.Str != "maker-dev-now" {
		t.Fatalf("DoNow through b: %+v, %v", res, err)
	}
	if got := handovers(a, "served", "ok"); got != 1 {
		t.Errorf("a served %v handovers, want 1", got)
	}
	if got := dev.Stats().Requests[lwm2mtest.OpRead]; got != 1 {
		t.Errorf("device answered %d reads, want 1", got)
	}
}
