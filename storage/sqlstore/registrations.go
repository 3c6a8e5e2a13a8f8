package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// SaveRegistration inserts or replaces the registration of r.Endpoint and returns once it is
// committed. Every field is stored, Addr included, except Labels: they are the operator's and
// change only through SetLabels.
func (s *Store) SaveRegistration(ctx context.Context, r *registration.Registration) error {
	if r == nil || r.Endpoint == "" {
		return errors.New("sqlstore: save registration: no endpoint")
	}
	args, err := registrationArgs(r)
	if err != nil {
		return fmt.Errorf("sqlstore: save registration %s: %w", r.Endpoint, err)
	}
	stmts := []stmt{{s.q.saveRegistration, args}}
	if o, ok, err := s.ownerStmt(r); err != nil {
		return fmt.Errorf("sqlstore: save registration %s: owner: %w", r.Endpoint, err)
	} else if ok {
		stmts = append(stmts, o) // the device's owner is stored before its Register is answered
	}
	register := r.ID != "" && r.DeregisteredAt.IsZero()
	if last, ok := s.queued.Get(r.Endpoint); r.ID != "" && !(register && ok && last == r.ID) {
		// A Register or De-register queues its webhook deliveries in the same transaction. An
		// Update of a registration whose Register this store queued already would queue
		// nothing (same delivery ids): it skips the statement, the hot path of a large fleet.
		out, err := s.registrationOutbox(r)
		if err != nil {
			return fmt.Errorf("sqlstore: save registration %s: %w", r.Endpoint, err)
		}
		stmts = append(stmts, out)
	}
	if err := s.w.do(ctx, r.Endpoint, stmts...); err != nil {
		return fmt.Errorf("sqlstore: save registration %s: %w", r.Endpoint, err)
	}
	if register {
		s.queued.Add(r.Endpoint, r.ID)
	} else {
		s.queued.Remove(r.Endpoint)
	}
	return nil
}

// TouchRegistration stores the times and the source address of an Update that changed nothing
// else (registration.Toucher): five columns instead of the whole row, so that no JSON is encoded
// and fewer values are bound. It returns once committed; registration.ErrNotFound when the row
// of r.Endpoint does not hold the id r.ID.
func (s *Store) TouchRegistration(ctx context.Context, r *registration.Registration) error {
	if r == nil || r.Endpoint == "" {
		return errors.New("sqlstore: touch registration: no endpoint")
	}
	stmts, err := s.touchStmts(r, false)
	if err != nil {
		return fmt.Errorf("sqlstore: touch registration %s: %w", r.Endpoint, err)
	}
	if err := s.w.doMatch(ctx, r.Endpoint, registration.ErrNotFound, stmts...); err != nil {
		return fmt.Errorf("sqlstore: touch registration %s: %w", r.Endpoint, err)
	}
	return nil
}

// errNoSecMissed is the error of a NoSec touch that changed no row: the endpoint has a credential
// or no row holds the id, which TouchRegistrationNoSec then reads to tell apart.
var errNoSecMissed = errors.New("no registration row without a credential")

