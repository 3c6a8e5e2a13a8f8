package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lwota/lwota/server/cluster"
	"github.com/lwota/lwota/server/registration"
)

// The cluster's store and its LISTEN/NOTIFY.
var (
	_ cluster.Store  = (*Store)(nil)
	_ cluster.PubSub = (*Store)(nil)
)

// owner is the node that writes device_owners rows with the registrations it stores.
type owner struct {
	node  uint16
	grace time.Duration
}

// OwnDevices makes every later Register and Update stored here also name node id as the device's
// owner, in the same transaction, with a lease of the registration's lifetime plus grace; a
// De-register drops the row. Only a cluster node calls it: without it no owner row is written.
func (s *Store) OwnDevices(id uint16, grace time.Duration) {
	s.owner.Store(&owner{node: id, grace: grace})
}

// ownerStmt is the owner row statement to commit with r, or false when no node owns devices here.
func (s *Store) ownerStmt(r *registration.Registration) (stmt, bool, error) {
	o := s.owner.Load()
	if o == nil {
		return stmt{}, false, nil
	}
	if !r.DeregisteredAt.IsZero() || r.ID == "" {
		return stmt{s.q.deleteOwner, []any{r.Endpoint}}, true, nil
	}
	lease, err := nanos(r.ExpiresAt().Add(o.grace))
	if err != nil {
		return stmt{}, false, err
	}
	peer := ""
	if r.Addr.AddrPort.IsValid() {
		peer = string(r.Addr.Network) + " " + r.Addr.AddrPort.String()
	}
	return stmt{s.q.saveOwner, []any{r.Endpoint, int64(o.node), peer, lease}}, true, nil
}

// touchOwnedQueries are a cluster node's touch on PostgreSQL: the touch of the registration row
// (TouchRegistration's seven args) and the upsert of its owner row (ownerStmt's args but the
// endpoint: node, peer, lease) in one statement, whose rows affected are the touch's (an owner
// row is written only for a row the touch changed). A batch's touches run as one such statement
// over arrays (merged), returning the endpoints it touched, so that they go into the batch's
// pipeline with its COMMIT: one round trip, where the two statements took one each after the
// pipeline, the owner upsert waiting for the touch's answer.
//
// nosec makes them the touch of TouchRegistrationNoSec: the row changes (and so the owner row
// is written) only when its endpoint has no credential (noCredential).
func touchOwnedQueries(nosec bool) (plain string, merged *merger) {
	cond, condR := "", ""
	if nosec {
		cond, condR = noCredential("registrations.endpoint"), noCredentialByIndex("r.endpoint")
	}
	set := " SET updated_at = v.updated_at, last_seen = v.last_seen, expires_at = v.expires_at," +
		" addr_network = v.addr_network, addr = v.addr"
	onConflict := upsert("device_owners", []string{"endpoint"}, ownerColumns)
	onConflict = onConflict[strings.Index(onConflict, " ON CONFLICT ("):]
	plain = "WITH t AS (UPDATE registrations SET updated_at = $1, last_seen = $2, expires_at = $3, addr_network = $4, addr = $5" +
		" WHERE endpoint = $6 AND id = $7" + cond + " RETURNING endpoint)" +
		" INSERT INTO device_owners (" + strings.Join(ownerColumns, ", ") + ")" +
		" SELECT t.endpoint, $8::bigint, $9::text, $10::bigint FROM t" + onConflict
	merged = &merger{key: 5, byIndex: true, query: "WITH t AS (UPDATE registrations AS r" + set +
		" FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])" +
		" AS v(updated_at, last_seen, expires_at, addr_network, addr, endpoint, id)" +
		" WHERE " + keyJoin + condR + " RETURNING r.endpoint)," +
		" o AS (INSERT INTO device_owners (" + strings.Join(ownerColumns, ", ") + ")" +
		" SELECT o.endpoint, o.node_id, o.peer_addr, o.lease_until" +
		" FROM unnest($6::text[], $8::bigint[], $9::text[], $10::bigint[]) AS o(endpoint, node_id, peer_addr, lease_until)" +
		" JOIN t ON t.endpoint = o.endpoint" + onConflict + ")" +
		" SELECT endpoint FROM t"}
	return plain, merged
}

// ownerColumns are the columns of an owner row in the order of ownerStmt's args; ownerTypes
// their PostgreSQL types, for merged writes (merge.go).
var (
	ownerColumns = []string{"endpoint", "node_id", "peer_addr", "lease_until"}
	ownerTypes   = []string{"text", "bigint", "text", "bigint"}
)

// ownerQueries are the owner row writes, kept with the registration writes (queries.go).
func ownerQueries(d *dialect) (save, del string) {
	return d.rebind(upsert("device_owners", []string{"endpoint"}, ownerColumns)),
		d.rebind("DELETE FROM device_owners WHERE endpoint = ?")
}

