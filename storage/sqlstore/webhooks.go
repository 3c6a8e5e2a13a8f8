package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/webhooks"
)

var _ webhooks.Store = (*Store)(nil)

var subscriptionColumns = []string{"id", "url", "kinds", "secret", "enabled", "created_at", "created_by"}

var deliveryColumns = []string{
	"id", "subscription_id", "event_id", "kind", "event_type", "endpoint", "at", "payload", "state",
	"attempts", "next_attempt_at", "queued_at", "last_status", "last_error", "ended_at",
}

// The outbox: every statement that stores a webhook's source event (a job transition, a campaign
// event, a registration) is followed, in its transaction, by one of these, which queues a delivery
// for each enabled subscription of the event's kind. The delivery id is the subscription id, a dot
// and the event id; ON CONFLICT DO NOTHING makes storing one event twice (a registration saved at
// every Update) queue it once.
const outboxInsert = "INSERT INTO webhook_deliveries (id, subscription_id, event_id, kind, event_type, endpoint, at, " +
	"payload, state, attempts, next_attempt_at, queued_at, last_status, last_error, ended_at) "

// outboxValues are the select list after the ids and the kind: type, endpoint, at, payload, then
// the constants of a new delivery (due at the event's time).
const outboxValues = "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), " +
	"'pending', 0, CAST(? AS BIGINT), CAST(? AS BIGINT), 0, '', NULL "

// outboxSubscriptions selects the enabled subscriptions of kind. The pattern is a literal, not
// a parameter: SQLite plans LIKE against a bound value anew at every execution (its LIKE
// optimization), which made every registration save parse its statement again.
func outboxSubscriptions(kind string) string {
	return "WHERE s.enabled = 1 AND s.kinds LIKE '" + kindPattern(kind) + "' "
}

// outboxEvent is a stored event the outbox queues.
type outboxEvent struct {
	id, kind, typ, endpoint string
	at                      time.Time
	data                    any
}

// outbox returns the statement queueing ev for its subscribers.
func (s *Store) outbox(ev outboxEvent) (stmt, error) {
	payload, err := jsonText(ev.data)
	if err != nil {
		return stmt{}, fmt.Errorf("webhook payload: %w", err)
	}
	q, ok := s.q.outbox[ev.kind]
	if !ok {
		return stmt{}, fmt.Errorf("webhook outbox: no statement for kind %q", ev.kind)
	}
	at := ev.at.UnixNano()
	return stmt{q, []any{ev.id, ev.id, ev.typ, ev.endpoint, at, payload, at, at}}, nil
}

// outboxQueries are the statements queueing one event of each kind whose id the caller knows.
// Every writer goroutine prepares them (queries.writes): they run with every registration, job
// transition and campaign event.
func outboxQueries(d *dialect) map[string]string {
	out := map[string]string{}
	for _, kind := range webhooks.Kinds {
		out[kind] = d.rebind(outboxInsert + "SELECT s.id || '.' || CAST(? AS TEXT), s.id, CAST(? AS TEXT), '" + kind + "', " +
			outboxValues + "FROM webhook_subscriptions s " + outboxSubscriptions(kind) + "ON CONFLICT (id) DO NOTHING")
	}
	return out
}

// outboxArrays is the outbox statement of kind for PostgreSQL over one array per arg of
// outbox's statement (a merger, merge.go): the events of many writes queued by one insert.
func outboxArrays(kind string) string {
	return outboxInsert + "SELECT s.id || '.' || v.id, s.id, v.event_id, '" + kind + "', v.type, v.endpoint, v.at, v.payload, " +
		"'pending', 0, v.next_attempt_at, v.queued_at, 0, '', NULL " +
		"FROM " + unnest([]string{"text", "text", "text", "text", "bigint", "text", "bigint", "bigint"}) +
		" AS v(id, event_id, type, endpoint, at, payload, next_attempt_at, queued_at) CROSS JOIN webhook_subscriptions s " +
		outboxSubscriptions(kind) + "ON CONFLICT (id) DO NOTHING"
}