// TouchRegistrationNoSec is TouchRegistration for an Update from a peer without a security
// identity (registration.NoSecToucher): the touch's own statement leaves the row alone when the
// endpoint has a credential in device_credentials (noCredential), so the check is atomic with
// the write, and a batch of such Updates is still one merged statement on PostgreSQL. Only a
// touch that changed nothing, the rare case, reads the credential to tell
// registration.ErrSecuredEndpoint from registration.ErrNotFound.
func (s *Store) TouchRegistrationNoSec(ctx context.Context, r *registration.Registration) error {
	if r == nil || r.Endpoint == "" {
		return errors.New("sqlstore: touch registration: no endpoint")
	}
	stmts, err := s.touchStmts(r, true)
	if err != nil {
		return fmt.Errorf("sqlstore: touch registration %s: %w", r.Endpoint, err)
	}
	err = s.w.doMatch(ctx, r.Endpoint, errNoSecMissed, stmts...)
	if errors.Is(err, errNoSecMissed) {
		has, herr := s.deviceCredentials().HasCredential(ctx, r.Endpoint)
		switch {
		case herr != nil:
			err = fmt.Errorf("%w; then %w", err, herr)
		case has:
			err = registration.ErrSecuredEndpoint
		default:
			err = registration.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: touch registration %s: %w", r.Endpoint, err)
	}
	return nil
}

// SaveDeviceInfo stores the device attributes of r (registration.InfoSaver): an UPDATE of the
// four columns and the firmware key of the row of r.Endpoint that holds the id r.ID, instead of
// the whole-row upsert of 24 values, its JSON and the webhook outbox. It returns once committed;
// registration.ErrNotFound when no row of r.Endpoint holds r.ID.
func (s *Store) SaveDeviceInfo(ctx context.Context, r *registration.Registration) error {
	if r == nil || r.Endpoint == "" {
		return errors.New("sqlstore: save device info: no endpoint")
	}
	args := []any{r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType, firmwareKey(r.FirmwareVersion), r.Endpoint, r.ID}
	if err := s.w.doMatch(ctx, r.Endpoint, registration.ErrNotFound, stmt{s.q.saveInfo, args}); err != nil {
		return fmt.Errorf("sqlstore: save device info of %s: %w", r.Endpoint, err)
	}
	return nil
}

// touchStmts are the statements of r's touch, the touch last (doMatch checks it); nosec makes
// it TouchRegistrationNoSec's.
func (s *Store) touchStmts(r *registration.Registration, nosec bool) ([]stmt, error) {
	// nanos rather than timeArgs: no slice of times to allocate on the path of every Update
	updated, err := nanos(r.UpdatedAt)
	if err != nil {
		return nil, err
	}
	seen, err := nanos(r.LastSeen)
	if err != nil {
		return nil, err
	}
	expires, err := nanos(r.ExpiresAt())
	if err != nil {
		return nil, err
	}
	addr := ""
	if r.Addr.AddrPort.IsValid() {
		addr = r.Addr.AddrPort.String()
	}
	args := []any{updated, seen, expires, string(r.Addr.Network), addr, r.Endpoint, r.ID}
	touch, owned := s.q.touchRegistration, s.q.touchOwned
	if nosec {
		touch, owned = s.q.touchNoSec, s.q.touchOwnedNoSec
	}
	stmts := []stmt{{touch, args}}
	o, ok, err := s.ownerStmt(r)
	switch {
	case err != nil:
		return nil, fmt.Errorf("owner: %w", err)
	case ok && o.query == s.q.saveOwner && owned != "":
		return []stmt{{owned, append(args, o.args[1:]...)}}, nil // one statement: see touchOwnedQueries
	case ok:
		return []stmt{o, stmts[0]}, nil // doMatch checks the last statement: the touch
	}
	return stmts, nil
}

// LoadRegistrations returns every registration that is not de-registered, ordered by endpoint,
// without labels: the registry keeps them out of memory.
func (s *Store) LoadRegistrations(ctx context.Context) ([]*registration.Registration, error) {
	regs, err := s.queryRegistrations(ctx, s.q.loadRegistrations)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: load registrations: %w", err)
	}
	return regs, nil
}

// GetRegistration returns the registration of endpoint with its labels, de-registered or not, or
// an error matching registration.ErrNotFound.
func (s *Store) GetRegistration(ctx context.Context, endpoint string) (*registration.Registration, error) {
	rows, err := s.query(ctx, s.q.getRegistration, endpoint)
	var regs []*registration.Registration
	if err == nil {
		regs, err = collectLabelled(rows)
	}
	if err == nil && len(regs) == 0 {
		err = registration.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get registration %s: %w", endpoint, err)
	}
	return regs[0], nil
}

