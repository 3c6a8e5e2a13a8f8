package clustere2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	gobuild "go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/freeport"

	"github.com/lwota/lwota/cmd/testdeps/nginxtest"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/s3test"
)

// lwotaBin is the lwota binary TestMain builds once; every node is a process of it, so that a
// SIGKILL is a real one.
var lwotaBin string

const (
	clusterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	adminToken = "cluster-e2e-admin-token-0123456789abcdef"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lwota-clustere2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lwotaBin = filepath.Join(dir, "lwota")
	// The go command of the toolchain running these tests, as cmd/lwota's TestVersionOfABuiltBinary does.
	build := exec.Command(filepath.Join(gobuild.Default.GOROOT, "bin", "go"), "build", "-o", lwotaBin, "github.com/lwota/lwota/cmd/lwota")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build lwota:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.Stop()
	s3test.Shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one `lwota serve` process.
type node struct {
	name                 string
	coap, coaps, httpURL string // the node's own listeners (nginx forwards to the first two)
	token                string // API token; empty: adminToken
	logPath              string
	cmd                  *exec.Cmd
	done                 chan struct{}
}

// freeUDP and freeTCP return a loopback address nobody listens on now, below the kernel's
// ephemeral port range: a node binds it only later (nginx must know it first), and a port from
// that range could meanwhile be handed to any socket bound to port 0 on this busy machine
// (seen: "bind: address already in use" at a node's start). Nothing takes a port below the
// range unless asked for it by number.
func freeUDP(t testing.TB) string {
	t.Helper()
	return freeAddr(t, func(addr string) (io.Closer, error) { return net.ListenPacket("udp", addr) })
}

func freeTCP(t testing.TB) string {
	t.Helper()
	return freeAddr(t, func(addr string) (io.Closer, error) { return net.Listen("tcp", addr) })
}

func freeAddr(t testing.TB, listen func(string) (io.Closer, error)) string {
	t.Helper()
	addr, err := freeport.BelowEphemeral(listen)
	if err != nil {
		t.Fatalf("the nodes' ports: %v", err)
	}
	return addr
}

// newNode picks a node's loopback ports; start runs it.
func newNode(t testing.TB, name string) *node {
	t.Helper()
	return &node{name: name, coap: freeUDP(t), coaps: freeUDP(t), httpURL: "http://" + freeTCP(t), done: make(chan struct{})}
}

// start runs `lwota serve` as a cluster node on dsn with its own data directory and n's
// loopback ports, and returns once /readyz answers 200. It is stopped (SIGTERM) when t ends.
func (n *node) start(t testing.TB, dsn string, extra ...string) {
	t.Helper()
	dir := t.TempDir()
	n.logPath = filepath.Join(dir, "lwota.log")
	httpAddr := strings.TrimPrefix(n.httpURL, "http://")
	args := append([]string{"serve", "--data-dir", dir, "--database", dsn, "--cluster", "--cluster-key", clusterKey,
		"--node-name", n.name, "--admin-token", adminToken, "--coap-addr", n.coap, "--coaps-addr", n.coaps,
		"--http-addr", httpAddr, "--public-url", n.httpURL, "--allow-nosec", "--allow-unsigned", "--log-level", "warn"}, extra...)
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(lwotaBin, args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	go func() {
		_ = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() { n.stop(t) })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-n.done:
			t.Fatalf("node %s exited at start:\n%s", n.name, n.logTail())
		default:
		}
		if r, err := http.Get(n.httpURL + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready within 2 minutes:\n%s", n.name, n.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to end.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) stop(t testing.TB) {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(time.Minute):
		t.Errorf("node %s did not stop within a minute of SIGTERM; killed", n.name)
		n.kill()
	}
}

// logLines returns the last limit lines of n's log that name endpoint.
func (n *node) logLines(endpoint string, limit int) string {
	b, _ := os.ReadFile(n.logPath)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		// Text or JSON lines: endpoint=plain-57 or "endpoint":"plain-57".
		if strings.Contains(l, `"`+endpoint+`"`) || strings.Contains(l+" ", "="+endpoint+" ") {
			lines = append(lines, l)
		}
	}
	if len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return strings.Join(lines, "\n")
}