// campaignOutbox queues e, the campaign event just inserted (its seq is the campaign's highest).
func (s *Store) campaignOutbox(e campaigns.Event) (stmt, error) {
	payload, err := jsonText(events.CampaignChange{CampaignID: e.CampaignID, Action: e.Action, From: string(e.From),
		To: string(e.To), Actor: e.Actor, Reason: e.Reason})
	if err != nil {
		return stmt{}, fmt.Errorf("webhook payload: %w", err)
	}
	at := e.At.UnixNano()
	ev := "'cmp.' || e.campaign_id || '.' || CAST(e.seq AS TEXT)"
	q := outboxInsert + "SELECT s.id || '.' || " + ev + ", s.id, " + ev + ", '" + events.KindCampaign + "', " + outboxValues +
		"FROM webhook_subscriptions s, (SELECT campaign_id, MAX(seq) AS seq FROM campaign_events WHERE campaign_id = ? " +
		"GROUP BY campaign_id) e " + outboxSubscriptions(events.KindCampaign) + "ON CONFLICT (id) DO NOTHING"
	return stmt{s.dialect.rebind(q), []any{events.TypeCampaign, "", at, payload, at, at, e.CampaignID}}, nil
}

// jobOutbox queues a job transition.
func (s *Store) jobOutbox(j *fwupdate.Job, tr fwupdate.Transition) (stmt, error) {
	return s.outbox(outboxEvent{
		id: "job." + j.ID + "." + fmt.Sprint(tr.Seq), kind: events.KindUpdateJob, typ: events.TypeUpdateJob,
		endpoint: j.Endpoint, at: tr.At,
		data: events.JobTransition{JobID: j.ID, ImageID: j.ImageID, ImageVersion: j.ImageVersion, CampaignID: j.CampaignID,
			From: string(tr.From), To: string(tr.To), Reason: tr.Reason, Attempt: tr.Attempt},
	})
}

// registrationEvent is the data of a registered or deregistered delivery.
type registrationEvent struct {
	RegistrationID  string    `json:"registration_id"`
	Endpoint        string    `json:"endpoint"`
	Version         string    `json:"lwm2m_version"`
	Lifetime        uint32    `json:"lifetime"`
	Binding         string    `json:"binding"`
	QueueMode       bool      `json:"queue_mode"`
	RegisteredAt    time.Time `json:"registered_at"`
	DeregisteredAt  time.Time `json:"deregistered_at,omitzero"`
	Manufacturer    string    `json:"manufacturer,omitempty"`
	Model           string    `json:"model,omitempty"`
	FirmwareVersion string    `json:"firmware_version,omitempty"`
}

// registrationOutbox queues the Register of r (its first save) or its De-register; every
// other save of r has the same event id and queues nothing.
func (s *Store) registrationOutbox(r *registration.Registration) (stmt, error) {
	// The registration id is the device's Location-Path and random; hashed with the endpoint,
	// it keeps the event id short and free of the endpoint's characters.
	sum := sha256.Sum256([]byte(r.Endpoint + "\x00" + r.ID))
	ev := outboxEvent{id: "reg." + hex.EncodeToString(sum[:10]), kind: events.KindRegistration,
		typ: events.TypeRegistered, endpoint: r.Endpoint, at: r.RegisteredAt}
	if !r.DeregisteredAt.IsZero() {
		ev.id, ev.typ, ev.at = "dereg."+ev.id[len("reg."):], events.TypeDeregistered, r.DeregisteredAt
	}
	ev.data = registrationEvent{RegistrationID: r.ID, Endpoint: r.Endpoint, Version: r.Version, Lifetime: r.Lifetime,
		Binding: r.Binding, QueueMode: r.QueueMode, RegisteredAt: r.RegisteredAt.UTC(), DeregisteredAt: r.DeregisteredAt.UTC(),
		Manufacturer: r.Manufacturer, Model: r.Model, FirmwareVersion: r.FirmwareVersion}
	if ev.at.IsZero() {
		ev.at = r.UpdatedAt
	}
	return s.outbox(ev)
}

// queuedRegistrations bounds the endpoints whose queued Register a store remembers; past it, an
// Update runs the outbox statement again, which queues nothing (ON CONFLICT DO NOTHING).
const queuedRegistrations = 1 << 17

// kindPattern matches kind in a kinds column.
func kindPattern(kind string) string { return "%," + kind + ",%" }

// kindsText is the kinds column of kinds: ",a,b,".
func kindsText(kinds []string) string { return "," + strings.Join(kinds, ",") + "," }