// RegistrationByID returns the registration whose location id is id, without labels, or an
// error matching registration.ErrNotFound (registration.IDFinder: in a cluster, an Update may
// reach a node other than the one the device registered at).
func (s *Store) RegistrationByID(ctx context.Context, id string) (*registration.Registration, error) {
	regs, err := s.queryRegistrations(ctx, s.q.registrationByID, id)
	if err == nil && len(regs) == 0 {
		err = registration.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: registration %s: %w", id, err)
	}
	return regs[0], nil
}

// StoredInfo returns the device attributes of endpoint's stored registration
// (registration.InfoStore), or an error matching registration.ErrNotFound: four columns by
// primary key, for every Register of a device that is not live.
func (s *Store) StoredInfo(ctx context.Context, endpoint string) (*registration.Registration, error) {
	if s.storedInfo != nil {
		r, ok, err := s.storedInfo.get(ctx, endpoint)
		if err == nil && !ok {
			err = registration.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("sqlstore: stored info of %s: %w", endpoint, err)
		}
		cp := *r // lookups of one endpoint in one batch share the row
		return &cp, nil
	}
	r := &registration.Registration{Endpoint: endpoint}
	err := s.queryRow(s.pointRead(ctx), s.q.storedInfo, endpoint).Scan(&r.Manufacturer, &r.Model, &r.FirmwareVersion, &r.DeviceType)
	if errors.Is(err, sql.ErrNoRows) {
		err = registration.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: stored info of %s: %w", endpoint, err)
	}
	return r, nil
}

// ListRegistrations returns the registrations matching f with their labels, ordered by endpoint
// (or f.Sort, then endpoint), in one query. A zero f.Now means the current time.
func (s *Store) ListRegistrations(ctx context.Context, f registration.Filter) ([]*registration.Registration, error) {
	q, args, err := s.listQuery(f)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list registrations: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list registrations: %w", err)
	}
	regs, err := collectLabelled(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list registrations: %w", err)
	}
	return regs, nil
}

// CountRegistrations counts the registrations matching f, cursor, limit and sort aside: the
// total of a paged device list.
func (s *Store) CountRegistrations(ctx context.Context, f registration.Filter) (int, error) {
	f.After, f.AfterSort, f.Limit, f.Sort = "", "", 0, ""
	where, args, err := s.listWhere(f)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: count registrations: %w", err)
	}
	q := "SELECT COUNT(*) FROM registrations"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	var n int
	if err := s.db.QueryRowContext(ctx, s.dialect.rebind(q), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlstore: count registrations: %w", err)
	}
	return n, nil
}

// sortColumns are the SQL expressions of the sort keys. firmware_key is the bare column, so
// that the (firmware_key, endpoint) index serves the order and the cursor's range: it is never
// NULL once Open has back-filled it (every save writes it). last_seen may be NULL (a
// registration never seen): COALESCE makes that the lowest value on both databases, at the cost
// of a sort (there is no last_seen index: it changes on every uplink).
var sortColumns = map[registration.SortKey]string{
	registration.SortFirmware: "firmware_key",
	registration.SortModel:    "model",
	registration.SortLastSeen: "COALESCE(last_seen, 0)",
}

// outerSortColumns are sortColumns over the inner query's rows (withLabelsOrder).
var outerSortColumns = map[registration.SortKey]string{
	registration.SortFirmware: "r.firmware_key",
	registration.SortModel:    "r.model",
	registration.SortLastSeen: "COALESCE(r.last_seen, 0)",
}

