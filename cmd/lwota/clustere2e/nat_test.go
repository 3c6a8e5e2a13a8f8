package clustere2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/nginxtest"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/s3test"
)

// startRelayCluster is startCluster with each node's inter-node DTLS relay on a loopback port
// of its own (--node-relay-addr, with --dtls-connection-id), as docs/cluster.md asks of every
// node: nginx in front of n nodes, all on one database, with args.
func startRelayCluster(t testing.TB, n int, args ...string) *cluster {
	t.Helper()
	c := &cluster{dsn: pgtest.Start(t)}
	var coap, coaps []string
	for i := range n {
		nd := newNode(t, fmt.Sprintf("node-%d", i+1))
		c.nodes = append(c.nodes, nd)
		coap, coaps = append(coap, nd.coap), append(coaps, nd.coaps)
	}
	c.lb = nginxtest.Start(t, nginxtest.Upstream{Name: "coap", Backends: coap}, nginxtest.Upstream{Name: "coaps", Backends: coaps})
	args = append([]string{"--coap-url", "coap://" + c.lb.Addr("coap"), "--coaps-url", "coaps://" + c.lb.Addr("coaps"),
		"--trusted-proxies", "127.0.0.1", "--coap-source-rate-exempt", "none", "--dtls-connection-id"}, args...)
	for _, nd := range c.nodes {
		nd.start(t, c.dsn, append([]string{"--node-relay-addr", freeUDP(t)}, args...)...)
	}
	return c
}

