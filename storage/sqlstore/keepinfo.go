package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/registration"
)

var _ registration.InfoKeeper = (*Store)(nil)

// infoColumns are the device attributes a Register carries over from the stored row
// (registration.InfoKeeper), with firmware_key, which follows firmware_version.
var infoColumns = []string{"manufacturer", "model", "firmware_version", "device_type", "firmware_key"}

// keepInfoQueries are the PostgreSQL statements of SaveRegistrationKeepingInfo: the registration
// upsert that leaves the stored row's device attributes as they are and returns them, and the
// registration outbox whose payload takes them from that row, each plain and merged over arrays
// (merge.go). The outbox's statement follows the upsert in the same transaction, so it reads the
// row the upsert left, and its payload is built as registrationOutbox builds it in Go: the
// attributes are the payload's last fields, omitted when empty.
func keepInfoQueries(d *dialect) (save, outbox string, saveMerge, outboxMerge *merger) {
	const returning = " RETURNING manufacturer, model, firmware_version, device_type"
	save = d.rebind(upsertKeeping(upsert("registrations", []string{"endpoint"}, registrationColumns), []string{"endpoint"}) + returning)
	saveMerge = &merger{key: -1, ret: 4, retKey: 0, query: upsertKeeping(upsertArrays("registrations", []string{"endpoint"},
		registrationColumns, registrationTypes), []string{"endpoint"}) + " RETURNING endpoint, manufacturer, model, firmware_version, device_type"}
	kind := events.KindRegistration
	// The stored attributes, by a lookup of the primary key per delivery queued (none when no
	// subscription wants registrations): a subquery rather than a join, so that no plan can
	// scan the table.
	payload := func(prefix, endpoint string) string {
		return prefix + " || (SELECT " + infoJSON("r") + " FROM registrations r WHERE r.endpoint = " + endpoint + ")"
	}
	outbox = d.rebind(outboxInsert + "SELECT s.id || '.' || CAST(? AS TEXT), s.id, CAST(? AS TEXT), '" + kind + "', " +
		"CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), " + payload("CAST(? AS TEXT)", "CAST($4 AS TEXT)") + ", " +
		"'pending', 0, CAST(? AS BIGINT), CAST(? AS BIGINT), 0, '', NULL " +
		"FROM webhook_subscriptions s " + outboxSubscriptions(kind) + "ON CONFLICT (id) DO NOTHING")
	outboxMerge = &merger{key: -1, query: outboxInsert + "SELECT s.id || '.' || v.id, s.id, v.event_id, '" + kind + "', v.type, v.endpoint, v.at, " +
		payload("v.payload", "v.endpoint") + ", 'pending', 0, v.next_attempt_at, v.queued_at, 0, '', NULL " +
		"FROM " + unnest([]string{"text", "text", "text", "text", "bigint", "text", "bigint", "bigint"}) +
		" AS v(id, event_id, type, endpoint, at, payload, next_attempt_at, queued_at) CROSS JOIN webhook_subscriptions s " +
		outboxSubscriptions(kind) + "ON CONFLICT (id) DO NOTHING"}
	return save, outbox, saveMerge, outboxMerge
}

// upsertKeeping drops infoColumns from the SET list of upsert q (built by upsert or
// upsertArrays over registrationColumns with key): a conflicting row keeps its own.
func upsertKeeping(q string, key []string) string {
	head, _, _ := strings.Cut(q, " DO UPDATE SET ")
	var set []string
	for _, c := range registrationColumns {
		if !isKey(c, key) && !isKey(c, infoColumns) {
			set = append(set, c+" = excluded."+c)
		}
	}
	return head + " DO UPDATE SET " + strings.Join(set, ", ")
}

