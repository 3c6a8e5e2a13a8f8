// Package nginxtest runs nginx's stream module as a UDP load balancer in front of lwota nodes,
// as the child process of a test (or of `lwota dev cluster`), with its own config and
// directory: no system service, no root.
package nginxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// ProxyTimeout is how long nginx keeps a UDP session (one device's source address and port)
// without a datagram: longer than a registration lifetime, so that lwota's requests reach a
// device that only sends an Update now and then.
const ProxyTimeout = time.Hour

// Upstream is one UDP port of the balancer and the nodes behind it.
type Upstream struct {
	Name     string   // a word: coap, coaps
	Backends []string // host:port of each node's listener
}

// Balancer is a running nginx. Its methods are safe for concurrent use.
type Balancer struct {
	bin, module, dir, conf string

	mu      sync.Mutex
	ups     []Upstream
	listen  map[string]string // upstream name -> 127.0.0.1:port nginx listens on
	reloads int

	cmd  *exec.Cmd
	done chan struct{}
	err  error // of the process, once done is closed
}

// Start starts nginx for ups on free loopback ports, stopped when t ends. It fails the test,
// never skips it, when nginx or its stream module is missing.
func Start(t testing.TB, ups ...Upstream) *Balancer {
	t.Helper()
	bin := sysdeps.Require(t, "nginx")
	module := sysdeps.Require(t, "ngx_stream_module.so")
	b, err := start(context.Background(), bin, module, t.TempDir(), ups)
	if err != nil {
		t.Fatalf("nginxtest: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("nginxtest: %v", err)
		}
	})
	return b
}

// StartIn is Start outside a test: nginx runs in dir until Stop (or until ctx ends).
func StartIn(ctx context.Context, dir string, ups ...Upstream) (*Balancer, error) {
	bin, err := sysdeps.Lookup("nginx")
	if err != nil {
		return nil, err
	}
	module, err := sysdeps.Lookup("ngx_stream_module.so")
	if err != nil {
		return nil, err
	}
	return start(ctx, bin, module, dir, ups)
}