func (n *node) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// api calls the node's REST API as admin; out, when not nil, receives the JSON answer.
func (n *node) api(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/octet-stream"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, n.httpURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	tok := n.token
	if tok == "" {
		tok = adminToken
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s at %s: %v", method, path, n.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s at %s: %v in %s", method, path, n.name, err, raw)
		}
	}
	return resp.StatusCode
}

// metric returns the sum of the node's /metrics samples of name (every label set).
func (n *node) metric(t testing.TB, name string) float64 {
	t.Helper()
	var sum float64
	for _, s := range n.samples(t, name) {
		sum += s.value
	}
	return sum
}

// sample is one line of /metrics: its labels as written ("{a=\"b\"}", or "") and its value.
type sample struct {
	labels string
	value  float64
}

// samples returns the node's /metrics samples of name.
func (n *node) samples(t testing.TB, name string) []sample {
	t.Helper()
	resp, err := http.Get(n.httpURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		labels := ""
		if rest[0] == '{' {
			if i := strings.LastIndexByte(rest, '}'); i > 0 {
				labels = rest[:i+1]
			}
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			out = append(out, sample{labels, v})
		}
	}
	return out
}

// cluster is nodes behind one nginx, on one database.
type cluster struct {
	dsn   string
	nodes []*node
	lb    *nginxtest.Balancer
}

// startCluster starts n nodes on a new database and nginx in front of their CoAP and CoAPS
// listeners. Every node trusts nginx (127.0.0.1) as a proxy and exempts no source from the rate
// limits, so that what a node behind a balancer does with its limits is what runs here.
func startCluster(t testing.TB, n int, extra ...string) *cluster {
	t.Helper()
	return startBehindNginx(t, n, append([]string{"--trusted-proxies", "127.0.0.1", "--coap-source-rate-exempt", "none"}, extra...)...)
}

// startBehindNginx starts nginx in front of n nodes' CoAP and CoAPS ports, then the nodes with
// args on a new database. The nodes' firmware download URIs name nginx (--coap-url,
// --coaps-url), as behind any balancer: a device downloads through it, not from the node that
// happened to write its Package URI.
func startBehindNginx(t testing.TB, n int, args ...string) *cluster {
	t.Helper()
	c := &cluster{dsn: pgtest.Start(t)}
	var coap, coaps []string
	for i := range n {
		nd := newNode(t, fmt.Sprintf("node-%d", i+1))
		c.nodes = append(c.nodes, nd)
		coap, coaps = append(coap, nd.coap), append(coaps, nd.coaps)
	}
	c.lb = nginxtest.Start(t, nginxtest.Upstream{Name: "coap", Backends: coap}, nginxtest.Upstream{Name: "coaps", Backends: coaps})
	args = append([]string{"--coap-url", "coap://" + c.lb.Addr("coap"), "--coaps-url", "coaps://" + c.lb.Addr("coaps")}, args...)
	for _, nd := range c.nodes {
		nd.start(t, c.dsn, args...)
	}
	return c
}

// importPSKs stores a PSK for each endpoint through node nd: identity "id-"+endpoint, key
// pskOf(endpoint).
func importPSKs(t testing.TB, nd *node, endpoints []string) {
	t.Helper()
	type psk struct {
		Identity string `json:"identity"`
		Key      string `json:"key"`
	}
	type item struct {
		Endpoint string `json:"endpoint"`
		PSK      psk    `json:"psk"`
	}
	var body struct {
		Credentials []item `json:"credentials"`
	}
	for _, ep := range endpoints {
		body.Credentials = append(body.Credentials, item{ep, psk{"id-" + ep, hex.EncodeToString(pskOf(ep))}})
	}
	var res struct{ Imported int }
	if code := nd.api(t, "POST", "/api/v1/credentials/import", body, &res); code != 200 || res.Imported != len(endpoints) {
		t.Fatalf("import %d PSKs at %s: %d %+v", len(endpoints), nd.name, code, res)
	}
}

func pskOf(ep string) []byte { return []byte("psk-of-" + ep) }

// waitFor polls cond every 200 ms until it holds or ctx ends; then it fails with what().
func waitFor(t testing.TB, ctx context.Context, cond func() bool, what func() string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s", what())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
