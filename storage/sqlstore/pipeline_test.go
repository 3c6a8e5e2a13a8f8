package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/pgtest"
)

// TestPipelineRoundTrips checks that a PostgreSQL batch of Registers, of Updates (merged
// touches, one of them with a stale id), or of a single write commits in one round trip:
// BEGIN, the statements and COMMIT in one pipeline. A stale touch still fails alone with
// registration.ErrNotFound, having changed nothing, and the others commit; a write of several
// statements whose last must change a row still commits after the pipeline's answers (it needs
// a rollback when that row is not there).
func TestPipelineRoundTrips(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	reg := func(ep string, at time.Time) *registration.Registration {
		return &registration.Registration{ID: "id-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 60, Binding: "U",
			RegisteredAt: base, UpdatedAt: at, LastSeen: at}
	}
	save := func(t *testing.T, ep string) *write {
		args, err := registrationArgs(reg(ep, base))
		if err != nil {
			t.Fatal(err)
		}
		return &write{ctx: ctx, key: ep, stmts: []stmt{{s.q.saveRegistration, args}}, done: make(chan error, 1)}
	}
	touch := func(t *testing.T, ep, id string, at time.Time) *write {
		r := reg(ep, at)
		r.ID = id
		stmts, err := s.touchStmts(r, false)
		if err != nil {
			t.Fatal(err)
		}
		return &write{ctx: ctx, key: ep, stmts: stmts, done: make(chan error, 1), noMatch: registration.ErrNotFound}
	}
	for _, ep := range []string{"t-0", "t-1", "t-2", "t-3", "t-4", "t-5", "alone", "stale-alone"} {
		if err := s.SaveRegistration(ctx, reg(ep, base)); err != nil {
			t.Fatal(err)
		}
	}
	later := base.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		batch func(t *testing.T) []*write
		want  []error // by write
		trips int64
		// touched are the endpoints whose rows must hold later; stale those that must not.
		touched, stale []string
	}{
		{"registers", func(t *testing.T) []*write {
			return []*write{save(t, "r-0"), save(t, "r-1"), save(t, "r-2"), save(t, "r-3")}
		}, []error{nil, nil, nil, nil}, 1, nil, nil},
		{"touches", func(t *testing.T) []*write {
			return []*write{touch(t, "t-0", "id-t-0", later), touch(t, "t-1", "stale", later), touch(t, "t-2", "id-t-2", later)}
		}, []error{nil, registration.ErrNotFound, nil}, 1, []string{"t-0", "t-2"}, []string{"t-1"}},
		{"registers and touches", func(t *testing.T) []*write {
			return []*write{save(t, "r-4"), touch(t, "t-3", "id-t-3", later), save(t, "r-5"), touch(t, "t-4", "id-t-4", later)}
		}, []error{nil, nil, nil, nil}, 1, []string{"t-3", "t-4"}, nil},
		{"one touch", func(t *testing.T) []*write {
			return []*write{touch(t, "alone", "id-alone", later)}
		}, []error{nil}, 1, []string{"alone"}, nil},
		{"one stale touch", func(t *testing.T) []*write {
			return []*write{touch(t, "stale-alone", "stale", later)}
		}, []error{registration.ErrNotFound}, 1, nil, []string{"stale-alone"}},
		{"a checked write of two statements", func(t *testing.T) []*write {
			w := touch(t, "t-5", "id-t-5", later)
			w.stmts = append([]stmt{{s.q.deleteObservation, []any{"t-5", "/1"}}}, w.stmts...)
			return []*write{w, save(t, "r-6")}
		}, []error{nil, nil}, 2, []string{"t-5"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := tc.batch(t)
			c := newCommitter(s.writeDB, nil)
			c.unbounded, c.pipelined, c.merge = s.dialect.unboundedTx, s.dialect.pipelined, s.w.merge
			trips := s.w.roundTrips.Load()
			c.trips = &s.w.roundTrips
			c.commit(batch)
			for i, op := range batch {
				if err := <-op.done; !errors.Is(err, tc.want[i]) || (tc.want[i] == nil) != (err == nil) {
					t.Errorf("write %d (%s): %v, want %v", i, op.key, err, tc.want[i])
				}
			}
			if got := s.w.roundTrips.Load() - trips; got != tc.trips {
				t.Errorf("batch of %d writes took %d round trips, want %d", len(batch), got, tc.trips)
			}
			for _, ep := range append(tc.touched, tc.stale...) {
				got, err := s.GetRegistration(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				want := later
				if !slices.Contains(tc.touched, ep) {
					want = base
				}
				if !got.UpdatedAt.Equal(want) || !got.LastSeen.Equal(want) {
					t.Errorf("%s: updated %v, seen %v; want %v", ep, got.UpdatedAt, got.LastSeen, want)
				}
			}
			for _, op := range batch {
				if _, err := s.GetRegistration(ctx, op.key); err != nil {
					t.Errorf("%s after the batch: %v", op.key, err)
				}
			}
		})
	}
}

