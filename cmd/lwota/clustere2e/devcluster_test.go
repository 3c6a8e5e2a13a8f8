package clustere2e

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// children returns the pids whose parent is pid (from /proc).
func children(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			p, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			out = append(out, p)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// `lwota dev cluster` starts PostgreSQL, versitygw, three nodes and nginx; a device registers
// through the printed CoAP address and every node's API lists it; Ctrl-C (SIGINT) stops every
// process it started, and nothing listens any more.
func TestDevCluster(t *testing.T) {
	cmd := exec.Command(lwotaBin, "dev", "cluster")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "stderr")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the process has ended; waitErr is then its Wait's error.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	got := map[string]string{}
	var apis []*node
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(4 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-exited
				b, _ := os.ReadFile(logPath)
				t.Fatalf("dev cluster ended before it was ready: %v\n%s", waitErr, b)
			}
			k, v, _ := strings.Cut(l, ": ")
			got[k] = v
			if strings.HasPrefix(k, "api ") {
				apis = append(apis, &node{name: strings.TrimPrefix(k, "api "), httpURL: v})
			}
			if k == "ready" {
				break wait
			}
		case <-timeout:
			t.Fatal("dev cluster not ready within 4 minutes")
		}
	}
	go func() {
		for range lines { // keep the pipe drained
		}
	}()
	if len(apis) != 3 {
		t.Fatalf("dev cluster printed %d API URLs, want 3: %v", len(apis), got)
	}
	for _, n := range apis {
		n.token = got["token"]
	}

	cfg := deviceTemplate()
	cfg.Endpoint = "dev-cluster-1"
	dev := lwm2mtest.NewDevice(cfg, nil)
	defer dev.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dev.Start(ctx, strings.TrimPrefix(got["coap"], "coap://")); err != nil {
		t.Fatalf("register through the printed CoAP address: %v", err)
	}
	for _, n := range apis {
		if online := listDevices(t, n); !online["dev-cluster-1"] {
			t.Errorf("%s does not list the device online", n.name)
		}
	}

	kids := children(cmd.Process.Pid)
	if len(kids) < 4 { // three nodes and nginx at least
		t.Fatalf("dev cluster has %d child processes, want the nodes and nginx", len(kids))
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("dev cluster after Ctrl-C: %v", waitErr)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("dev cluster did not stop within 3 minutes of Ctrl-C")
	}
	for _, p := range kids {
		if alive(p) {
			t.Errorf("process %d of the dev cluster still runs after Ctrl-C", p)
		}
	}
	// PostgreSQL (started by pg_ctl, not a child) and versitygw no longer listen.
	for _, k := range []string{"postgres", "s3"} {
		hostport := strings.Fields(got[k])[0]
		if i := strings.Index(hostport, "@"); i >= 0 {
			hostport = hostport[i+1:]
		}
		hostport = strings.TrimPrefix(hostport, "http://")
		if i := strings.Index(hostport, "/"); i >= 0 {
			hostport = hostport[:i]
		}
		if c, err := net.DialTimeout("tcp", hostport, time.Second); err == nil {
			c.Close()
			t.Errorf("%s (%s) still listens after Ctrl-C", k, hostport)
		}
	}
	if _, err := os.Stat(got["logs"]); !os.IsNotExist(err) {
		t.Errorf("the dev cluster's directory %s is left behind (%v)", got["logs"], err)
	}
}
