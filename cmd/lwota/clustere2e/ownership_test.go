package clustere2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// clusterNode is a row of GET /api/v1/cluster/nodes.
type clusterNode struct {
	ID          uint16 `json:"id"`
	Name        string `json:"name"`
	Owned       int    `json:"owned_devices"`
	Alive       bool   `json:"alive"`
	ForwardAddr string `json:"forward_addr"`
}

// clusterNodes lists the cluster's nodes as nd's API sees them.
func clusterNodes(t testing.TB, nd *node) []clusterNode {
	t.Helper()
	var out struct {
		Nodes []clusterNode `json:"nodes"`
	}
	if code := nd.api(t, "GET", "/api/v1/cluster/nodes", nil, &out); code != 200 {
		t.Fatalf("GET /api/v1/cluster/nodes at %s: %d", nd.name, code)
	}
	return out.Nodes
}

// nodeIDs maps the names of c's nodes to their cluster ids (as nd's API lists them).
func nodeIDs(t testing.TB, c *cluster, nd *node) map[string]uint16 {
	t.Helper()
	ids := map[string]uint16{}
	for _, n := range clusterNodes(t, nd) {
		ids[n.Name] = n.ID
	}
	for _, n := range c.nodes {
		if _, ok := ids[n.name]; !ok {
			t.Fatalf("%s's API does not list node %s: %v", nd.name, n.name, ids)
		}
	}
	return ids
}

// owner is a device_owners row.
type owner struct {
	node  uint16
	until time.Time
}

// deviceOwners reads every ownership row of the cluster's database. The table is the shared
// state the nodes agree on; the API shows only its counts per node.
func deviceOwners(t testing.TB, c *cluster) map[string][]owner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatalf("connect to the cluster's database: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT endpoint, node_id, lease_until FROM device_owners`)
	if err != nil {
		t.Fatalf("read device_owners: %v", err)
	}
	out := map[string][]owner{}
	for rows.Next() {
		var ep string
		var id int32
		var until int64 // unix nanoseconds (migration 00015)
		if err := rows.Scan(&ep, &id, &until); err != nil {
			t.Fatalf("read device_owners: %v", err)
		}
		out[ep] = append(out[ep], owner{uint16(id), time.Unix(0, until)})
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read device_owners: %v", err)
	}
	return out
}

// checkOwnership asserts that every device in devs is owned by exactly one node, one of live
// (by name), with a lease that has not ended; and that the live nodes' owned-device gauges
// and their API's per-node counts settle on the same split. It returns each device's owner.
func checkOwnership(t *testing.T, c *cluster, live []*node, devs []*lwm2mtest.Device) map[string]*node {
	t.Helper()
	ids := nodeIDs(t, c, live[0])
	byID := map[uint16]*node{}
	for _, nd := range live {
		byID[ids[nd.name]] = nd
	}
	rows := deviceOwners(t, c)
	owners := map[string]*node{}
	perNode := map[*node]int{}
	bad := 0
	now := time.Now()
	for _, d := range devs {
		ep := d.Endpoint()
		rs := rows[ep]
		var nd *node
		if len(rs) == 1 {
			nd = byID[rs[0].node]
		}
		if nd == nil || !rs[0].until.After(now) {
			if bad++; bad <= 5 {
				t.Errorf("%s: ownership rows %+v, want one naming a live node (%v) with a running lease", ep, rs, ids)
			}
			continue
		}
		owners[ep] = nd
		perNode[nd]++
	}
	if bad > 0 {
		t.Fatalf("%d of %d devices not owned by exactly one live node", bad, len(devs))
	}
	if len(rows) != len(devs) {
		t.Errorf("device_owners holds %d rows for a fleet of %d", len(rows), len(devs))
	}
	// The gauges follow the rows through LISTEN/NOTIFY: wait for them to settle.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var gauges []string
	waitFor(t, ctx, func() bool {
		gauges = gauges[:0]
		ok, sum := true, 0.0
		for _, nd := range live {
			g := nd.metric(t, "lwota_cluster_owned_devices")
			sum += g
			gauges = append(gauges, fmt.Sprintf("%s %v (rows %d)", nd.name, g, perNode[nd]))
			ok = ok && int(g) == perNode[nd]
		}
		return ok && int(sum) == len(devs)
	}, func() string { return fmt.Sprintf("the owned-device gauges to match the rows: %v", gauges) })
	for _, n := range clusterNodes(t, live[len(live)-1]) {
		if nd := byID[n.ID]; nd != nil && (n.Owned != perNode[nd] || !n.Alive) {
			t.Errorf("GET /cluster/nodes: %s owns %d (alive %v), device_owners says %d", n.Name, n.Owned, n.Alive, perNode[nd])
		}
	}
	t.Logf("devices per owner: %v", gauges)
	return owners
}

