package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// benchPostgresAuto is the --postgres value that makes `lwota bench` start a PostgreSQL
// cluster of its own for the run.
const benchPostgresAuto = "auto"

// benchPostgres is a throwaway PostgreSQL cluster of a benchmark (startBenchPostgres).
type benchPostgres struct {
	DSN  string
	data string
	// Stop shuts the cluster down and removes its directory.
	Stop func()
}

// CPU is the CPU time (user and system) the cluster's processes spent so far: the postmaster's
// own, that of the children it reaped (a backend whose connection closed) and that of its
// living children (backends, WAL writer, checkpointer, autovacuum), read from /proc (Linux; 0
// elsewhere). PostgreSQL's CPU per registration is a part of the server's cost that lwota's own
// process CPU does not show.
func (pg *benchPostgres) CPU() time.Duration {
	b, err := os.ReadFile(filepath.Join(pg.data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	total := procCPU(pm) + procChildrenCPU(pm)
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pm, pm))
	if err != nil {
		return total
	}
	for _, f := range strings.Fields(string(kids)) {
		if pid, err := strconv.Atoi(f); err == nil {
			total += procCPU(pid)
		}
	}
	return total
}

// procChildrenCPU is the CPU time of the children process pid waited for (cutime and cstime in
// /proc/PID/stat).
func procChildrenCPU(pid int) time.Duration { return procStatTicks(pid, 13, 14) }

// startBenchPostgres starts a throwaway PostgreSQL cluster for a benchmark, in a new temporary
// directory, listening on 127.0.0.1 on a free port, with PostgreSQL's durable defaults (fsync
// and synchronous_commit on, unlike the test clusters of storage/pgtest): a registration is
// acknowledged after its commit reached the disk, as in production. As root it runs as the
// postgres user (PostgreSQL refuses root). Stop shuts it down and removes the directory.
// pg_ctl waits at most a minute for the server.
func startBenchPostgres(ctx context.Context) (*benchPostgres, error) {
	initdb, err := sysdeps.Lookup("initdb")
	if err != nil {
		return nil, fmt.Errorf("bench: --postgres auto: %w", err)
	}
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		initdb = real
	}
	bin := filepath.Dir(initdb)
	dir, err := os.MkdirTemp("", "lwota-bench-pg-")
	if err != nil {
		return nil, err
	}
	run := func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		runuser, err := sysdeps.Lookup("runuser")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: --postgres auto as root needs runuser: %w", err)
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: --postgres auto as root needs a postgres user: %w", err)
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
	if err := ctx.Err(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c max_connections=100", dir, port)
	if out, err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: pg_ctl start: %v\n%s", err, out)
	}
	stop := func() {
		// Not under ctx: the cluster must stop even when the benchmark was interrupted.
		_ = run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop").Run()
		os.RemoveAll(dir)
	}
	return &benchPostgres{DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), data: data, Stop: stop}, nil
}