// infoJSON is the SQL text that ends a registration event's payload (registrationEvent) with
// the device attributes of row alias: `,"manufacturer":"..."` and so on for each one that is
// not empty, then the closing brace, as encoding/json writes them (omitempty). to_json escapes
// a string as JSON; where its bytes differ from Go's (Go also escapes <, > and & as \u003c and
// so on), the strings are the same, and webhooks.Encode compacts the payload into the request
// body with Go's escaping, so the body's bytes are the same too.
func infoJSON(alias string) string {
	field := func(col, name string) string {
		return "CASE WHEN " + alias + "." + col + " = '' THEN '' ELSE '," + `"` + name + `":` + "' || to_json(" + alias + "." + col + ")::text END"
	}
	return field("manufacturer", "manufacturer") + " || " + field("model", "model") + " || " +
		field("firmware_version", "firmware_version") + " || '}'"
}

// SaveRegistrationKeepingInfo stores r, the Register of an endpoint that is not live, keeping
// the device attributes of its stored row, which it sets on r (registration.InfoKeeper). On
// PostgreSQL that is one write, as SaveRegistration's: the upsert leaves the row's attributes
// and returns them, and the webhook outbox takes them from the row; no read before it, which
// was a round trip of its own (the group read of StoredInfo). On SQLite the attributes are read
// first (StoredInfo, a point read in this process beside the writer) and the registration saved
// with them; a read that fails fails the Register, rather than storing it without them.
func (s *Store) SaveRegistrationKeepingInfo(ctx context.Context, r *registration.Registration) error {
	if r == nil || r.Endpoint == "" {
		return errors.New("sqlstore: save registration: no endpoint")
	}
	if s.q.saveKeep == "" {
		next := *r
		stored, err := s.StoredInfo(ctx, r.Endpoint)
		switch {
		case err == nil:
			next.Manufacturer, next.Model, next.FirmwareVersion, next.DeviceType = stored.Manufacturer, stored.Model, stored.FirmwareVersion, stored.DeviceType
		case !errors.Is(err, registration.ErrNotFound):
			return fmt.Errorf("sqlstore: save registration %s: %w", r.Endpoint, err)
		}
		if err := s.SaveRegistration(ctx, &next); err != nil {
			return err
		}
		*r = next
		return nil
	}
	stmts, err := s.keepStmts(r)
	if err != nil {
		return fmt.Errorf("sqlstore: save registration %s: %w", r.Endpoint, err)
	}
	var info [4]string
	if err := s.w.doInto(ctx, r.Endpoint, []*string{&info[0], &info[1], &info[2], &info[3]}, stmts...); err != nil {
		return fmt.Errorf("sqlstore: save registration %s: %w", r.Endpoint, err)
	}
	r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType = info[0], info[1], info[2], info[3]
	if r.ID != "" && r.DeregisteredAt.IsZero() {
		s.queued.Add(r.Endpoint, r.ID)
	} else {
		s.queued.Remove(r.Endpoint)
	}
	return nil
}

// keepStmts are the statements of SaveRegistrationKeepingInfo on PostgreSQL: the upsert that
// returns the kept attributes first (writer.doInto), then the owner row and the outbox, as
// SaveRegistration's.
func (s *Store) keepStmts(r *registration.Registration) ([]stmt, error) {
	args, err := registrationArgs(r)
	if err != nil {
		return nil, err
	}
	stmts := []stmt{{s.q.saveKeep, args}}
	if o, ok, err := s.ownerStmt(r); err != nil {
		return nil, fmt.Errorf("owner: %w", err)
	} else if ok {
		stmts = append(stmts, o)
	}
	register := r.ID != "" && r.DeregisteredAt.IsZero()
	if last, ok := s.queued.Get(r.Endpoint); r.ID != "" && !(register && ok && last == r.ID) {
		// The payload without the attributes and its closing brace: infoJSON ends it in SQL.
		bare := *r
		bare.Manufacturer, bare.Model, bare.FirmwareVersion = "", "", ""
		out, err := s.registrationOutbox(&bare)
		if err != nil {
			return nil, err
		}
		const payloadArg = 5 // outbox's args: ids, type, endpoint, at, payload, ...
		payload, _ := out.args[payloadArg].(string)
		if !strings.HasSuffix(payload, "}") {
			return nil, fmt.Errorf("webhook payload %q is no JSON object", payload)
		}
		out.query, out.args[payloadArg] = s.q.outboxKeep, strings.TrimSuffix(payload, "}")
		stmts = append(stmts, out)
	}
	return stmts, nil
}