// metricWith returns the sum of nd's /metrics samples of name whose labels contain label
// (e.g. `direction="out"`).
func metricWith(t testing.TB, nd *node, name, label string) float64 {
	t.Helper()
	resp, err := http.Get(nd.httpURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", nd.name, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, label) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// clusterSum is metricWith summed over the cluster's nodes.
func (c *cluster) clusterSum(t testing.TB, name, label string) float64 {
	t.Helper()
	var sum float64
	for _, nd := range c.nodes {
		sum += metricWith(t, nd, name, label)
	}
	return sum
}

// Acceptance (issue 13): a device whose source port changes (NAT rebinding) in the middle of a
// download keeps its DTLS session (connection id) and finishes. Three nodes behind nginx, which
// hashes a device by its source address and port: after the rebinding, the device's records
// usually reach another node than the one holding its session, which forwards them by the node
// id in the connection id to the owner's relay, and the owner answers back through it.
//
// Each device pulls its image over CoAPS through nginx (its own DTLS session, handshaken once)
// and moves to a new source port after 3 of 8 blocks. With several devices, nginx sends at
// least one new port to another node (each stays put with a chance near 1/3): the forwarded
// records prove the relay carried a session. No session is handshaken twice: every handshake
// the nodes counted is a Register (before the update and after the reboot into the new
// version) or one pull's.
func TestNATRebindingKeepsDTLSSessionThroughNginx(t *testing.T) {
	const devices, imageSize, blockSize = 9, 8 << 10, 1024
	srv := s3test.Start(t)
	srv.Setenv(t) // the nodes share the image store: any node serves any block
	c := startRelayCluster(t, 3, "--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region,
		"--s3-path-style", "--update-poll", "500ms")

	// Every node records its relay address, and its node id names it in cluster_nodes.
	nodes := clusterNodes(t, c.nodes[0])
	if len(nodes) != 3 {
		t.Fatalf("GET /api/v1/cluster/nodes: %+v, want 3 nodes", nodes)
	}
	for _, n := range nodes {
		if n.ForwardAddr == "" {
			t.Fatalf("node %s (%d) has no forward_addr: the relay address is not stored", n.Name, n.ID)
		}
	}
	// A node reads the others' forward addresses at its heartbeat (every 5 s): the nodes that
	// joined first learn the later ones' then.
	ctx0, cancel0 := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel0()
	waitFor(t, ctx0, func() bool {
		for _, nd := range c.nodes {
			if nd.metric(t, "lwota_cluster_relay_peers") != float64(len(c.nodes)-1) {
				return false
			}
		}
		return true
	}, func() string { return "every node to know the others' relay addresses" })

	names := make([]string, devices)
	for i := range names {
		names[i] = "nat-" + strconv.Itoa(i)
	}
	importPSKs(t, c.nodes[0], names)
	tmpl := deviceTemplate()
	tmpl.Delivery = lwm2mtest.DeliveryPull
	tmpl.Protocols = []int{lwm2mtest.ProtoCoAPS}
	// A block lost for good fails the download after 0.5+1+2+4+8 s (and the job: one attempt),
	// rather than after the template's patient 8 retries.
	tmpl.BlockTimeout, tmpl.BlockRetries = 500*time.Millisecond, 4
	all := make([]*lwm2mtest.Device, devices)
	for i, ep := range names {
		cfg := tmpl
		cfg.Endpoint, cfg.PSKIdentity, cfg.PSK = ep, "id-"+ep, pskOf(ep)
		all[i] = lwm2mtest.NewDevice(lwm2mtest.ApplyProfileNATRebinding(cfg), nil)
		t.Cleanup(func() { _ = all[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, devices)
	for i, d := range all {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = d.Start(ctx, c.lb.Addr("coaps")) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s through nginx: %v", names[i], err)
		}
	}

	body := make([]byte, imageSize)
	_, _ = rand.Read(body)
	copy(body, "LWOTA-FW 2.0.0\n")
	img := uploadImage(t, c.nodes[0], "2.0.0", body)
	// A job checks the device's model, which the node reads (/3/0) right after the Register.
	waitFor(t, ctx, func() bool {
		for _, ep := range names {
			var dev struct {
				Model string `json:"model"`
			}
			if c.nodes[0].api(t, "GET", "/api/v1/devices/"+ep, nil, &dev) != 200 || dev.Model == "" {
				return false
			}
		}
		return true
	}, func() string { return "every device's model read" })
	handshakesBefore := c.clusterSum(t, "lwota_transport_dtls_handshakes_total", `result="ok"`)
	if handshakesBefore != devices {
		t.Fatalf("%v DTLS handshakes for %d Registers", handshakesBefore, devices)
	}
	job := map[string]any{"image_id": img, "method": "pull", "policy": map[string]any{"max_attempts": 1, "block_size": blockSize}}
	for _, ep := range names {
		if code := c.nodes[0].api(t, "POST", "/api/v1/devices/"+ep+"/updates", job, nil); code != 202 {
			t.Fatalf("start the update of %s: %d", ep, code)
		}
	}

	type jobJSON struct {
		State, Reason string
	}
	lastJob := func(ep string) jobJSON {
		var list struct {
			Updates []jobJSON `json:"updates"`
		}
		c.nodes[0].api(t, "GET", "/api/v1/devices/"+ep+"/updates", nil, &list)
		if len(list.Updates) == 0 {
			return jobJSON{}
		}
		return list.Updates[0]
	}
	ctx, cancel = context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitFor(t, ctx, func() bool {
		for _, ep := range names {
			if j := lastJob(ep); j.State != "succeeded" && j.State != "failed" && j.State != "cancelled" {
				return false
			}
		}
		return true
	}, func() string {
		var s []string
		for i, ep := range names {
			s = append(s, fmt.Sprintf("%s %+v %d blocks", ep, lastJob(ep), all[i].Stats().BlocksFetched))
		}
		return "every job to end: " + strings.Join(s, "; ")
	})

	blocks := uint64((imageSize + blockSize - 1) / blockSize)
	for i, d := range all {
		st := d.Stats()
		v, _ := d.Value(lwm2m.NewPath(3, 0, 3))
		if v.Str != "2.0.0" || st.UpdatesApplied != 1 {
			t.Errorf("%s: on version %q, %d updates applied", names[i], v.Str, st.UpdatesApplied)
		}
		// The job too: after the reboot the device registers again, through nginx, often at
		// another node, while the node driving the job finds the session it read /5/0 over gone
		// (transport.ErrNoSession): it waits for the device, which the new node takes over.
		if j := lastJob(names[i]); j.State != "succeeded" {
			t.Errorf("%s: job %s (%s)", names[i], j.State, j.Reason)
		}
		// One pull, one socket move, every block once: the session carried on at the new port.
		if st.Rebinds < 1 || st.DownloadsStarted != 1 || st.BlocksFetched != blocks || st.ImagesReceived != 1 {
			t.Errorf("%s: %d rebinds, %d downloads started, %d blocks fetched (want %d), %d images",
				names[i], st.Rebinds, st.DownloadsStarted, st.BlocksFetched, blocks, st.ImagesReceived)
		}
		if st.Registrations != 2 {
			t.Errorf("%s registered %d times, want 2 (before the update, after its reboot)", names[i], st.Registrations)
		}
	}
	// A Register before and after the update, and one handshake per pull: none after a rebinding.
	if got := c.clusterSum(t, "lwota_transport_dtls_handshakes_total", `result="ok"`); got != 3*devices {
		t.Errorf("%v DTLS handshakes in all, want %d: two Registers and one pull per device", got, 3*devices)
	}
	out := c.clusterSum(t, "lwota_cluster_forwarded_records_total", `direction="out"`)
	in := c.clusterSum(t, "lwota_cluster_forwarded_records_total", `direction="in"`)
	back := c.clusterSum(t, "lwota_cluster_forwarded_records_total", `direction="back"`)
	var dropped []string
	for _, nd := range c.nodes {
		if v := metricWith(t, nd, "lwota_cluster_forwarded_records_dropped_total", ""); v > 0 {
			dropped = append(dropped, fmt.Sprintf("%s %v", nd.name, v))
		}
	}
	t.Logf("forwarded records: out %v, in %v, back %v; dropped %v", out, in, back, dropped)
	if out == 0 || in == 0 || back == 0 {
		t.Fatalf("no record went through the inter-node relay (out %v, in %v, back %v): the test proves nothing, or the relay is not wired", out, in, back)
	}
}