// crossReads reads, for every ordered pair of distinct nodes (owner, reader), perPair plain
// CoAP and perPair DTLS devices owned by owner through reader's REST API. Before each read the
// device's serial number (/3/0/2) is set to a fresh value, so the answer can only have come
// from the device, through the owner (nginx's session for the device leads to it alone).
func crossReads(t *testing.T, nodes []*node, f fleets, owners map[string]*node, perPair int) {
	t.Helper()
	serial := lwm2m.NewPath(3, 0, 2)
	sent := map[*node]float64{}
	for _, nd := range nodes {
		sent[nd] = handoversSentOK(t, nd)
	}
	want := map[*node]int{}
	for _, half := range []struct {
		name string
		devs []*lwm2mtest.Device
	}{{"plain", f.plain.Devices()}, {"dtls", f.dtls.Devices()}} {
		for _, own := range nodes {
			var mine []*lwm2mtest.Device
			for _, d := range half.devs {
				if owners[d.Endpoint()] == own {
					mine = append(mine, d)
				}
			}
			for _, reader := range nodes {
				if reader == own {
					continue
				}
				if len(mine) < perPair {
					t.Fatalf("%s owns %d %s devices, the test reads %d per pair", own.name, len(mine), half.name, perPair)
				}
				for _, d := range mine[:perPair] {
					mine = mine[1:] // each device is read through one other node
					nonce := make([]byte, 6)
					_, _ = rand.Read(nonce)
					v := "sn-" + d.Endpoint() + "-" + hex.EncodeToString(nonce)
					d.SetValue(serial, lwm2m.String(v))
					var res struct {
						Code    string `json:"code"`
						Records []struct {
							Path  string `json:"path"`
							Value any    `json:"value"`
						} `json:"records"`
					}
					path := "/api/v1/devices/" + url.PathEscape(d.Endpoint()) + "/objects/3/0/2"
					code := reader.api(t, "GET", path, nil, &res)
					if code != 200 || res.Code != "2.05" || len(res.Records) != 1 || res.Records[0].Value != v {
						t.Errorf("%s device %s owned by %s, read at %s: %d %+v, want %q", half.name, d.Endpoint(), own.name, reader.name, code, res, v)
					}
					want[reader]++
				}
			}
		}
	}
	// Each read was handed over, not served by a node that could not reach the device.
	for _, nd := range nodes {
		if got := handoversSentOK(t, nd) - sent[nd]; int(got) != want[nd] {
			t.Errorf("%s handed over %v reads with result ok, want %d", nd.name, got, want[nd])
		}
	}
}

// handoversSentOK is nd's count of requests handed over to an owner that answered.
func handoversSentOK(t testing.TB, nd *node) float64 {
	t.Helper()
	return nd.metricWith(t, "lwota_cluster_handover_requests_total", `direction="sent"`, `result="ok"`)
}

// metricWith is metric restricted to the samples whose labels contain every one of labels.
func (n *node) metricWith(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, s := range n.samples(t, name) {
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(s.labels, l)
		}
		if ok {
			sum += s.value
		}
	}
	return sum
}