// joinAttempts bounds the retries of a join that raced another node to the same free id.
const joinAttempts = 20

// JoinCluster inserts or refreshes the row of n.Name and returns its node id: the name's id, or
// the smallest id not taken. Two names racing to one id: the loser's insert fails on the primary
// key and it tries again with the next free id.
func (s *Store) JoinCluster(ctx context.Context, n cluster.NodeInfo, now time.Time) (uint16, error) {
	at, err := nanos(now)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: join cluster: %w", err)
	}
	q := s.dialect.rebind(`INSERT INTO cluster_nodes (node_id, name, forward_addr, api_url, draining, joined_at, heartbeat_at)
		VALUES (COALESCE((SELECT node_id FROM cluster_nodes WHERE name = ?),
			(SELECT min(c.id) FROM (SELECT 1 AS id UNION ALL SELECT node_id + 1 FROM cluster_nodes) c
			 WHERE c.id <= 65535 AND NOT EXISTS (SELECT 1 FROM cluster_nodes x WHERE x.node_id = c.id))),
			?, ?, ?, FALSE, ?, ?)
		ON CONFLICT (name) DO UPDATE SET forward_addr = excluded.forward_addr, api_url = excluded.api_url,
			joined_at = excluded.joined_at, heartbeat_at = excluded.heartbeat_at
		RETURNING node_id`)
	var lastErr error
	for range joinAttempts {
		var id int64
		err := s.db.QueryRowContext(ctx, q, n.Name, n.Name, n.ForwardAddr, n.APIURL, at, at).Scan(&id)
		switch {
		case err == nil:
			return uint16(id), nil
		case isNotNullViolation(err):
			return 0, cluster.ErrNoNodeIDs
		case isUniqueViolation(err, "cluster_nodes"):
			lastErr = err // another node took that id a moment ago
			continue
		default:
			return 0, fmt.Errorf("sqlstore: join cluster as %s: %w", n.Name, err)
		}
	}
	return 0, fmt.Errorf("sqlstore: join cluster as %s: %w", n.Name, lastErr)
}

// isNotNullViolation reports a NOT NULL constraint failure (no node id left).
func isNotNullViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "not-null") || strings.Contains(msg, "NOT NULL")
}

const nodeColumns = "node_id, name, forward_addr, api_url, draining, joined_at, heartbeat_at"

func scanNode(r scanner) (cluster.NodeInfo, error) {
	var (
		n              cluster.NodeInfo
		id             int64
		joined, beaten sql.NullInt64
	)
	err := r.Scan(&id, &n.Name, &n.ForwardAddr, &n.APIURL, &n.Draining, &joined, &beaten)
	n.ID, n.JoinedAt, n.HeartbeatAt = uint16(id), fromNanos(joined), fromNanos(beaten)
	return n, err
}

