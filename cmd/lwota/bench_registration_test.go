package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkRegistrations guards issue 16's registration goals in `make bench`: it runs what
// `lwota bench --client raw --postgres auto` runs (3 rounds per server of 10,000 new devices that
// register, then 3 rounds of one Update from each device of the last, 256 in flight, from bare
// datagrams sent by child processes, against lwota serve over SQLite and over a durable
// PostgreSQL cluster of its own (fsync and synchronous_commit on), both in this process and
// measured alternately) and libcoap's in-memory Resource Directory, and reports SQLite's median
// registrations/s and updates/s, the server's CPU per registration and its ratio to libcoap's,
// and the PostgreSQL/SQLite ratios as the median of the per-pair ratios. The goals on the
// 2-core reference machine: 10,000 registrations/s and 20,000 updates/s on SQLite, PostgreSQL
// at 0.8x SQLite. Every acknowledgement follows its commit. One iteration is the whole run, so
// ns/op means nothing; a missing libcoap or PostgreSQL drops its figures (logged).
func BenchmarkRegistrations(b *testing.B) {
	b.Setenv(readmeCLIEnv, "1") // the child `lwota sim` is this test binary acting as the CLI
	ctx := context.Background()
	cfg := benchConfig{Devices: 10000, Concurrency: 256, Rounds: 3, UpdateRounds: 3, Updates: 1, CoapRD: "coap-rd-notls", Client: "raw"}
	for b.Loop() {
		if rd, err := benchCoapRD(ctx, cfg, io.Discard); err != nil {
			b.Logf("libcoap baseline skipped: %v", err)
		} else {
			b.ReportMetric(float64(rd.CPUPerReg)/float64(time.Microsecond), "rd-cpu-µs/reg")
		}
		targets := []benchTarget{{Name: "SQLite"}}
		if db, err := startBenchPostgres(ctx); err != nil {
			b.Logf("PostgreSQL run skipped: %v", err)
		} else {
			defer db.Stop()
			targets = append(targets, benchTarget{Name: "PostgreSQL", Database: db.DSN, DBCPU: db.CPU})
		}
		_, res, err := benchRounds(ctx, cfg, targets, io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		micros := func(rs []roundResult, of func(roundResult) time.Duration) float64 {
			return durations(rs, of).Median / float64(time.Microsecond)
		}
		cpu := func(r roundResult) time.Duration { return r.CPU }
		dbCPU := func(r roundResult) time.Duration { return r.DBCPU }
		b.ReportMetric(spreadOf(rates(res.Regs[0])).Median, "sqlite-regs/s")
		b.ReportMetric(spreadOf(rates(res.Updates[0])).Median, "sqlite-updates/s")
		b.ReportMetric(micros(res.Regs[0], cpu), "cpu-µs/reg")
		if len(targets) < 2 {
			continue
		}
		regs, _, _ := pairRatios(rates(res.Regs[0]), rates(res.Regs[1]), benchPGGoal)
		ups, _, _ := pairRatios(rates(res.Updates[0]), rates(res.Updates[1]), benchPGGoal)
		b.ReportMetric(regs.Median, "pg/sqlite-regs")
		b.ReportMetric(ups.Median, "pg/sqlite-updates")
		b.ReportMetric(micros(res.Regs[1], cpu), "pg-lwota-cpu-µs/reg")
		b.ReportMetric(micros(res.Regs[1], dbCPU), "pg-db-cpu-µs/reg")
		b.ReportMetric(micros(res.Updates[1], dbCPU), "pg-db-cpu-µs/update")
	}
	b.ReportMetric(0, "ns/op")
}
