package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/dm"
)

// Errors of the cluster.
var (
	// ErrNodeNotFound: no node of that name or id is in cluster_nodes.
	ErrNodeNotFound = errors.New("cluster: no such node")
	// ErrNoOwner: no node owns the device (it never registered in the cluster, or de-registered).
	ErrNoOwner = errors.New("cluster: device has no owner")
	// ErrOwnerDown: the node owning the device stopped heartbeating; the request waits for the
	// device to talk to another node. It matches dm.ErrOffline.
	ErrOwnerDown = fmt.Errorf("cluster: the node owning the device is down: %w", dm.ErrOffline)
	// ErrBusy: too many handovers are in flight; it matches dm.ErrUnavailable (try again).
	ErrBusy = fmt.Errorf("cluster: too many requests handed over at once: %w", dm.ErrUnavailable)
	// ErrNoNodeIDs: all 65535 node ids are taken.
	ErrNoNodeIDs = errors.New("cluster: no node id left (65535 names joined)")
)

// NodeInfo is one node of the cluster as cluster_nodes holds it, with the devices it owns now.
type NodeInfo struct {
	ID          uint16    `json:"id"`
	Name        string    `json:"name"`
	ForwardAddr string    `json:"forward_addr,omitempty"`
	APIURL      string    `json:"api_url,omitempty"`
	Draining    bool      `json:"draining"`
	JoinedAt    time.Time `json:"joined_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// Owned counts the devices whose ownership lease names this node and has not ended.
	Owned int `json:"owned_devices"`
	// Alive: the node heartbeated within Config.DeadAfter (filled in by Node.Nodes).
	Alive bool `json:"alive"`
}

// Owner is a device's owner row, with the owning node's last heartbeat.
type Owner struct {
	NodeID      uint16
	PeerAddr    string
	LeaseUntil  time.Time
	HeartbeatAt time.Time // zero when the node's row is gone
}

// Store is the cluster's part of the database (storage/sqlstore implements it on PostgreSQL).
type Store interface {
	// JoinCluster inserts or refreshes n's row by name and returns its node id: the id the name
	// had, else the smallest free one. Racing joins of different names get different ids.
	JoinCluster(ctx context.Context, n NodeInfo, now time.Time) (uint16, error)
	// HeartbeatNode stamps the node's heartbeat and returns its row (draining may have been set
	// by another node), or ErrNodeNotFound.
	HeartbeatNode(ctx context.Context, id uint16, now time.Time) (NodeInfo, error)
	// ClusterNodes lists the nodes by id, each with its owned devices counted at now.
	ClusterNodes(ctx context.Context, now time.Time) ([]NodeInfo, error)
	// SetNodeDraining sets or clears the draining flag of the node name, or ErrNodeNotFound.
	SetNodeDraining(ctx context.Context, name string, draining bool) error
	// DeviceOwner returns endpoint's owner row, or ErrNoOwner.
	DeviceOwner(ctx context.Context, endpoint string) (Owner, error)
	// OwnedEndpoints lists the endpoints whose lease names node id and lasts past now.
	OwnedEndpoints(ctx context.Context, id uint16, now time.Time) ([]string, error)
	// PutMessage keeps a body too large for a notification under id; TakeMessage reads and
	// deletes it (ErrNoMessage-like errors when gone); SweepMessages drops those older than before.
	PutMessage(ctx context.Context, id, body string, now time.Time) error
	TakeMessage(ctx context.Context, id string) (string, error)
	SweepMessages(ctx context.Context, before time.Time) error
}

// PubSub is PostgreSQL's LISTEN/NOTIFY (storage/sqlstore implements it).
type PubSub interface {
	// Listen delivers the notifications of channels to fn, in order, until ctx ends; ready is
	// called each time the listening connection is (re)established.
	Listen(ctx context.Context, channels []string, ready func(), fn func(channel, payload string)) error
	// Notify sends payload (at most 8000 bytes) on channel.
	Notify(ctx context.Context, channel, payload string) error
}

// Executor runs a device request on this node, without handing it over (server.Server's
// DoHere and DoNowHere).
type Executor interface {
	DoHere(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error)
	DoNowHere(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error)
}

// Releaser lets go of the work this node does for a device that moved to another node (the
// firmware update driver's LetGo).
type Releaser interface {
	LetGo(endpoint string)
}

// Config tunes a node. Zero fields take DefaultConfig's values.
type Config struct {
	Name        string // the node's unique, stable name (the same after a restart)
	ForwardAddr string // host:port of the node's inter-node UDP relay; "" for none
	APIURL      string // the node's REST API, for operators; "" for none
	// Heartbeat is how often the node stamps its row; DeadAfter without a stamp marks it down.
	Heartbeat time.Duration
	DeadAfter time.Duration
	// OwnedRefresh is how often the node reloads which devices it owns (leases end silently).
	OwnedRefresh time.Duration
	// Grace is added to a registration's lifetime to make its ownership lease.
	Grace time.Duration
	// MaxInFlight bounds the requests this node hands over at once; MaxServing those it runs
	// for other nodes at once. Above them a request fails at once (ErrBusy).
	MaxInFlight int
	MaxServing  int
	// HandoverTimeout bounds a handed-over request whose caller set no deadline.
	HandoverTimeout time.Duration
	// DrainRetry is the Max-Age of the 5.03 a draining node answers a Register with.
	DrainRetry time.Duration
	// MaxNotify is the largest handover message sent as a notification, in bytes (at most and by
	// default 7900, under PostgreSQL's 8000); a larger body goes through cluster_messages.
	MaxNotify int
}

// DefaultConfig heartbeats every 5 s, marks a node down after 20 s, refreshes owned devices
// every 30 s, and allows 256 handovers in flight and 64 served at once.
func DefaultConfig() Config {
	return Config{Heartbeat: 5 * time.Second, DeadAfter: 20 * time.Second, OwnedRefresh: 30 * time.Second,
		Grace: 60 * time.Second, MaxInFlight: 256, MaxServing: 64, HandoverTimeout: 2 * time.Minute,
		DrainRetry: 30 * time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Heartbeat <= 0 {
		c.Heartbeat = d.Heartbeat
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = max(d.DeadAfter, 4*c.Heartbeat)
	}
	if c.OwnedRefresh <= 0 {
		c.OwnedRefresh = d.OwnedRefresh
	}
	if c.Grace <= 0 {
		c.Grace = d.Grace
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.MaxServing <= 0 {
		c.MaxServing = d.MaxServing
	}
	if c.HandoverTimeout <= 0 {
		c.HandoverTimeout = d.HandoverTimeout
	}
	if c.DrainRetry <= 0 {
		c.DrainRetry = d.DrainRetry
	}
	if c.MaxNotify <= 0 || c.MaxNotify > maxNotify {
		c.MaxNotify = maxNotify
	}
	return c
}

// movedChannel carries "old new endpoint" whenever a device's owner row changes node (a trigger
// of migration 00015 sends it in the moving transaction).
const movedChannel = "lwota_owner_moved"

// nodeChannel is the channel a node hears handover requests and answers on.
func nodeChannel(id uint16) string { return "lwota_node_" + strconv.Itoa(int(id)) }

// Node is this lwota process as a member of the cluster. Build it with New, Join it before the
// server takes registrations (the store needs its id), then Run it.
type Node struct {
	cfg   Config
	store Store
	ps    PubSub
	log   *slog.Logger
	m     *metrics
	now   func() time.Time

	id uint16 // set by Join

	mu       sync.Mutex
	exec     Executor
	releaser Releaser
	owned    map[string]struct{} // endpoints this node owns, as far as it knows
	nodes    map[uint16]NodeInfo // cluster_nodes as of the last heartbeat (Lookup)
	draining bool
	waiting  map[string]chan answer // handover request id -> its caller
	inFlight int
	serving  int
	ready    chan struct{} // closed once the node listens
	readyOne sync.Once
	served   sync.WaitGroup // requests being served for other nodes; Run waits for them
}

// New returns a node of the cluster kept in store, talking over ps. A nil logger discards; a nil
// reg leaves the metrics unregistered; a nil now is time.Now.
func New(cfg Config, store Store, ps PubSub, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Node {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	n := &Node{cfg: cfg.withDefaults(), store: store, ps: ps, log: logger, now: now,
		owned: map[string]struct{}{}, waiting: map[string]chan answer{}, ready: make(chan struct{})}
	n.m = newMetrics(reg, n)
	return n
}

// SetExecutor sets what runs requests handed over to this node. Call it before Run.
func (n *Node) SetExecutor(e Executor) {
	n.mu.Lock()
	n.exec = e
	n.mu.Unlock()
}

// SetReleaser sets what lets go of a device that moved away. Call it before Run.
func (n *Node) SetReleaser(r Releaser) {
	n.mu.Lock()
	n.releaser = r
	n.mu.Unlock()
}

// Join registers the node in cluster_nodes under its name, taking the name's node id (or the
// smallest free one), and loads the devices it owns.
func (n *Node) Join(ctx context.Context) error {
	if n.cfg.Name == "" {
		return errors.New("cluster: join: the node needs a name")
	}
	id, err := n.store.JoinCluster(ctx, NodeInfo{Name: n.cfg.Name, ForwardAddr: n.cfg.ForwardAddr, APIURL: n.cfg.APIURL}, n.now())
	if err != nil {
		return fmt.Errorf("cluster: join as %s: %w", n.cfg.Name, err)
	}
	n.id = id
	if err := n.refreshOwned(ctx); err != nil {
		return err
	}
	if err := n.refreshNodes(ctx); err != nil {
		return err
	}
	info, err := n.store.HeartbeatNode(ctx, id, n.now())
	if err != nil {
		return fmt.Errorf("cluster: join as %s: %w", n.cfg.Name, err)
	}
	n.mu.Lock()
	n.draining = info.Draining
	n.mu.Unlock()
	n.log.Info("joined the cluster", "node", n.cfg.Name, "node_id", id, "draining", info.Draining)
	return nil
}

// ID is the node's id (1..65535), fixed by Join; the same name gets the same id back.
func (n *Node) ID() uint16 { return n.id }

// NodeID is ID, for consumers that name it so.
func (n *Node) NodeID() uint16 { return n.id }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Grace is what the store adds to a registration's lifetime for the ownership lease.
func (n *Node) Grace() time.Duration { return n.cfg.Grace }

// Ready is closed once the node listens for handovers.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Lookup returns the forward address of node id ("" when the node has none) from the copy of
// cluster_nodes the node refreshes at every heartbeat, so it costs no query; ok is false for an
// id not known then.
func (n *Node) Lookup(id uint16) (forwardAddr string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	x, ok := n.nodes[id]
	return x.ForwardAddr, ok
}

// refreshNodes reloads the copy of cluster_nodes Lookup reads.
func (n *Node) refreshNodes(ctx context.Context) error {
	nodes, err := n.store.ClusterNodes(ctx, n.now())
	if err != nil {
		return fmt.Errorf("cluster: nodes: %w", err)
	}
	m := make(map[uint16]NodeInfo, len(nodes))
	for _, x := range nodes {
		m[x.ID] = x
	}
	n.mu.Lock()
	n.nodes = m
	n.mu.Unlock()
	return nil
}

// Nodes lists the cluster's nodes with their owned devices and whether they are alive.
func (n *Node) Nodes(ctx context.Context) ([]NodeInfo, error) {
	now := n.now()
	nodes, err := n.store.ClusterNodes(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("cluster: nodes: %w", err)
	}
	for i := range nodes {
		nodes[i].Alive = now.Sub(nodes[i].HeartbeatAt) < n.cfg.DeadAfter
	}
	return nodes, nil
}

// Drain sets (or clears) the draining flag of node name: a draining node refuses new
// Registers; the node notices at its next heartbeat. It returns the node's row.
func (n *Node) Drain(ctx context.Context, name string, draining bool) (NodeInfo, error) {
	if err := n.store.SetNodeDraining(ctx, name, draining); err != nil {
		return NodeInfo{}, fmt.Errorf("cluster: drain %s: %w", name, err)
	}
	if name == n.cfg.Name {
		n.mu.Lock()
		n.draining = draining
		n.mu.Unlock()
	}
	nodes, err := n.Nodes(ctx)
	if err != nil {
		return NodeInfo{}, err
	}
	for _, x := range nodes {
		if x.Name == name {
			return x, nil
		}
	}
	return NodeInfo{}, fmt.Errorf("cluster: drain %s: %w", name, ErrNodeNotFound)
}

// AdmitRegister refuses a Register while the node drains (registration.Admission): the device
// is answered 5.03 with Max-Age DrainRetry and registers again, through the balancer, elsewhere.
func (n *Node) AdmitRegister() (time.Duration, string, bool) {
	if n.Draining() {
		return n.cfg.DrainRetry, "node " + n.cfg.Name + " is draining", false
	}
	return 0, "", true
}

// Draining reports whether this node is draining: it takes no new Registers.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// Heard records that this node now owns endpoint: the store wrote its owner row with the
// registration the device just made or renewed here.
func (n *Node) Heard(endpoint string) {
	n.mu.Lock()
	n.owned[endpoint] = struct{}{}
	n.mu.Unlock()
}

// Owns reports whether this node owns endpoint as far as it knows: it wrote the device's owner
// row and heard of no other node taking it since.
func (n *Node) Owns(endpoint string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.owned[endpoint]
	return ok
}

// OwnedCount is the number of devices this node owns as far as it knows.
func (n *Node) OwnedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.owned)
}

// refreshOwned reloads the owned set from the leases that name this node.
func (n *Node) refreshOwned(ctx context.Context) error {
	eps, err := n.store.OwnedEndpoints(ctx, n.id, n.now())
	if err != nil {
		return fmt.Errorf("cluster: owned devices: %w", err)
	}
	set := make(map[string]struct{}, len(eps))
	for _, ep := range eps {
		set[ep] = struct{}{}
	}
	n.mu.Lock()
	n.owned = set
	n.mu.Unlock()
	return nil
}

// moved handles a "old new endpoint" notification: a node that lost the device lets it go.
func (n *Node) moved(payload string) {
	from, to, ep, ok := parseMoved(payload)
	if !ok {
		n.log.Warn("malformed ownership notification", "payload", payload)
		return
	}
	if from != n.id && to != n.id {
		return
	}
	n.m.changes.Inc()
	n.mu.Lock()
	if to == n.id {
		n.owned[ep] = struct{}{}
	} else {
		delete(n.owned, ep)
	}
	rel := n.releaser
	n.mu.Unlock()
	if from == n.id && rel != nil {
		n.log.Info("device moved to another node", "endpoint", ep, "node_id", to)
		rel.LetGo(ep)
	}
}

// parseMoved splits "old new endpoint" (endpoints have no spaces... but may; the endpoint is the rest).
func parseMoved(payload string) (from, to uint16, endpoint string, ok bool) {
	a, rest, ok1 := strings.Cut(payload, " ")
	b, ep, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || ep == "" {
		return 0, 0, "", false
	}
	f, err1 := strconv.ParseUint(a, 10, 16)
	t, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil || f == 0 || t == 0 {
		return 0, 0, "", false
	}
	return uint16(f), uint16(t), ep, true
}

// Run listens for handovers and ownership moves and heartbeats until ctx ends. Join first.
func (n *Node) Run(ctx context.Context) error {
	if n.id == 0 {
		return errors.New("cluster: run: join first")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.beat(ctx)
	}()
	listened := false
	err := n.ps.Listen(ctx, []string{movedChannel, nodeChannel(n.id)},
		func() {
			n.readyOne.Do(func() { close(n.ready) })
			if listened {
				// Moves notified while the connection was down are lost: read what this node owns
				// now, so that it does not keep sending downlinks to devices it lost meanwhile.
				if err := n.refreshOwned(ctx); err != nil && ctx.Err() == nil {
					n.log.Warn("cluster owned devices", "err", err)
				}
			}
			listened = true
		},
		func(channel, payload string) {
			if channel == movedChannel {
				n.moved(payload)
				return
			}
			n.receive(ctx, payload)
		})
	wg.Wait()
	n.served.Wait() // their contexts ended with ctx; their answers are sent or given up
	n.mu.Lock()
	for id, c := range n.waiting { // callers end by their own context; none waits on a dead listener
		close(c)
		delete(n.waiting, id)
	}
	n.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("cluster: listen: %w", err)
	}
	return nil
}

// beat stamps the heartbeat, picks up the draining flag, refreshes the owned devices and sweeps
// old spilled messages, until ctx ends.
func (n *Node) beat(ctx context.Context) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	lastRefresh := n.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		info, err := n.store.HeartbeatNode(ctx, n.id, n.now())
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("cluster heartbeat", "err", err)
			}
			continue
		}
		n.mu.Lock()
		if info.Draining != n.draining {
			n.log.Info("cluster node draining changed", "node", n.cfg.Name, "draining", info.Draining)
		}
		n.draining = info.Draining
		n.mu.Unlock()
		if err := n.refreshNodes(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("cluster nodes", "err", err)
		}
		if n.now().Sub(lastRefresh) >= n.cfg.OwnedRefresh {
			lastRefresh = n.now()
			if err := n.refreshOwned(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("cluster owned devices", "err", err)
			}
			if err := n.store.SweepMessages(ctx, n.now().Add(-2*n.cfg.HandoverTimeout)); err != nil && ctx.Err() == nil {
				n.log.Warn("cluster message sweep", "err", err)
			}
		}
	}
}

// The core's view of a node (server.Cluster), without importing the server.
var _ interface {
	Owns(string) bool
	Heard(string)
	AdmitRegister() (time.Duration, string, bool)
} = (*Node)(nil)
