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

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// benchPostgresAuto is the --postgres value that makes `lwota bench` start a PostgreSQL
// cluster of its own for the run.
const benchPostgresAuto = "auto"

// startBenchPostgres starts a throwaway PostgreSQL cluster for a benchmark, in a new temporary
// directory, listening on 127.0.0.1 on a free port, with PostgreSQL's durable defaults (fsync
// and synchronous_commit on, unlike the test clusters of storage/pgtest): a registration is
// acknowledged after its commit reached the disk, as in production. As root it runs as the
// postgres user (PostgreSQL refuses root). stop shuts it down and removes the directory.
// pg_ctl waits at most a minute for the server.
func startBenchPostgres(ctx context.Context) (dsn string, stop func(), err error) {
	initdb, err := sysdeps.Lookup("initdb")
	if err != nil {
		return "", nil, fmt.Errorf("bench: --postgres auto: %w", err)
	}
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		initdb = real
	}
	bin := filepath.Dir(initdb)
	dir, err := os.MkdirTemp("", "lwota-bench-pg-")
	if err != nil {
		return "", nil, err
	}
	run := func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		runuser, err := sysdeps.Lookup("runuser")
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("bench: --postgres auto as root needs runuser: %w", err)
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("bench: --postgres auto as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		run = func(name string, args ...string) *exec.Cmd {
			return exec.Command(runuser, append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	if err := ctx.Err(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("bench: initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c max_connections=100", dir, port)
	if out, err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("bench: pg_ctl start: %v\n%s", err, out)
	}
	stop = func() {
		// Not under ctx: the cluster must stop even when the benchmark was interrupted.
		_ = run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop").Run()
		os.RemoveAll(dir)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), stop, nil
}
