package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for pgCPU's own connection
)

// pgCPU returns a function that reports the CPU time (user and system) PostgreSQL's processes
// spent since pgCPU was called: the backends and background processes of the server behind dsn
// (it runs on this machine), read from /proc. The ratio that matters on PostgreSQL is its CPU
// per row, which the client's process CPU does not show. A process that started in between
// counts from zero; one that ended is lost (the store's pool keeps its connections).
func pgCPU(tb testing.TB, dsn string) func() time.Duration {
	tb.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	sample := func() map[int]time.Duration {
		rows, err := db.QueryContext(context.Background(), "SELECT pid FROM pg_stat_activity")
		if err != nil {
			tb.Fatal(err)
		}
		defer rows.Close()
		out := map[int]time.Duration{}
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				tb.Fatal(err)
			}
			out[pid] = procCPU(pid)
		}
		return out
	}
	start := sample()
	return func() time.Duration {
		var d time.Duration
		for pid, cpu := range sample() {
			d += cpu - start[pid]
		}
		return d
	}
}

// procCPU is the utime and stime of process pid (fields 14 and 15 of /proc/pid/stat, in clock
// ticks of 1/100 s), or 0 when it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // the command may hold spaces
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(user+sys) * 10 * time.Millisecond
}

// hotShare returns the share of table's updates that were HOT (heap-only: no index entry
// written) on the database behind dsn, once PostgreSQL's statistics count at least want
// updates (a busy backend reports its counts within seconds of going idle), or after a minute.
func hotShare(tb testing.TB, dsn, table string, want int64) float64 {
	tb.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var upd, hot int64
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		err := db.QueryRowContext(context.Background(), "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&upd, &hot)
		if err != nil {
			tb.Fatal(err)
		}
		if upd >= want || time.Now().After(deadline) {
			break
		}
		db.SetMaxIdleConns(0) // a new connection, which reads the statistics anew
	}
	if upd == 0 {
		return 0
	}
	return float64(hot) / float64(upd)
}

// pgWAL returns a function that reports how many bytes of WAL the server behind dsn inserted
// since pgWAL was called (pg_current_wal_insert_lsn): every record of the cluster, commits and
// page pruning included, so it is a figure per operation only while the benchmark is the
// cluster's only writer. What a touch costs PostgreSQL besides CPU: the WAL it writes and
// flushes.
func pgWAL(tb testing.TB, dsn string) func() int64 {
	tb.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	var start string
	if err := db.QueryRowContext(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&start); err != nil {
		tb.Fatal(err)
	}
	return func() int64 {
		var n int64
		if err := db.QueryRowContext(context.Background(), "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::bigint", start).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		return n
	}
}
