package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkRegistrations guards issue 16's registration goals in `make bench`: it runs what
// `lwota bench --client raw --postgres auto` runs (10,000 new devices register, then update
// once each, 256 in flight, from bare datagrams sent by a child process, against lwota serve in
// this process) over SQLite, over a durable PostgreSQL cluster of its own (fsync and
// synchronous_commit on) and against libcoap's in-memory Resource Directory, and reports
// SQLite's registrations/s and updates/s, the server's CPU per registration and its ratio to
// libcoap's, and the PostgreSQL/SQLite ratios of the same run. The goals on the 2-core
// reference machine: 10,000 registrations/s and 20,000 updates/s on SQLite, PostgreSQL at
// 0.8x SQLite. Every acknowledgement follows its commit. One iteration is the whole run, so
// ns/op means nothing; a missing libcoap or PostgreSQL drops its figures (logged).
func BenchmarkRegistrations(b *testing.B) {
	b.Setenv(readmeCLIEnv, "1") // the child `lwota sim` is this test binary acting as the CLI
	ctx := context.Background()
	cfg := benchConfig{Devices: 10000, Concurrency: 256, Updates: 1, CoapRD: "coap-rd-notls", Client: "raw"}
	for b.Loop() {
		if rd, err := benchCoapRD(ctx, cfg, io.Discard); err != nil {
			b.Logf("libcoap baseline skipped: %v", err)
		} else {
			b.ReportMetric(float64(rd.CPUPerReg)/float64(time.Microsecond), "rd-cpu-µs/reg")
		}
		sqlite, err := benchLwota(ctx, cfg, "", "", nil, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(sqlite.Rate, "sqlite-regs/s")
		b.ReportMetric(sqlite.UpdateRate, "sqlite-updates/s")
		b.ReportMetric(float64(sqlite.CPUPerReg)/float64(time.Microsecond), "cpu-µs/reg")
		db, err := startBenchPostgres(ctx)
		if err != nil {
			b.Logf("PostgreSQL run skipped: %v", err)
			continue
		}
		pg, err := benchLwota(ctx, cfg, db.DSN, "", db.CPU, io.Discard)
		db.Stop()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(pg.Rate/sqlite.Rate, "pg/sqlite-regs")
		b.ReportMetric(pg.UpdateRate/sqlite.UpdateRate, "pg/sqlite-updates")
		b.ReportMetric(float64(pg.CPUPerReg)/float64(time.Microsecond), "pg-lwota-cpu-µs/reg")
		b.ReportMetric(float64(pg.DBCPUPerReg)/float64(time.Microsecond), "pg-db-cpu-µs/reg")
		b.ReportMetric(float64(pg.DBCPUPerUpdate)/float64(time.Microsecond), "pg-db-cpu-µs/update")
	}
	b.ReportMetric(0, "ns/op")
}