func webhookKey(id string) string { return "webhook:" + id }

// CreateSubscription stores a new subscription.
func (s *Store) CreateSubscription(ctx context.Context, sub *webhooks.Subscription) error {
	if sub == nil || sub.ID == "" {
		return errors.New("sqlstore: create webhook: no id")
	}
	args := []any{sub.ID, sub.URL, kindsText(sub.Kinds), sub.Secret, boolInt(sub.Enabled), sub.CreatedAt.UnixNano(), sub.CreatedBy}
	if err := s.w.do(ctx, webhookKey(sub.ID), stmt{s.dialect.rebind(insert("webhook_subscriptions", subscriptionColumns)), args}); err != nil {
		return fmt.Errorf("sqlstore: create webhook %s: %w", sub.ID, err)
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func scanSubscription(r scanner) (*webhooks.Subscription, error) {
	var (
		sub     webhooks.Subscription
		kinds   string
		enabled int64
		created int64
	)
	if err := r.Scan(&sub.ID, &sub.URL, &kinds, &sub.Secret, &enabled, &created, &sub.CreatedBy); err != nil {
		return nil, err
	}
	sub.Kinds = strings.FieldsFunc(kinds, func(r rune) bool { return r == ',' })
	sub.Enabled = enabled == 1
	sub.CreatedAt = time.Unix(0, created).UTC()
	return &sub, nil
}

// Subscription returns one subscription, or an error matching webhooks.ErrNotFound.
func (s *Store) Subscription(ctx context.Context, id string) (*webhooks.Subscription, error) {
	sub, err := scanSubscription(s.queryRow(ctx, s.dialect.rebind("SELECT "+strings.Join(subscriptionColumns, ", ")+
		" FROM webhook_subscriptions WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		err = webhooks.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: webhook %s: %w", id, err)
	}
	return sub, nil
}

// ListSubscriptions returns every subscription, oldest first.
func (s *Store) ListSubscriptions(ctx context.Context) ([]*webhooks.Subscription, error) {
	rows, err := s.query(ctx, "SELECT "+strings.Join(subscriptionColumns, ", ")+" FROM webhook_subscriptions ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list webhooks: %w", err)
	}
	out, err := collect(rows, scanSubscription)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list webhooks: %w", err)
	}
	return out, nil
}

// DeleteSubscription removes a subscription and its deliveries in one transaction.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	err := s.w.doMatch(ctx, webhookKey(id), webhooks.ErrNotFound,
		stmt{s.dialect.rebind("DELETE FROM webhook_deliveries WHERE subscription_id = ?"), []any{id}},
		stmt{s.dialect.rebind("DELETE FROM webhook_subscriptions WHERE id = ?"), []any{id}})
	if err != nil {
		return fmt.Errorf("sqlstore: delete webhook %s: %w", id, err)
	}
	return nil
}

func scanDelivery(r scanner) (*webhooks.Delivery, error) {
	var (
		d                       webhooks.Delivery
		at, next, queued        int64
		payload, state, lastErr string
		ended                   sql.NullInt64
	)
	if err := r.Scan(&d.ID, &d.SubscriptionID, &d.EventID, &d.Kind, &d.EventType, &d.Endpoint, &at, &payload, &state,
		&d.Attempts, &next, &queued, &d.LastStatus, &lastErr, &ended); err != nil {
		return nil, err
	}
	d.At, d.NextAttemptAt, d.QueuedAt = time.Unix(0, at).UTC(), time.Unix(0, next).UTC(), time.Unix(0, queued).UTC()
	d.Payload, d.State, d.LastError, d.EndedAt = []byte(payload), webhooks.State(state), lastErr, fromNanos(ended)
	return &d, nil
}

func deliverySelect(prefix string) string {
	cols := make([]string, len(deliveryColumns))
	for i, c := range deliveryColumns {
		cols[i] = prefix + c
	}
	return "SELECT " + strings.Join(cols, ", ")
}

// ListDeliveries returns the deliveries f selects, newest first.
func (s *Store) ListDeliveries(ctx context.Context, f webhooks.DeliveryFilter) ([]*webhooks.Delivery, error) {
	q := deliverySelect("") + " FROM webhook_deliveries WHERE subscription_id = ?"
	args := []any{f.SubscriptionID}
	if f.State != "" {
		q += " AND state = ?"
		args = append(args, string(f.State))
	}
	q += " ORDER BY queued_at DESC, id DESC LIMIT ?"
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, int64(limit))
	rows, err := s.query(ctx, s.dialect.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: webhook %s deliveries: %w", f.SubscriptionID, err)
	}
	out, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: webhook %s deliveries: %w", f.SubscriptionID, err)
	}
	return out, nil
}