func start(ctx context.Context, bin, module, dir string, ups []Upstream) (*Balancer, error) {
	if len(ups) == 0 {
		return nil, errors.New("no upstream")
	}
	b := &Balancer{bin: bin, module: module, dir: dir, conf: filepath.Join(dir, "nginx.conf"), ups: slices.Clone(ups)}
	// A free port is found by binding it and letting it go; another process may take it in
	// between, so a start that fails on its ports is tried again with new ones.
	var err error
	for range 5 {
		if err = b.pickPorts(); err != nil {
			return nil, err
		}
		if err = b.writeConf(); err != nil {
			return nil, err
		}
		if err = b.run(ctx); err == nil {
			return b, nil
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	return nil, err
}

func (b *Balancer) pickPorts() error {
	b.listen = make(map[string]string, len(b.ups))
	for _, u := range b.ups {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		b.listen[u.Name] = pc.LocalAddr().String()
		pc.Close()
	}
	return nil
}

// Config returns the nginx configuration of ups listening on listen (name -> address), with
// its pid file and logs in dir: the file Start runs, and the one docs/cluster.md shows.
func Config(module, dir string, ups []Upstream, listen map[string]string) string {
	var c bytes.Buffer
	fmt.Fprintf(&c, "load_module %s;\n", module)
	fmt.Fprintf(&c, "daemon off;\npid %s;\nerror_log %s notice;\n", filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
	// One worker: a device's datagrams must all reach the same worker's session (with several,
	// reuseport would be needed); each session holds two connections (device side, node side).
	c.WriteString("worker_processes 1;\nworker_rlimit_nofile 16384;\nevents { worker_connections 8192; }\n\nstream {\n")
	for _, u := range ups {
		fmt.Fprintf(&c, "    upstream %s {\n        # the port too: on loopback, or behind one NAT, every device has the same address\n", u.Name)
		c.WriteString("        hash $remote_addr$remote_port consistent;\n")
		for _, be := range u.Backends {
			fmt.Fprintf(&c, "        server %s;\n", be)
		}
		c.WriteString("    }\n")
		fmt.Fprintf(&c, "    server {\n        listen %s udp;\n        proxy_pass %s;\n", listen[u.Name], u.Name)
		// No proxy_responses: a session carries any number of answers and of lwota's own
		// requests; it ends after proxy_timeout without a datagram either way.
		fmt.Fprintf(&c, "        proxy_timeout %ds;\n    }\n", int(ProxyTimeout/time.Second))
	}
	c.WriteString("}\n")
	return c.String()
}

func (b *Balancer) writeConf() error {
	conf := Config(b.module, b.dir, b.ups, b.listen)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

func (b *Balancer) args(extra ...string) []string {
	return append([]string{"-p", b.dir, "-c", b.conf, "-e", filepath.Join(b.dir, "error.log")}, extra...)
}

// run tests the config, starts nginx and waits until it listens on every port.
func (b *Balancer) run(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, b.bin, b.args("-t")...).CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -t: %v: %s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(b.bin, b.args()...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Its own process group: Stop signals the master, which stops its workers; a test binary
	// killed outright leaves the master to notice nothing, so Pdeathsig stops it too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	stop := context.AfterFunc(ctx, func() { _ = b.Stop() })
	_ = stop // stays armed: ctx ending stops nginx
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(b.dir, "error.log"))
			return fmt.Errorf("nginx exited: %v: %s%s", b.err, stderr.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if b.listening() {
			return nil
		}
		if time.Now().After(deadline) {
			_ = b.Stop()
			return errors.New("nginx did not open its ports within 30 s")
		}
	}
}

// listening reports whether every listen port is taken (by nginx, which was told to bind it).
func (b *Balancer) listening() bool {
	for _, a := range b.listen {
		pc, err := net.ListenPacket("udp", a)
		if err == nil {
			pc.Close()
			return false
		}
	}
	return true
}

// Addr returns the loopback address nginx listens on for the upstream name.
func (b *Balancer) Addr(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listen[name]
}

// Dir is nginx's directory (config, pid file, error.log).
func (b *Balancer) Dir() string { return b.dir }

// SetBackends replaces the nodes behind the upstream name and reloads nginx. New sessions go
// to the new set at once; sessions already open stay with their node until they expire.
func (b *Balancer) SetBackends(name string, backends []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.ups, func(u Upstream) bool { return u.Name == name })
	if i < 0 {
		return fmt.Errorf("no upstream %q", name)
	}
	b.ups[i].Backends = slices.Clone(backends)
	if err := b.writeConf(); err != nil {
		return err
	}
	return b.reload()
}

// reload sends nginx the reload signal and waits until the old worker has let go of the
// listening sockets ("gracefully shutting down"): from then on every new session is the new
// worker's, with the new config. The old worker keeps its open sessions until they expire.
// Called with b.mu held.
func (b *Balancer) reload() error {
	const mark = "gracefully shutting down"
	logPath := filepath.Join(b.dir, "error.log")
	before := countIn(logPath, mark)
	if out, err := exec.Command(b.bin, b.args("-s", "reload")...).CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -s reload: %v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for countIn(logPath, mark) <= before {
		if time.Now().After(deadline) {
			return errors.New("nginx did not reload within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.reloads++
	return nil
}

func countIn(path, s string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte(s))
}

// Stop stops nginx (a fast shutdown, SIGTERM) and waits for it. Later calls return the first
// result.
func (b *Balancer) Stop() error {
	if b.cmd == nil {
		return nil
	}
	select {
	case <-b.done:
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
	}
	var ee *exec.ExitError
	if b.err != nil && !errors.As(b.err, &ee) {
		return fmt.Errorf("nginx: %w", b.err)
	}
	return nil
}