// listQuery turns f into SQL that the indexes serve: the endpoint prefix is a range on the
// primary key, Online a comparison on expires_at, the object a LIKE on ",id," in object_ids,
// each label a lookup in device_labels by (key, value), a version comparison a range on
// firmware_key. The page of registrations is selected first and then joined with its labels
// (withLabels), so LIMIT counts registrations.
func (s *Store) listQuery(f registration.Filter) (string, []any, error) {
	where, args, err := s.listWhere(f)
	if err != nil {
		return "", nil, err
	}
	dir, cmp := "", ">"
	if f.Desc {
		dir, cmp = " DESC", "<"
	}
	col, sorted := sortColumns[f.Sort]
	if f.After != "" {
		switch {
		case !sorted:
			where = append(where, "endpoint "+cmp+" ?")
			args = append(args, f.After)
		default:
			var v any = f.AfterSort
			if f.Sort == registration.SortLastSeen {
				n, err := strconv.ParseInt(f.AfterSort, 10, 64)
				if err != nil {
					return "", nil, fmt.Errorf("sort cursor %q is not a time", f.AfterSort)
				}
				v = n
			}
			where = append(where, "("+col+" "+cmp+" ? OR ("+col+" = ? AND endpoint "+cmp+" ?))")
			args = append(args, v, v, f.After)
		}
	}
	var b strings.Builder
	b.WriteString(s.q.selectRegistrations)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	order := "endpoint" + dir
	if sorted {
		order = col + dir + ", " + order
	}
	b.WriteString(" ORDER BY " + order)
	if f.Limit > 0 {
		b.WriteString(" LIMIT ?")
		args = append(args, f.Limit)
	}
	outer := "r.endpoint" + dir
	if sorted {
		outer = outerSortColumns[f.Sort] + dir + ", " + outer
	}
	if f.Brief {
		return s.dialect.rebind(withLabelsColumns(b.String(), outer, briefColumns)), args, nil
	}
	return s.dialect.rebind(withLabelsOrder(b.String(), outer)), args, nil
}