// HeartbeatNode stamps node id's heartbeat and returns its row.
func (s *Store) HeartbeatNode(ctx context.Context, id uint16, now time.Time) (cluster.NodeInfo, error) {
	at, err := nanos(now)
	if err != nil {
		return cluster.NodeInfo{}, fmt.Errorf("sqlstore: heartbeat: %w", err)
	}
	q := s.dialect.rebind("UPDATE cluster_nodes SET heartbeat_at = ? WHERE node_id = ? RETURNING " + nodeColumns)
	n, err := scanNode(s.db.QueryRowContext(ctx, q, at, int64(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return cluster.NodeInfo{}, fmt.Errorf("sqlstore: heartbeat node %d: %w", id, cluster.ErrNodeNotFound)
	}
	if err != nil {
		return cluster.NodeInfo{}, fmt.Errorf("sqlstore: heartbeat node %d: %w", id, err)
	}
	return n, nil
}

// ClusterNodes lists the nodes by id with the devices each owns at now.
func (s *Store) ClusterNodes(ctx context.Context, now time.Time) ([]cluster.NodeInfo, error) {
	at, err := nanos(now)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: cluster nodes: %w", err)
	}
	q := s.dialect.rebind("SELECT " + nodeColumns + `, (SELECT count(*) FROM device_owners o WHERE o.node_id = n.node_id AND o.lease_until > ?)
		FROM cluster_nodes n ORDER BY node_id`)
	rows, err := s.db.QueryContext(ctx, q, at)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: cluster nodes: %w", err)
	}
	nodes, err := collect(rows, func(r scanner) (cluster.NodeInfo, error) {
		var (
			n              cluster.NodeInfo
			id, owned      int64
			joined, beaten sql.NullInt64
		)
		err := r.Scan(&id, &n.Name, &n.ForwardAddr, &n.APIURL, &n.Draining, &joined, &beaten, &owned)
		n.ID, n.JoinedAt, n.HeartbeatAt, n.Owned = uint16(id), fromNanos(joined), fromNanos(beaten), int(owned)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: cluster nodes: %w", err)
	}
	return nodes, nil
}

// SetNodeDraining sets the draining flag of node name.
func (s *Store) SetNodeDraining(ctx context.Context, name string, draining bool) error {
	res, err := s.db.ExecContext(ctx, s.dialect.rebind("UPDATE cluster_nodes SET draining = ? WHERE name = ?"), draining, name)
	if err != nil {
		return fmt.Errorf("sqlstore: drain node %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("sqlstore: drain node %s: %w", name, cluster.ErrNodeNotFound)
	}
	return nil
}

// DeviceOwner returns endpoint's owner row with its node's last heartbeat.
func (s *Store) DeviceOwner(ctx context.Context, endpoint string) (cluster.Owner, error) {
	q := s.dialect.rebind(`SELECT o.node_id, o.peer_addr, o.lease_until, n.heartbeat_at
		FROM device_owners o LEFT JOIN cluster_nodes n ON n.node_id = o.node_id WHERE o.endpoint = ?`)
	var (
		o      cluster.Owner
		id     int64
		lease  int64
		beaten sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, q, endpoint).Scan(&id, &o.PeerAddr, &lease, &beaten)
	if errors.Is(err, sql.ErrNoRows) {
		return cluster.Owner{}, fmt.Errorf("sqlstore: owner of %s: %w", endpoint, cluster.ErrNoOwner)
	}
	if err != nil {
		return cluster.Owner{}, fmt.Errorf("sqlstore: owner of %s: %w", endpoint, err)
	}
	o.NodeID, o.LeaseUntil, o.HeartbeatAt = uint16(id), time.Unix(0, lease).UTC(), fromNanos(beaten)
	return o, nil
}

// OwnedEndpoints lists the endpoints whose lease names node id past now.
func (s *Store) OwnedEndpoints(ctx context.Context, id uint16, now time.Time) ([]string, error) {
	at, err := nanos(now)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: owned devices: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.dialect.rebind("SELECT endpoint FROM device_owners WHERE node_id = ? AND lease_until > ?"), int64(id), at)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: owned devices: %w", err)
	}
	eps, err := collect(rows, func(r scanner) (string, error) {
		var ep string
		return ep, r.Scan(&ep)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: owned devices: %w", err)
	}
	return eps, nil
}

// PutMessage keeps a handover body too large for a notification.
func (s *Store) PutMessage(ctx context.Context, id, body string, now time.Time) error {
	at, err := nanos(now)
	if err != nil {
		return fmt.Errorf("sqlstore: put message: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.dialect.rebind("INSERT INTO cluster_messages (id, body, created_at) VALUES (?, ?, ?)"), id, body, at); err != nil {
		return fmt.Errorf("sqlstore: put message %s: %w", id, err)
	}
	return nil
}

// TakeMessage reads and deletes a message kept by PutMessage.
func (s *Store) TakeMessage(ctx context.Context, id string) (string, error) {
	var body string
	err := s.db.QueryRowContext(ctx, s.dialect.rebind("DELETE FROM cluster_messages WHERE id = ? RETURNING body"), id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlstore: take message %s: gone", id)
	}
	if err != nil {
		return "", fmt.Errorf("sqlstore: take message %s: %w", id, err)
	}
	return body, nil
}

// SweepMessages drops messages nobody took (their caller gave up) older than before.
func (s *Store) SweepMessages(ctx context.Context, before time.Time) error {
	at, err := nanos(before)
	if err != nil {
		return fmt.Errorf("sqlstore: sweep messages: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.dialect.rebind("DELETE FROM cluster_messages WHERE created_at < ?"), at); err != nil {
		return fmt.Errorf("sqlstore: sweep messages: %w", err)
	}
	return nil
}

// Notify sends payload on channel (PostgreSQL NOTIFY; delivered to listeners at commit).
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if s.pg == nil {
		return errors.New("sqlstore: notify: needs PostgreSQL")
	}
	if _, err := s.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		return fmt.Errorf("sqlstore: notify %s: %w", channel, err)
	}
	return nil
}

// Listen holds a connection of its own that LISTENs on channels and hands every notification to
// fn, in order, until ctx ends; a lost connection is made again (notifications sent meanwhile are
// lost) and ready is called each time it listens.
func (s *Store) Listen(ctx context.Context, channels []string, ready func(), fn func(channel, payload string)) error {
	if s.pg == nil {
		return errors.New("sqlstore: listen: needs PostgreSQL")
	}
	var connected atomic.Bool
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channels, func() { connected.Store(true); ready() }, fn)
		if ctx.Err() != nil {
			return nil
		}
		if connected.Swap(false) {
			backoff = 100 * time.Millisecond
		}
		s.log.Warn("listen: connection lost; listening again", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, channels []string, ready func(), fn func(channel, payload string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pg.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Channel, n.Payload)
	}
}