// DueDeliveries returns pending deliveries of enabled subscriptions due at now, most overdue first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*webhooks.Delivery, error) {
	q := deliverySelect("d.") + " FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id " +
		"WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND s.enabled = 1 ORDER BY d.next_attempt_at, d.id LIMIT ?"
	rows, err := s.query(ctx, s.dialect.rebind(q), now.UnixNano(), int64(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: due webhook deliveries: %w", err)
	}
	out, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: due webhook deliveries: %w", err)
	}
	return out, nil
}

// errNotPending is the writer's "no row changed" for an attempt on a delivery no longer pending.
var errNotPending = errors.New("sqlstore: webhook delivery not pending")

// SaveAttempt stores the outcome of an attempt on a delivery that is still pending.
func (s *Store) SaveAttempt(ctx context.Context, d *webhooks.Delivery) error {
	times, err := timeArgs(d.NextAttemptAt, d.EndedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: webhook delivery %s: %w", d.ID, err)
	}
	next := times[0].Int64
	q := s.dialect.rebind("UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?, " +
		"last_error = ?, ended_at = ? WHERE id = ? AND state = 'pending'")
	err = s.w.doMatch(ctx, webhookKey(d.SubscriptionID), errNotPending, stmt{q, []any{string(d.State), int64(d.Attempts),
		next, int64(d.LastStatus), truncate(d.LastError, 1024), times[1], d.ID}})
	if errors.Is(err, errNotPending) {
		return nil // retried, delivered or deleted meanwhile: the newer state stands
	}
	if err != nil {
		return fmt.Errorf("sqlstore: webhook delivery %s: %w", d.ID, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RetryDelivery makes a delivery pending again, due at now, with no attempts.
func (s *Store) RetryDelivery(ctx context.Context, subscriptionID, id string, now time.Time) (*webhooks.Delivery, error) {
	q := s.dialect.rebind("UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?, queued_at = ?, " +
		"ended_at = NULL WHERE id = ? AND subscription_id = ?")
	n := now.UnixNano()
	if err := s.w.doMatch(ctx, webhookKey(subscriptionID), webhooks.ErrNotFound, stmt{q, []any{n, n, id, subscriptionID}}); err != nil {
		return nil, fmt.Errorf("sqlstore: retry webhook delivery %s: %w", id, err)
	}
	d, err := scanDelivery(s.queryRow(ctx, s.dialect.rebind(deliverySelect("")+" FROM webhook_deliveries WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		err = webhooks.ErrNotFound // deleted with its subscription just now
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: retry webhook delivery %s: %w", id, err)
	}
	return d, nil
}

// CountDeliveries returns the number of pending and dead deliveries.
func (s *Store) CountDeliveries(ctx context.Context) (pending, dead int, err error) {
	rows, err := s.query(ctx, "SELECT state, COUNT(*) FROM webhook_deliveries WHERE state IN ('pending', 'dead') GROUP BY state")
	if err != nil {
		return 0, 0, fmt.Errorf("sqlstore: count webhook deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			state string
			n     int
		)
		if err := rows.Scan(&state, &n); err != nil {
			return 0, 0, fmt.Errorf("sqlstore: count webhook deliveries: %w", err)
		}
		switch webhooks.State(state) {
		case webhooks.StatePending:
			pending = n
		case webhooks.StateDead:
			dead = n
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("sqlstore: count webhook deliveries: %w", err)
	}
	return pending, dead, nil
}

// PruneDelivered removes delivered deliveries that ended before before.
func (s *Store) PruneDelivered(ctx context.Context, before time.Time) error {
	err := s.w.do(ctx, "webhook-prune", stmt{s.dialect.rebind("DELETE FROM webhook_deliveries WHERE state = 'delivered' AND ended_at < ?"),
		[]any{before.UnixNano()}})
	if err != nil {
		return fmt.Errorf("sqlstore: prune webhook deliveries: %w", err)
	}
	return nil
}
