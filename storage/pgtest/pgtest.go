// Package pgtest gives tests a fresh, empty PostgreSQL database, on the server named by
// LWOTA_TEST_POSTGRES or in a throwaway cluster it starts once per test binary (see README.md).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// EnvServer names the environment variable holding a postgres:// URL of a server to use instead
// of a throwaway cluster. Its user must be allowed to create databases.
const EnvServer = "LWOTA_TEST_POSTGRES"

// Start returns the DSN (a postgres:// URL) of a new, empty database, dropped when t ends.
//
// Without LWOTA_TEST_POSTGRES, the first call starts a cluster in a temporary directory (as the
// postgres user when the tests run as root, since PostgreSQL refuses to run as root), listening
// on 127.0.0.1 on a free port with fsync off. A watchdog process stops it and removes the
// directory as soon as the test binary exits, however it exits; Main stops it earlier. Start
// fails the test, never skips it, when PostgreSQL cannot be found or started.
func Start(t testing.TB) string {
	t.Helper()
	admin, err := server()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := databaseName()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Main runs the tests of a package and then stops the throwaway cluster, if one was started,
// before exiting: func TestMain(m *testing.M) { pgtest.Main(m) }. Without it the watchdog stops
// the cluster right after the test binary exits.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the throwaway cluster and removes its directory, waiting for both. Later calls to
// Start fail. It does nothing when no cluster was started.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	stopped = true
	if cluster != nil {
		cluster.stop()
		cluster = nil
	}
}

var (
	mu       sync.Mutex
	adminURL string // of the server's "postgres" database
	startErr error
	started  bool
	stopped  bool
	cluster  *throwaway
	seq      atomic.Int64
)

// server returns the admin URL of the server to use, starting the throwaway cluster on first use.
func server() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if stopped {
		return "", errors.New("the throwaway cluster was stopped")
	}
	if !started {
		started = true
		if env := os.Getenv(EnvServer); env != "" {
			adminURL = env
		} else {
			cluster, startErr = startThrowaway()
			if startErr == nil {
				adminURL = cluster.url
			}
		}
	}
	return adminURL, startErr
}

func databaseName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("lwota_test_%d_%d_%s", os.Getpid(), seq.Add(1), hex.EncodeToString(b[:]))
}

func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// throwaway is a PostgreSQL cluster in a temporary directory, watched by a process that stops
// it when this process's end of a pipe closes.
type throwaway struct {
	url      string
	dir      string
	run      func(name string, args ...string) *exec.Cmd
	start    []string // pg_ctl's arguments that started the server, to start it again
	watchdog *exec.Cmd
	pipe     *os.File // our end; closing it (or exiting) tells the watchdog to clean up
}

func (c *throwaway) stop() {
	c.pipe.Close()
	_ = c.watchdog.Wait()
}

func startThrowaway() (*throwaway, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	run := func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, name), args...)
	}
	dir, err := os.MkdirTemp("", "lwota-pgtest-")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user, in a directory it owns.
		runuser, err := sysdeps.Lookup("runuser")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs runuser to start PostgreSQL as the postgres user: %w", err)
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs a postgres user to start PostgreSQL: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		run = func(name string, args ...string) *exec.Cmd {
			return exec.Command(runuser, append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	c := &throwaway{dir: dir}
	// The watchdog comes first so that whatever happens next is cleaned up.
	stop := run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
	if err := c.startWatchdog(stop.Args); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--no-locale", "--no-sync").CombinedOutput(); err != nil {
		c.stop()
		return nil, fmt.Errorf("initdb in %s: %v\n%s", dir, err, out)
	}
	var lastErr error
	for range 3 { // a free port can be taken between picking and binding it
		port, err := freePort()
		if err != nil {
			c.stop()
			return nil, err
		}
		opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off "+
			"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200", dir, port)
		log := filepath.Join(dir, "postgres.log")
		start := []string{"-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start"}
		cmd := run("pg_ctl", start...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			c.run, c.start = run, start
			c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return c, nil
		}
		logText, _ := os.ReadFile(log)
		lastErr = fmt.Errorf("pg_ctl start on port %d: %v\n%s\n%s", port, err, out, tail(string(logText), 2000))
	}
	c.stop()
	return nil, lastErr
}

// startWatchdog starts "sh" waiting for EOF on a pipe this process holds, then running stop and
// removing the directory. It has its own process group so that an interrupt of the test run
// does not kill it before it has cleaned up.
func (c *throwaway) startWatchdog(stop []string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	script := `cat >/dev/null; "$@" >/dev/null 2>&1; rm -rf "$PGTEST_DIR"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "pgtest-watchdog"}, stop...)...)
	cmd.Env = append(os.Environ(), "PGTEST_DIR="+c.dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start watchdog: %w", err)
	}
	r.Close()
	c.watchdog, c.pipe = cmd, w
	return nil
}

// findBinaries returns the directory holding initdb and pg_ctl (through a symlink in PATH, or the
// newest /usr/lib/postgresql/*/bin).
func findBinaries() (string, error) {
	p, err := sysdeps.Lookup("initdb")
	if err != nil {
		return "", fmt.Errorf("%w; or set %s to a postgres:// URL", err, EnvServer)
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	dir := filepath.Dir(p)
	if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err != nil {
		return "", fmt.Errorf("PostgreSQL: initdb at %s has no pg_ctl beside it: %w", p, err)
	}
	return dir, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Cluster is a PostgreSQL server of one test's own, which the test may stop and start again
// (an outage of the database). Tests that do not need that use Start.
type Cluster struct {
	c *throwaway
	// DSN is a postgres:// URL of an empty database on the cluster.
	DSN string
}

// Own starts a new throwaway cluster for t, removed when t ends, with one empty database.
func Own(t testing.TB) *Cluster {
	t.Helper()
	c, err := startThrowaway()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(c.stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, c.url, "CREATE DATABASE lwota"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u, err := url.Parse(c.url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/lwota"
	return &Cluster{c: c, DSN: u.String()}
}

// Stop stops the server (fast shutdown: open connections are cut) and waits until it is down.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	data := filepath.Join(c.c.dir, "data")
	if out, err := c.c.run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: stop: %v\n%s", err, out)
	}
}

// Restart starts the stopped server again on the same port and waits until it accepts connections.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if out, err := c.c.run("pg_ctl", c.c.start...).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: restart: %v\n%s", err, out)
	}
}
