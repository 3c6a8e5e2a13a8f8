package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestBenchPostgresCPU checks that the benchmark's PostgreSQL cluster reports the CPU its
// backends spend, a connection's that has closed included (its backend exited and the
// postmaster reaped it): the part of a registration's cost lwota's own CPU does not show.
func TestBenchPostgresCPU(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg, err := startBenchPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	before := pg.CPU()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 5000000)").Scan(&n); err != nil || n != 5000000 {
		t.Fatalf("count = %d, %v", n, err)
	}
	busy := pg.CPU() - before
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Counting five million rows takes a backend several hundred milliseconds of CPU; the
	// clock ticks are 10 ms.
	const least = 100 * time.Millisecond
	if busy < least {
		t.Errorf("a backend counting 5,000,000 rows: the cluster's CPU grew by %v, want at least %v", busy, least)
	}
	// Once the backend has exited and the postmaster has reaped it, its CPU is the
	// postmaster's children's.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", backend)); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still there a minute after its connection closed", backend)
		}
	}
	if after := pg.CPU() - before; after < busy {
		t.Errorf("after the connection closed, the cluster's CPU is %v past the start, %v while it was open: its backend's CPU was lost", after, busy)
	}
}