// listWhere is the WHERE conditions of f but its cursor.
func (s *Store) listWhere(f registration.Filter) ([]string, []any, error) {
	var (
		where []string
		args  []any
	)
	if f.EndpointPrefix != "" {
		where = append(where, "endpoint >= ?")
		args = append(args, f.EndpointPrefix)
		if end, ok := prefixEnd(f.EndpointPrefix); ok {
			where = append(where, "endpoint < ?")
			args = append(args, end)
		}
	}
	if f.Online != nil {
		now := f.Now
		if now.IsZero() {
			now = time.Now()
		}
		n, err := nanos(now)
		if err != nil {
			return nil, nil, err
		}
		if *f.Online {
			where = append(where, "deregistered_at IS NULL AND expires_at > ?")
		} else {
			where = append(where, "(deregistered_at IS NOT NULL OR expires_at IS NULL OR expires_at <= ?)")
		}
		args = append(args, n.Int64)
	}
	if f.ObjectID != nil {
		where = append(where, "object_ids LIKE ?")
		args = append(args, "%,"+strconv.Itoa(int(*f.ObjectID))+",%")
	}
	if f.FirmwareVersion != "" || f.FirmwareOp != "" {
		switch f.FirmwareOp {
		case "", "=":
			where = append(where, "firmware_version = ?")
			args = append(args, f.FirmwareVersion)
		case "!=":
			where = append(where, "firmware_version <> ? AND firmware_version <> ''")
			args = append(args, f.FirmwareVersion)
		case "<", "<=", ">", ">=":
			key, ok := registration.VersionKey(f.FirmwareVersion)
			if !ok {
				return nil, nil, fmt.Errorf("firmware %s %q: not a version that orders", f.FirmwareOp, f.FirmwareVersion)
			}
			where = append(where, "firmware_key <> '' AND firmware_key "+f.FirmwareOp+" ?")
			args = append(args, key)
		default:
			return nil, nil, fmt.Errorf("unknown firmware comparison %q", f.FirmwareOp)
		}
	}
	for _, eq := range []struct{ col, v string }{
		{"manufacturer", f.Manufacturer},
		{"model", f.Model},
		{"device_type", f.DeviceType},
	} {
		if eq.v != "" {
			where = append(where, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	keys := make([]string, 0, len(f.Labels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same filter gives the same SQL
	for _, k := range keys {
		where = append(where, "endpoint IN (SELECT endpoint FROM device_labels WHERE key = ? AND value = ?)")
		args = append(args, k, f.Labels[k])
	}
	return where, args, nil
}

// prefixEnd returns the smallest string greater than every string that starts with prefix, so
// that [prefix, end) is the prefix's range. It increments the last code point (UTF-8 byte order is
// code point order); ok is false when no such bound exists.
func prefixEnd(prefix string) (string, bool) {
	if !utf8.ValidString(prefix) {
		b := []byte(prefix)
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] < 0xff {
				b[i]++
				return string(b[:i+1]), true
			}
		}
		return "", false
	}
	for p := prefix; p != ""; {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		if r == utf8.MaxRune {
			continue
		}
		r++
		if r >= 0xD800 && r <= 0xDFFF { // surrogates are not valid in UTF-8
			r = 0xE000
		}
		return p + string(r), true
	}
	return "", false
}

func (s *Store) queryRegistrations(ctx context.Context, q string, args ...any) ([]*registration.Registration, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanRegistration)
}

// registrationArgs encodes r in the order of registrationColumns.
func registrationArgs(r *registration.Registration) ([]any, error) {
	formats, err := jsonText(r.ContentFormats)
	if err != nil {
		return nil, fmt.Errorf("content formats: %w", err)
	}
	objects, err := jsonText(r.Objects)
	if err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	times, err := timeArgs(r.RegisteredAt, r.UpdatedAt, r.LastSeen, r.DeregisteredAt)
	if err != nil {
		return nil, err
	}
	var expires sql.NullInt64
	if !r.UpdatedAt.IsZero() {
		if expires, err = nanos(r.ExpiresAt()); err != nil {
			return nil, err
		}
	}
	addr := ""
	if r.Addr.AddrPort.IsValid() {
		addr = r.Addr.AddrPort.String()
	}
	return []any{
		r.Endpoint, r.ID, r.Version, int64(r.Lifetime), r.Binding, r.QueueMode, r.SMSNumber,
		r.RootPath, formats, objects, objectIDs(r), string(r.Addr.Network), addr, r.Identity,
		times[0], times[1], times[2], times[3], expires,
		r.FirmwareVersion, r.Manufacturer, r.Model, r.DeviceType, firmwareKey(r.FirmwareVersion),
	}, nil
}

// firmwareKey is the firmware_key column of a version: ” when it has no key (never NULL once
// computed; NULL marks rows the backfill has yet to do).
func firmwareKey(v string) string {
	k, _ := registration.VersionKey(v)
	return k
}

// backfillBatch is how many registrations backfillFirmwareKeys updates per write.
const backfillBatch = 500

// backfillFirmwareKeys computes firmware_key for rows stored before migration 00009 added it
// (NULL), a batch at a time so that a large fleet never sits in memory at once. Each row is done
// once: a version without a key gets ”, not NULL.
func (s *Store) backfillFirmwareKeys(ctx context.Context) error {
	sel := s.dialect.rebind("SELECT endpoint, firmware_version FROM registrations WHERE firmware_key IS NULL ORDER BY endpoint LIMIT ?")
	upd := s.dialect.rebind("UPDATE registrations SET firmware_key = ? WHERE endpoint = ? AND firmware_version = ?")
	for {
		rows, err := s.db.QueryContext(ctx, sel, backfillBatch)
		if err != nil {
			return fmt.Errorf("sqlstore: backfill firmware keys: %w", err)
		}
		var stmts []stmt
		for rows.Next() {
			var ep, v string
			if err := rows.Scan(&ep, &v); err != nil {
				rows.Close()
				return fmt.Errorf("sqlstore: backfill firmware keys: %w", err)
			}
			stmts = append(stmts, stmt{upd, []any{firmwareKey(v), ep, v}})
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlstore: backfill firmware keys: %w", err)
		}
		if len(stmts) == 0 {
			return nil
		}
		// A row whose version changed in between was saved with its key already.
		if err := s.w.do(ctx, "backfill", stmts...); err != nil {
			return fmt.Errorf("sqlstore: backfill firmware keys: %w", err)
		}
		if len(stmts) < backfillBatch {
			return nil
		}
	}
}

// objectIDs renders the distinct object ids of r's object list as ",1,3,5,".
func objectIDs(r *registration.Registration) string {
	ids := make([]int, 0, len(r.Objects))
	for _, o := range r.Objects {
		if o.Path.Len() >= 1 {
			ids = append(ids, int(o.Path.ObjectID()))
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var b strings.Builder
	b.WriteByte(',')
	for _, id := range ids {
		b.WriteString(strconv.Itoa(id))
		b.WriteByte(',')
	}
	return b.String()
}

// registrationRow is one row of registrationColumns as scanned; decode finishes it.
type registrationRow struct {
	r                                         registration.Registration
	lifetime                                  int64
	formats, objects, ids, network, addr      string
	registered, updated, seen, dereg, expires sql.NullInt64
	firmwareKey                               sql.NullString // only for sorting in SQL
}

// dest lists the scan destinations in the order of registrationColumns.
func (row *registrationRow) dest() []any {
	r := &row.r
	return []any{&r.Endpoint, &r.ID, &r.Version, &row.lifetime, &r.Binding, &r.QueueMode, &r.SMSNumber,
		&r.RootPath, &row.formats, &row.objects, &row.ids, &row.network, &row.addr, &r.Identity,
		&row.registered, &row.updated, &row.seen, &row.dereg, &row.expires,
		&r.FirmwareVersion, &r.Manufacturer, &r.Model, &r.DeviceType, &row.firmwareKey}
}

func (row *registrationRow) decode() (*registration.Registration, error) {
	r := &row.r
	if row.lifetime < 0 || row.lifetime > math.MaxUint32 {
		return nil, fmt.Errorf("registration %s: lifetime %d out of range", r.Endpoint, row.lifetime)
	}
	r.Lifetime = uint32(row.lifetime)
	if err := json.Unmarshal([]byte(row.formats), &r.ContentFormats); err != nil {
		return nil, fmt.Errorf("registration %s: content formats: %w", r.Endpoint, err)
	}
	if err := json.Unmarshal([]byte(row.objects), &r.Objects); err != nil {
		return nil, fmt.Errorf("registration %s: objects: %w", r.Endpoint, err)
	}
	r.Addr.Network = transport.Network(row.network)
	if row.addr != "" {
		ap, err := netip.ParseAddrPort(row.addr)
		if err != nil {
			return nil, fmt.Errorf("registration %s: addr: %w", r.Endpoint, err)
		}
		r.Addr.AddrPort = ap
	}
	r.RegisteredAt = fromNanos(row.registered)
	r.UpdatedAt = fromNanos(row.updated)
	r.LastSeen = fromNanos(row.seen)
	r.DeregisteredAt = fromNanos(row.dereg)
	return r, nil
}

// scanRegistration reads one row of registrationColumns.
func scanRegistration(sc scanner) (*registration.Registration, error) {
	var row registrationRow
	if err := sc.Scan(row.dest()...); err != nil {
		return nil, err
	}
	return row.decode()
}

// collectLabelled reads the rows of a withLabels query: each registration once per label (once,
// with a NULL label, when it has none), in endpoint order. A registration is decoded once.
func collectLabelled(rows *sql.Rows) ([]*registration.Registration, error) {
	defer rows.Close()
	var (
		out  []*registration.Registration
		last *registration.Registration
	)
	for rows.Next() {
		var (
			row        registrationRow
			key, value sql.NullString
		)
		if err := rows.Scan(append(row.dest(), &key, &value)...); err != nil {
			return nil, err
		}
		if last == nil || last.Endpoint != row.r.Endpoint {
			r, err := row.decode()
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			last = r
		}
		if key.Valid {
			if last.Labels == nil {
				last.Labels = make(map[string]string)
			}
			last.Labels[key.String] = value.String
		}
	}
	return out, rows.Err()
}
