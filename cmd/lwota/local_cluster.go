package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/nginxtest"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/s3test"
)

// localClusterConfig says what startLocalCluster runs on loopback.
type localClusterConfig struct {
	Nodes    int
	Postgres string // postgres:// URL of an empty database; empty: a throwaway PostgreSQL of its own
	S3       bool   // a versitygw of its own (bin/versitygw, `make tools`) holds the images
	Nginx    bool   // nginx's UDP balancer in front of the nodes' CoAP and CoAPS listeners
	Args     []string
	Dir      string    // data directories, logs and nginx's files; empty: a new temporary one, removed by Close
	Log      io.Writer // the nodes' output; nil: DIR/node-N.log
}

// localCluster is lwota nodes as child processes of this one (os.Executable() serve), on one
// PostgreSQL database, optionally with an S3 server and nginx in front.
type localCluster struct {
	DSN        string
	S3         s3test.Server
	Nodes      []*localNode
	LB         *nginxtest.Balancer // nil without Nginx
	AdminToken string
	Dir        string

	cleanups []func() // run in reverse order by Close
}

// localNode is one `lwota serve` process.
type localNode struct {
	Name, CoAP, CoAPS, API string
	cmd                    *exec.Cmd
	done                   chan struct{}
}

// startLocalCluster starts what cfg asks for and returns once every node answers /readyz 200.
func startLocalCluster(ctx context.Context, cfg localClusterConfig) (_ *localCluster, err error) {
	c := &localCluster{Dir: cfg.Dir}
	defer func() {
		if err != nil {
			c.Close() // what did start
		}
	}()
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "lwota-cluster-"); err != nil {
			return nil, err
		}
		dir := c.Dir
		c.cleanups = append(c.cleanups, func() { os.RemoveAll(dir) })
	}
	var tok [20]byte
	_, _ = rand.Read(tok[:])
	c.AdminToken = hex.EncodeToString(tok[:])
	var key [32]byte
	_, _ = rand.Read(key[:])

	c.DSN = cfg.Postgres
	if c.DSN == "" {
		dsn, stop, err := pgtest.StartServer(ctx)
		if err != nil {
			return nil, err
		}
		c.DSN = dsn
		c.cleanups = append(c.cleanups, stop)
	}
	env := os.Environ()
	args := append([]string{"--cluster", "--cluster-key", hex.EncodeToString(key[:]), "--admin-token", c.AdminToken}, cfg.Args...)
	if cfg.S3 {
		srv, stop, err := s3test.StartServer(ctx)
		if err != nil {
			return nil, err
		}
		c.S3 = srv
		c.cleanups = append(c.cleanups, stop)
		env = append(env, srv.Env()...)
		args = append(args, "--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region, "--s3-path-style")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for i := range cfg.Nodes {
		n, err := startLocalNode(ctx, exe, filepath.Join(c.Dir, fmt.Sprintf("node-%d", i+1)), c.DSN, fmt.Sprintf("node-%d", i+1), env, args, cfg.Log)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		c.cleanups = append(c.cleanups, n.Stop)
	}
	if cfg.Nginx {
		var coap, coaps []string
		for _, n := range c.Nodes {
			coap, coaps = append(coap, n.CoAP), append(coaps, n.CoAPS)
		}
		dir := filepath.Join(c.Dir, "nginx")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		lb, err := nginxtest.StartIn(ctx, dir, nginxtest.Upstream{Name: "coap", Backends: coap}, nginxtest.Upstream{Name: "coaps", Backends: coaps})
		if err != nil {
			return nil, err
		}
		c.LB = lb
		c.cleanups = append(c.cleanups, func() { _ = lb.Stop() })
	}
	return c, nil
}

// Close stops everything, nginx first and PostgreSQL last, and waits for each.
func (c *localCluster) Close() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
	c.cleanups = nil
}

// startLocalNode starts `exe serve` as a node named name with its data in dir, on free loopback
// ports, and waits until its /readyz answers 200.
func startLocalNode(ctx context.Context, exe, dir, dsn, name string, env, args []string, logw io.Writer) (*localNode, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	coap, err := freeLoopback("udp")
	if err != nil {
		return nil, err
	}
	coaps, err := freeLoopback("udp")
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeLoopback("tcp")
	if err != nil {
		return nil, err
	}
	n := &localNode{Name: name, CoAP: coap, CoAPS: coaps, API: "http://" + httpAddr, done: make(chan struct{})}
	all := append([]string{"serve", "--data-dir", dir, "--database", dsn, "--node-name", name, "--coap-addr", coap,
		"--coaps-addr", coaps, "--http-addr", httpAddr, "--public-url", n.API}, args...)
	n.cmd = exec.Command(exe, all...)
	n.cmd.Env = env
	out := logw
	var logf *os.File
	if out == nil {
		if logf, err = os.Create(filepath.Join(filepath.Dir(dir), name+".log")); err != nil {
			return nil, err
		}
		out = logf
	}
	n.cmd.Stdout, n.cmd.Stderr = out, out
	// The node dies with this process, however this process ends.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = n.cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(n.done)
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-n.done:
			return nil, fmt.Errorf("%s exited at start (%v); see its log", name, n.cmd.ProcessState)
		case <-ctx.Done():
			n.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := client.Get(n.API + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			n.Stop()
			return nil, fmt.Errorf("%s not ready within 2 minutes", name)
		}
	}
}

// Stop stops the node (SIGTERM; SIGKILL after a minute) and waits for it.
func (n *localNode) Stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(time.Minute):
		n.Kill()
	}
}

// Kill ends the node with SIGKILL and waits for it.
func (n *localNode) Kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Pid is the node's process id.
func (n *localNode) Pid() int { return n.cmd.Process.Pid }

// freeLoopback returns a 127.0.0.1 address with a port nobody listens on now (network udp or tcp).
func freeLoopback(network string) (string, error) {
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer pc.Close()
		return pc.LocalAddr().String(), nil
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer l.Close()
		return l.Addr().String(), nil
	}
	return "", errors.New("freeLoopback: network " + network)
}
