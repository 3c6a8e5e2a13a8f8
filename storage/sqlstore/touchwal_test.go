package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/pgtest"
)

// maxTouchWAL is the most WAL a touched row may cost (the merged touch's statement alone, its
// page pruning included; no full-page image): about 100-110 bytes when the touch is a HOT update
// on the row's own page, which PostgreSQL logs as the bytes that differ between the old and the
// new version (the three times; the address, unchanged, is not logged), not the whole row.
const maxTouchWAL = 200

// TestTouchWAL checks what a registration Update writes to PostgreSQL's WAL when a batch touches
// every row of its pages, as the Updates of devices that registered together do (their rows
// share pages, and each renews its lifetime a lifetime after its Register): one merged touch of
// 100 rows of ~440 bytes, freshly stored, then again, logs at most maxTouchWAL bytes a row each
// time. The old versions of a batch's rows cannot be pruned before it commits, so each page
// needs room for a new version of every row it holds: with fill factor 60 (before migration
// 00019) it had room for two thirds of them, the others went to other pages with an entry in
// each of registrations' indexes, 414 bytes a row the first time, 212 the second. A touch that
// changed an indexed column (an index on last_seen or expires_at) would log as much.
func TestTouchWAL(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 100
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	regs := make([]*registration.Registration, n)
	for i := range regs {
		regs[i] = &registration.Registration{
			ID: fmt.Sprintf("id-%03d", i), Endpoint: fmt.Sprintf("urn:imei:%015d", i), Version: "1.1", Lifetime: 300,
			Binding: "U", RootPath: "/", ContentFormats: []uint16{uint16(lwm2m.FormatSenMLCBOR), uint16(lwm2m.FormatTLV)},
			Addr:         transport.Addr{Network: transport.UDP, AddrPort: netip.MustParseAddrPort("192.0.2.10:56830")},
			RegisteredAt: base, UpdatedAt: base, LastSeen: base, FirmwareVersion: "1.4.2", Model: "tracker-2",
		}
		for _, o := range []uint16{1, 3, 4, 5, 3303, 3304, 3311, 3323, 6, 7, 10, 19} {
			regs[i].Objects = append(regs[i].Objects, registration.ObjectLink{Path: lwm2m.NewPath(o, 0)})
		}
		if err := s.SaveRegistration(ctx, regs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var width float64
	if err := s.writeDB.QueryRowContext(ctx, "SELECT avg(pg_column_size(r.*)) FROM registrations r").Scan(&width); err != nil {
		t.Fatal(err)
	}
	// A checkpoint between two touches of a page makes the second log the whole page once (a
	// full-page image, some kilobytes): a round that saw one is not counted, and the touches go
	// on until three rounds saw none. Every round is one statement over all n rows, as the
	// writer merges a batch's touches.
	var counted int
	for round := 1; counted < 3; round++ {
		if round > 20 {
			t.Fatalf("%d rounds of touches, %d without a full-page image; want 3", round-1, counted)
		}
		ops := make([]*write, n)
		for i, r := range regs {
			r.UpdatedAt = base.Add(time.Duration(round) * time.Minute)
			r.LastSeen = r.UpdatedAt
			stmts, err := s.touchStmts(r, false)
			if err != nil {
				t.Fatal(err)
			}
			ops[i] = &write{stmts: stmts}
		}
		args, err := arrays(ops, 0)
		if err != nil {
			t.Fatal(err)
		}
		wal := explainWAL(ctx, t, s, s.q.touchMerge.query, args)
		t.Logf("round %d: %d rows of %.0f bytes: %d WAL records, %d full-page images, %d bytes: %.0f bytes a row",
			round, wal.Rows, width, wal.Records, wal.FPI, wal.Bytes, float64(wal.Bytes)/float64(n))
		if wal.Rows != n {
			t.Fatalf("round %d: the touch changed %d rows; want %d", round, wal.Rows, n)
		}
		if wal.FPI > 0 {
			continue
		}
		counted++
		if wal.Bytes > maxTouchWAL*n {
			t.Errorf("round %d: the touch of %d rows wrote %d bytes of WAL, %d a row; want at most %d a row",
				round, n, wal.Bytes, wal.Bytes/n, maxTouchWAL)
		}
	}
}

// walUsage is the WAL a statement wrote, as EXPLAIN (ANALYZE, WAL) counts it, and the rows it
// returned.
type walUsage struct {
	Rows    int   `json:"Actual Rows"`
	Records int64 `json:"WAL Records"`
	FPI     int64 `json:"WAL FPI"`
	Bytes   int64 `json:"WAL Bytes"`
}

// explainWAL runs a merged statement (merger.byIndex) with args in a transaction of its own,
// under the writer's settings, and returns the WAL it wrote: its own, whatever else the
// cluster writes meanwhile.
func explainWAL(ctx context.Context, t *testing.T, s *Store, query string, args []any) walUsage {
	t.Helper()
	// The writer's connections send arrays as encoded (useEncodedArrays); so does this one.
	conn, err := s.writeDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		useEncodedArrays(dc.(*stdlib.Conn).Conn().TypeMap())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, byIndexSettings); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := tx.QueryRowContext(ctx, "EXPLAIN (ANALYZE, WAL, FORMAT JSON) "+query, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var plans []struct{ Plan walUsage }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN: %v: %s", err, out)
	}
	return plans[0].Plan
}