// TestPipelineOwnedTouches checks a cluster node's Updates on PostgreSQL: a touch and its owner
// row's upsert are one statement (touchOwnedQueries), so a batch of them, or a single one,
// commits in one round trip. A touch with a stale id fails alone with registration.ErrNotFound
// and leaves both its registration and its owner row (node, lease) as they were; the others
// move their owner row to this node with the renewed lease.
func TestPipelineOwnedTouches(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const grace = time.Minute
	base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	later := base.Add(time.Hour)
	reg := func(ep, id string, at time.Time) *registration.Registration {
		return &registration.Registration{ID: id, Endpoint: ep, Version: "1.1", Lifetime: 60, Binding: "U",
			RegisteredAt: base, UpdatedAt: at, LastSeen: at}
	}
	s.OwnDevices(3, grace)
	eps := []string{"o-0", "o-1", "o-2", "one", "one-stale"}
	for _, ep := range eps {
		if err := s.SaveRegistration(ctx, reg(ep, "id-"+ep, base)); err != nil {
			t.Fatal(err)
		}
	}
	s.OwnDevices(5, grace) // the devices moved to node 5
	touch := func(ep, id string) *write {
		stmts, err := s.touchStmts(reg(ep, id, later), false)
		if err != nil {
			t.Fatal(err)
		}
		return &write{ctx: ctx, key: ep, stmts: stmts, done: make(chan error, 1), noMatch: registration.ErrNotFound}
	}
	stale := map[string]bool{"o-1": true, "one-stale": true}
	for _, batch := range [][]*write{
		{touch("o-0", "id-o-0"), touch("o-1", "stale"), touch("o-2", "id-o-2")},
		{touch("one", "id-one")},
		{touch("one-stale", "stale")},
	} {
		trips := commitAsWriter(s, batch)
		for _, op := range batch {
			err := <-op.done
			if stale[op.key] != errors.Is(err, registration.ErrNotFound) || (!stale[op.key] && err != nil) {
				t.Errorf("touch of %s: %v (stale id: %v)", op.key, err, stale[op.key])
			}
		}
		if got := s.w.roundTrips.Load() - trips; got != 1 {
			t.Errorf("batch of %d owned touches took %d round trips, want 1", len(batch), got)
		}
	}
	for _, ep := range eps {
		got, err := s.GetRegistration(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		owner, err := s.DeviceOwner(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		at, node := later, uint16(5)
		if stale[ep] {
			at, node = base, 3
		}
		if !got.UpdatedAt.Equal(at) || owner.NodeID != node || !owner.LeaseUntil.Equal(at.Add(60*time.Second+grace)) {
			t.Errorf("%s: updated %v, owner node %d lease %v; want %v, node %d lease %v", ep, got.UpdatedAt, owner.NodeID,
				owner.LeaseUntil, at, node, at.Add(60*time.Second+grace))
		}
	}
}

// planTest is the set-up of the plan tests: a PostgreSQL store with three registrations, which
// grow to planRows once the statements under test have run often on the small table.
type planTest struct {
	ctx  context.Context
	dsn  string
	s    *Store
	eps  []string
	base time.Time
}

const planRows = 20000

func newPlanTest(t *testing.T) *planTest {
	t.Helper()
	p := &planTest{ctx: context.Background(), dsn: pgtest.Start(t), eps: []string{"p-0", "p-1", "p-2"},
		base: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	var err error
	if p.s, err = Open(p.ctx, p.dsn, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.s.Close() })
	for _, ep := range p.eps {
		r := &registration.Registration{ID: "id-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 60, Binding: "U",
			RegisteredAt: p.base, UpdatedAt: p.base, LastSeen: p.base, Model: "m-" + ep}
		if err := p.s.SaveRegistration(p.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// grow copies p-0 into planRows new rows, with no ANALYZE (which would drop cached plans).
func (p *planTest) grow(t *testing.T) {
	t.Helper()
	if _, err := p.s.writeDB.ExecContext(p.ctx, `INSERT INTO registrations
		SELECT (jsonb_populate_record(r, jsonb_build_object('endpoint', 'bulk-' || g, 'id', 'id-bulk-' || g))).*
		FROM registrations r CROSS JOIN generate_series(1, $1::int) g WHERE r.endpoint = 'p-0'`, planRows); err != nil {
		t.Fatal(err)
	}
}

// tableStats are PostgreSQL's counters of the registrations table.
type tableStats struct{ seq, idx, upd, ins int64 }

// stats reads the registrations table's counters until want holds (the statistics arrive
// asynchronously), for at most a minute, and returns the last read.
func (p *planTest) stats(t *testing.T, want func(tableStats) bool) tableStats {
	t.Helper()
	db, err := sql.Open("pgx", p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var st tableStats
		err := db.QueryRowContext(p.ctx, `SELECT seq_scan, COALESCE(idx_scan, 0), n_tup_upd, n_tup_ins
			FROM pg_stat_user_tables WHERE relname = 'registrations'`).Scan(&st.seq, &st.idx, &st.upd, &st.ins)
		if err != nil {
			t.Fatal(err)
		}
		if want(st) || time.Now().After(deadline) {
			return st
		}
		db.SetMaxIdleConns(0) // a new connection, which reads the statistics anew
	}
}

// TestMergedTouchPlan checks that a merged touch in the pipeline finds its rows by index even
// with a generic plan cached while the table was small (merger.byIndex): after many batches on a
// table of three rows, the table grows to 20,000 rows
// (no ANALYZE, which would drop the cached plan) and the next batches must find their rows by
// the index, with no sequential scan of registrations.
func TestMergedTouchPlan(t *testing.T) {
	p := newPlanTest(t)
	s, eps, at := p.s, p.eps, p.base
	touches := func(batches int) {
		t.Helper()
		for range batches {
			at = at.Add(time.Second)
			var batch []*write
			for _, ep := range eps {
				r := &registration.Registration{ID: "id-" + ep, Endpoint: ep, Lifetime: 60, UpdatedAt: at, LastSeen: at}
				stmts, err := s.touchStmts(r, false)
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, &write{ctx: p.ctx, key: ep, stmts: stmts, done: make(chan error, 1), noMatch: registration.ErrNotFound})
			}
			c := newCommitter(s.writeDB, nil)
			c.unbounded, c.pipelined, c.merge = s.dialect.unboundedTx, s.dialect.pipelined, s.w.merge
			c.commit(batch)
			for _, op := range batch {
				if err := <-op.done; err != nil {
					t.Fatalf("touch of %s: %v", op.key, err)
				}
			}
		}
	}
	touches(30) // more than the five custom plans after which PostgreSQL may keep a generic one
	p.grow(t)
	st0 := p.stats(t, func(st tableStats) bool { return st.upd >= 30*int64(len(eps)) && st.ins >= planRows })
	touches(10)
	want := st0.upd + 10*int64(len(eps))
	if st := p.stats(t, func(st tableStats) bool { return st.upd >= want }); st.seq != st0.seq || st.upd < want {
		t.Errorf("10 batches of touches on %d rows: %d sequential scans of registrations, %d rows updated; want none, %d",
			planRows, st.seq-st0.seq, st.upd-st0.upd, 10*len(eps))
	}
}

// TestMergedBatchPlan checks that the merged statements of a large batch (256 writes, the
// writer's most) find their rows by index on a table of 20,000 analyzed rows, with no
// sequential scan of registrations or device_credentials: a plan made for the batch's arrays
// would hash join them to a scan of the whole table, which costs PostgreSQL several times the
// rows' writes (merger.byIndex).
func TestMergedBatchPlan(t *testing.T) {
	const batchSize, batches = 256, 3
	p := newPlanTest(t)
	p.grow(t)
	if _, err := p.s.writeDB.ExecContext(p.ctx, "ANALYZE registrations; ANALYZE device_credentials"); err != nil {
		t.Fatal(err)
	}
	scans := func() (n int64) {
		t.Helper()
		if err := p.s.writeDB.QueryRowContext(p.ctx, `SELECT COALESCE(sum(seq_scan), 0) FROM pg_stat_user_tables
			WHERE relname IN ('registrations', 'device_credentials')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	st0 := p.stats(t, func(st tableStats) bool { return st.ins >= planRows })
	next := 0 // the bulk rows each case touches are its own
	for _, tc := range []struct {
		name  string
		owned bool // the store owns its devices (a cluster node): set for this case and the next
		stmts func(s *Store, r *registration.Registration) ([]stmt, error)
	}{
		{"touch", false, func(s *Store, r *registration.Registration) ([]stmt, error) { return s.touchStmts(r, false) }},
		{"nosec touch", false, func(s *Store, r *registration.Registration) ([]stmt, error) { return s.touchStmts(r, true) }},
		{"device info", false, func(s *Store, r *registration.Registration) ([]stmt, error) {
			return []stmt{{s.q.saveInfo, []any{"maker", "model", "2.0", "dt", firmwareKey("2.0"), r.Endpoint, r.ID}}}, nil
		}},
		{"owned nosec touch", true, func(s *Store, r *registration.Registration) ([]stmt, error) { return s.touchStmts(r, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owned {
				p.s.OwnDevices(5, time.Minute)
			}
			seq0 := scans()
			for b := range batches {
				at := p.base.Add(time.Duration(b+1) * time.Second)
				var batch []*write
				for range batchSize {
					next++
					ep := fmt.Sprintf("bulk-%d", next)
					r := &registration.Registration{ID: "id-" + ep, Endpoint: ep, Lifetime: 60, UpdatedAt: at, LastSeen: at}
					stmts, err := tc.stmts(p.s, r)
					if err != nil {
						t.Fatal(err)
					}
					batch = append(batch, &write{ctx: p.ctx, key: ep, stmts: stmts, done: make(chan error, 1), noMatch: registration.ErrNotFound})
				}
				commitAsWriter(p.s, batch)
				for _, op := range batch {
					if err := <-op.done; err != nil {
						t.Fatalf("%s of %s: %v", tc.name, op.key, err)
					}
				}
			}
			want := st0.upd + int64(next)
			st := p.stats(t, func(st tableStats) bool { return st.upd >= want })
			if seq := scans() - seq0; seq != 0 || st.upd < want {
				t.Errorf("%d batches of %d on %d rows: %d sequential scans, %d rows updated in all; want none, %d",
					batches, batchSize, planRows, seq, st.upd-st0.upd, next)
			}
		})
	}
}

// TestGroupReadPlan checks that a group read (StoredInfo on PostgreSQL) is planned for its keys
// (its pool's sessions run under plan_cache_mode = force_custom_plan), not by a generic plan
// cached while the table was small: after many lookups on a table of three rows, the table grows to
// 20,000 rows (no ANALYZE) and the next lookups must use the index, no sequential scan.
func TestGroupReadPlan(t *testing.T) {
	p := newPlanTest(t)
	lookups := func(n int) {
		t.Helper()
		for i := range n {
			ep := p.eps[i%len(p.eps)]
			r, err := p.s.StoredInfo(p.ctx, ep)
			if err != nil || r.Model != "m-"+ep {
				t.Fatalf("StoredInfo(%s) = %+v, %v", ep, r, err)
			}
		}
	}
	lookups(60) // more than five on each connection the readers use: PostgreSQL may cache a generic plan
	p.grow(t)
	st0 := p.stats(t, func(st tableStats) bool { return st.ins >= planRows })
	const n = 10
	lookups(n)
	st := p.stats(t, func(st tableStats) bool { return st.seq+st.idx >= st0.seq+st0.idx+n })
	if st.seq != st0.seq {
		t.Errorf("%d lookups on %d rows: %d sequential scans of registrations, %d index scans; want none", n, planRows, st.seq-st0.seq, st.idx-st0.idx)
	}
}

// TestGroupReadOneStatement checks that a group read sends PostgreSQL one statement per batch,
// the lookup itself, on sessions that plan it for its keys: the backends that answered the
// lookups last ran the SELECT (not a COMMIT, as when BEGIN, SET LOCAL plan_cache_mode and COMMIT
// surrounded it), and the group reads' pool runs under plan_cache_mode = force_custom_plan
// (TestGroupReadPlan checks what that does to the plans).
func TestGroupReadOneStatement(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	s, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	if err := s.SaveRegistration(ctx, &registration.Registration{ID: "id-a", Endpoint: "a", Version: "1.1", Lifetime: 60,
		Binding: "U", Model: "m-a", RegisteredAt: now, UpdatedAt: now, LastSeen: now}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			r, err := s.StoredInfo(ctx, "a")
			if err == nil && r.Model != "m-a" {
				err = fmt.Errorf("StoredInfo(a) = %+v", r)
			}
			errs <- err
		}()
		go func() {
			has, err := s.HasCredential(ctx, fmt.Sprintf("ep-%d", i))
			if err == nil && has {
				err = errors.New("HasCredential of an endpoint without one = true")
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for name, g := range map[string]interface{ stmts() int64 }{"StoredInfo": s.storedInfo, "HasCredential": s.credExists} {
		if got := g.stmts(); got < 1 || got > n {
			t.Errorf("%s: %d statements for %d lookups, want 1 to %d: one per batch", name, got, n, n)
		}
	}
	var mode string
	if err := s.lookupDB.QueryRowContext(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil || mode != "force_custom_plan" {
		t.Errorf("group reads' sessions: plan_cache_mode = %q, %v; want force_custom_plan", mode, err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var last []string
	found := 0
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			t.Fatal(err)
		}
		last = append(last, q)
		if strings.Contains(q, "= ANY(") {
			found++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Errorf("no backend's last statement is a lookup; their last statements: %q", last)
	}
}

// TestPipelineDeviceInfo checks that a PostgreSQL batch of device-info saves (SaveDeviceInfo)
// is merged into one UPDATE and commits in one round trip, that a save for a stale id fails
// alone with registration.ErrNotFound, having changed nothing, and that the others store their
// four attributes and nothing else.
func TestPipelineDeviceInfo(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	eps := []string{"i-0", "i-1", "i-2", "i-3"}
	for _, ep := range eps {
		r := &registration.Registration{ID: "id-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 60, Binding: "U",
			RegisteredAt: base, UpdatedAt: base, LastSeen: base}
		if err := s.SaveRegistration(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var batch []*write
	for _, ep := range eps {
		id := "id-" + ep
		if ep == "i-1" {
			id = "stale"
		}
		args := []any{"acme", "m-" + ep, "1.0", "meter", firmwareKey("1.0"), ep, id}
		batch = append(batch, &write{ctx: ctx, key: ep, stmts: []stmt{{s.q.saveInfo, args}}, done: make(chan error, 1), noMatch: registration.ErrNotFound})
	}
	if alone, groups := mergeable(batch, s.w.merge); len(alone) != 0 || len(groups) != 1 {
		t.Fatalf("a batch of %d device-info saves: %d alone, %d merged groups; want 0, 1", len(batch), len(alone), len(groups))
	}
	c := newCommitter(s.writeDB, nil)
	c.unbounded, c.pipelined, c.merge = s.dialect.unboundedTx, s.dialect.pipelined, s.w.merge
	trips := s.w.roundTrips.Load()
	c.trips = &s.w.roundTrips
	c.commit(batch)
	for _, op := range batch {
		err := <-op.done
		if op.key == "i-1" != errors.Is(err, registration.ErrNotFound) || (op.key != "i-1" && err != nil) {
			t.Errorf("device-info save of %s: %v", op.key, err)
		}
	}
	if got := s.w.roundTrips.Load() - trips; got != 1 {
		t.Errorf("a batch of device-info saves took %d round trips, want 1", got)
	}
	for _, ep := range eps {
		got, err := s.GetRegistration(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		want := "m-" + ep
		if ep == "i-1" {
			want = ""
		}
		if got.Model != want || !got.UpdatedAt.Equal(base) || got.ID != "id-"+ep {
			t.Errorf("%s after the batch: model %q, updated %v, id %s; want %q, %v, id-%s", ep, got.Model, got.UpdatedAt, got.ID, want, base, ep)
		}
	}
}

// TestPipelineNoSecTouches checks that a PostgreSQL batch of NoSec Updates' touches
// (TouchRegistrationNoSec), on a single node and on a cluster node (the touch and its owner row
// in one statement), is one merged statement committed in one round trip, the credential check
// inside it: a touch of an endpoint with a credential fails alone having changed nothing (nor its
// owner row), as does a stale id, and the others commit.
func TestPipelineNoSecTouches(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"single node", false}, {"cluster node", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, pgtest.Start(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			later := base.Add(time.Hour)
			reg := func(ep, id string, at time.Time) *registration.Registration {
				return &registration.Registration{ID: id, Endpoint: ep, Version: "1.1", Lifetime: 60, Binding: "U",
					RegisteredAt: base, UpdatedAt: at, LastSeen: at}
			}
			if tc.cluster {
				s.OwnDevices(3, time.Minute)
			}
			eps := []string{"n-0", "n-1", "n-2", "n-3"}
			for _, ep := range eps {
				if err := s.SaveRegistration(ctx, reg(ep, "id-"+ep, base)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.SaveCredential(ctx, &credentials.Sealed{Endpoint: "n-1", Identity: "id-n-1", Nonce: []byte{1}, SealedKey: []byte{2}}); err != nil {
				t.Fatal(err)
			}
			if tc.cluster {
				s.OwnDevices(5, time.Minute)
			}
			var batch []*write
			for _, ep := range eps {
				id := "id-" + ep
				if ep == "n-2" {
					id = "stale"
				}
				stmts, err := s.touchStmts(reg(ep, id, later), true)
				if err != nil {
					t.Fatal(err)
				}
				if len(stmts) != 1 {
					t.Fatalf("a NoSec touch is %d statements, want 1", len(stmts))
				}
				batch = append(batch, &write{ctx: ctx, key: ep, stmts: stmts, done: make(chan error, 1), noMatch: errNoSecMissed})
			}
			if _, groups := mergeable(batch, s.w.merge); len(groups) != 1 || len(groups[0].ops) != len(batch) {
				t.Fatalf("the batch's touches are not one merged statement: %d groups", len(groups))
			}
			trips := commitAsWriter(s, batch)
			missed := map[string]bool{"n-1": true, "n-2": true}
			for _, op := range batch {
				if err := <-op.done; missed[op.key] != errors.Is(err, errNoSecMissed) || (!missed[op.key] && err != nil) {
					t.Errorf("touch of %s: %v (missed: %v)", op.key, err, missed[op.key])
				}
			}
			if got := s.w.roundTrips.Load() - trips; got != 1 {
				t.Errorf("batch of %d NoSec touches took %d round trips, want 1", len(batch), got)
			}
			for _, ep := range eps {
				got, err := s.GetRegistration(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				at, node := later, uint16(5)
				if missed[ep] {
					at, node = base, 3
				}
				if !got.UpdatedAt.Equal(at) {
					t.Errorf("%s: updated %v, want %v", ep, got.UpdatedAt, at)
				}
				if !tc.cluster {
					continue
				}
				if owner, err := s.DeviceOwner(ctx, ep); err != nil || owner.NodeID != node {
					t.Errorf("%s: owner %+v, %v; want node %d", ep, owner, err, node)
				}
			}
		})
	}
}

// commitAsWriter commits batch as s's writer would (its dialect's transaction, pipelining and
// merging), counting round trips in the writer's counter, and returns that counter's value from
// before the commit.
func commitAsWriter(s *Store, batch []*write) int64 {
	c := newCommitter(s.writeDB, nil)
	c.unbounded, c.pipelined, c.merge, c.trips = s.dialect.unboundedTx, s.dialect.pipelined, s.w.merge, &s.w.roundTrips
	trips := s.w.roundTrips.Load()
	c.commit(batch)
	return trips
}
