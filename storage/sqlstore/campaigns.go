package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/server/fwupdate"
)

// The campaign manager's store.
var _ campaigns.Store = (*Store)(nil)

var memberColumns = []string{
	"campaign_id", "endpoint", "wave", "ord", "cap_label", "state", "job_id", "job_state", "reason",
	"attempts", "started_at", "pending_since", "ended_at", "updated_at",
}

// rowsPerInsert keeps a multi-row INSERT well under both backends' parameter limits.
const rowsPerInsert = 200

// campaignKey shards a campaign's writes onto one writer, so they commit in order.
func campaignKey(id string) string { return "campaign:" + id }

// CreateCampaign stores c, its members and their claims, and the creation event, in one
// transaction. A device claimed by another campaign fails it with a *campaigns.ConflictError.
// The claims' primary key decides, in the transaction, with no read of the claims before it:
// a campaign start of 10,000 devices does not pay a 10,000-endpoint join to learn what the
// INSERT learns anyway; only a create that failed reads which devices were taken.
func (s *Store) CreateCampaign(ctx context.Context, c *campaigns.Campaign, created campaigns.Event, members []campaigns.Member, after ...campaigns.Event) error {
	stmts, err := s.createStmts(c, created, members, after...)
	if err != nil {
		return fmt.Errorf("sqlstore: create campaign %s: %w", c.ID, err)
	}
	if err := s.w.doLarge(ctx, campaignKey(c.ID), stmts...); err != nil {
		if isUniqueViolation(err, "campaign_claims") || isUniqueViolation(err, "endpoint") {
			eps := make([]string, len(members))
			for i, m := range members {
				eps[i] = m.Endpoint
			}
			if taken, cerr := s.Claimed(ctx, eps); cerr == nil && len(taken) > 0 {
				return &campaigns.ConflictError{Claimed: taken}
			}
		}
		return fmt.Errorf("sqlstore: create campaign %s: %w", c.ID, err)
	}
	return nil
}

// createStmts are the statements of CreateCampaign's transaction: the campaign, its members
// and their claims, its creation event and the events after it, each with its webhook outbox row.
func (s *Store) createStmts(c *campaigns.Campaign, created campaigns.Event, members []campaigns.Member, after ...campaigns.Event) ([]stmt, error) {
	doc, err := jsonText(c)
	if err != nil {
		return nil, err
	}
	stmts := []stmt{{s.q.insertCampaign, []any{c.ID, string(c.State), int64(c.Version), followed(c), c.CreatedAt.UnixNano(), doc}}}
	ms, ok, err := s.memberSetInserts(members)
	if err == nil && !ok {
		ms, err = s.memberInserts(members)
	}
	if err != nil {
		return nil, err
	}
	stmts = append(stmts, ms...)
	eps := make([]string, len(members))
	for i, m := range members {
		eps[i] = m.Endpoint
	}
	slices.Sort(eps) // ours: claimInserts need not sort a copy
	claims, err := s.claimInserts(c.ID, eps, false)
	if err != nil {
		return nil, err
	}
	stmts = append(stmts, claims...)
	for _, e := range append([]campaigns.Event{created}, after...) {
		e.CampaignID = c.ID
		out, err := s.campaignOutbox(e)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, s.eventInsert(e), out) // the webhook outbox row commits with its event
	}
	return stmts, nil
}

// memberInserts are multi-row INSERTs of members, rowsPerInsert a statement: a full chunk's
// statement is prepared once per writer (queries.writes), so that storing the members of a
// campaign of 10,000 devices binds 50 statements instead of parsing 50 of 2,800 parameters.
func (s *Store) memberInserts(members []campaigns.Member) ([]stmt, error) {
	var out []stmt
	for start := 0; start < len(members); start += rowsPerInsert {
		chunk := members[start:min(start+rowsPerInsert, len(members))]
		args := make([]any, 0, len(chunk)*len(memberColumns))
		for _, m := range chunk {
			a, err := memberArgs(m)
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", m.Endpoint, err)
			}
			args = append(args, a...)
		}
		out = append(out, stmt{memberInsertQuery(s.dialect, len(chunk)), args})
	}
	return out, nil
}

// memberInsertQuery is the INSERT of n members.
func memberInsertQuery(d *dialect, n int) string {
	row := "(" + placeholders(len(memberColumns)) + ")"
	return d.rebind("INSERT INTO campaign_members (" + strings.Join(memberColumns, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+", ", n), ", "))
}

// claimedPerQuery bounds the endpoints one Claimed query carries, as a JSON array parameter.
const claimedPerQuery = 10000

// claimInserts claim endpoints for a campaign, setRowsPerStatement a statement carrying them
// as a JSON array (claimSetInsertQuery: 0.6x the CPU of binding 200 rows a statement on
// SQLite); with skipTaken, endpoints claimed already are left alone instead of failing the
// transaction.
func (s *Store) claimInserts(id string, eps []string, skipTaken bool) ([]stmt, error) {
	var out []stmt
	q := s.q.insertClaims
	if skipTaken {
		q = s.q.insertNewClaims
	}
	// In the primary key's order (claimSetInsertQuery); a campaign's members come in wave order.
	if !slices.IsSorted(eps) {
		eps = slices.Sorted(slices.Values(eps))
	}
	for start := 0; start < len(eps); start += setRowsPerStatement {
		doc, err := jsonStrings(eps[start:min(start+setRowsPerStatement, len(eps))])
		if err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
		out = append(out, stmt{q, []any{id, doc}})
	}
	return out, nil
}

// eventInsert appends e to its campaign's history, numbered after the last event.
func (s *Store) eventInsert(e campaigns.Event) stmt {
	return stmt{s.q.insertEvent, []any{e.CampaignID, e.At.UnixNano(), string(e.From), string(e.To), e.Actor, e.Action, e.Reason, e.CampaignID}}
}

// SaveCampaign stores c if the stored copy is at c.Version-1, appends events, and releases
// the campaign's claims once it has ended.
func (s *Store) SaveCampaign(ctx context.Context, c *campaigns.Campaign, events ...campaigns.Event) error {
	return s.SaveTick(ctx, c, nil, events...)
}

// SaveTick is SaveCampaign with members stored in the same transaction, whose compare-and-set
// comes last so that a stale save rolls back the members too.
func (s *Store) SaveTick(ctx context.Context, c *campaigns.Campaign, members []campaigns.Member, events ...campaigns.Event) error {
	doc, err := jsonText(c)
	if err != nil {
		return fmt.Errorf("sqlstore: save campaign %s: %w", c.ID, err)
	}
	stmts, err := s.memberUpdates(members)
	if err != nil {
		return fmt.Errorf("sqlstore: save campaign %s: %w", c.ID, err)
	}
	for _, e := range events {
		e.CampaignID = c.ID
		out, err := s.campaignOutbox(e)
		if err != nil {
			return fmt.Errorf("sqlstore: save campaign %s: %w", c.ID, err)
		}
		stmts = append(stmts, s.eventInsert(e), out) // the webhook outbox row commits with its event
	}
	if c.State.Ended() {
		// The claims are found through the campaign's members (every claim of a campaign is one
		// of its members': CreateCampaign and AddMembers store both in one transaction), so
		// that claims need no index by campaign, one B-tree less written per device at a start.
		stmts = append(stmts, stmt{s.q.releaseClaims, []any{c.ID, c.ID}})
	}
	stmts = append(stmts, stmt{s.q.saveCampaign, []any{string(c.State), int64(c.Version), followed(c), doc, c.ID, int64(c.Version - 1)}})
	err = s.w.doMatch(ctx, campaignKey(c.ID), campaigns.ErrStale, stmts...)
	if errors.Is(err, campaigns.ErrStale) {
		if _, gerr := s.GetCampaign(ctx, c.ID); errors.Is(gerr, campaigns.ErrNotFound) {
			err = campaigns.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: save campaign %s v%d: %w", c.ID, c.Version, err)
	}
	return nil
}

// GetCampaign returns one campaign, or campaigns.ErrNotFound.
func (s *Store) GetCampaign(ctx context.Context, id string) (*campaigns.Campaign, error) {
	var doc string
	err := s.queryRow(ctx, s.dialect.rebind("SELECT doc FROM campaigns WHERE id = ?"), id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: campaign %s: %w", id, campaigns.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: campaign %s: %w", id, err)
	}
	return decodeCampaign(doc)
}

func decodeCampaign(doc string) (*campaigns.Campaign, error) {
	var c campaigns.Campaign
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return nil, fmt.Errorf("sqlstore: campaign document: %w", err)
	}
	return &c, nil
}

func followed(c *campaigns.Campaign) int64 {
	if c.Followed() {
		return 1
	}
	return 0
}

// FollowedCampaigns returns the campaigns the leader must tick, oldest first.
func (s *Store) FollowedCampaigns(ctx context.Context) ([]*campaigns.Campaign, error) {
	return s.campaignDocs(ctx, "SELECT doc FROM campaigns WHERE followed = 1 ORDER BY created_at, id")
}

func (s *Store) campaignDocs(ctx context.Context, q string, args ...any) ([]*campaigns.Campaign, error) {
	rows, err := s.query(ctx, s.dialect.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list campaigns: %w", err)
	}
	out, err := collect(rows, func(r scanner) (*campaigns.Campaign, error) {
		var doc string
		if err := r.Scan(&doc); err != nil {
			return nil, err
		}
		return decodeCampaign(doc)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list campaigns: %w", err)
	}
	return out, nil
}

// ListCampaigns returns the campaigns in one of states (all when none), newest first.
func (s *Store) ListCampaigns(ctx context.Context, states ...campaigns.State) ([]*campaigns.Campaign, error) {
	q := "SELECT doc FROM campaigns"
	args := make([]any, len(states))
	if len(states) > 0 {
		q += " WHERE state IN (" + placeholders(len(states)) + ")"
		for i, st := range states {
			args[i] = string(st)
		}
	}
	return s.campaignDocs(ctx, q+" ORDER BY created_at DESC, id DESC", args...)
}

// Members returns a campaign's members matching f: by wave and start order, or by endpoint
// when f pages (After, Limit).
func (s *Store) Members(ctx context.Context, campaignID string, f campaigns.MemberFilter) ([]campaigns.Member, error) {
	// Every member of a campaign is the leader's view of it, read again whenever the campaign
	// changed elsewhere (two or three times for a 10,000-device start and its abort, 38 MB of
	// the 136 MB a start, its ticks and its abort allocated at 250,000 devices): counted first
	// (a range of the primary key), so that the members go into a slice of their size instead
	// of one doubled from empty (twice the bytes, copied along the way).
	size := 0
	if f == (campaigns.MemberFilter{}) {
		if err := s.queryRow(ctx, s.dialect.rebind("SELECT COUNT(*) FROM campaign_members WHERE campaign_id = ?"), campaignID).Scan(&size); err != nil {
			return nil, fmt.Errorf("sqlstore: campaign %s members: %w", campaignID, err)
		}
	}
	q, args := membersQuery(s.dialect, campaignID, f)
	rows, err := s.query(ctx, s.dialect.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: campaign %s members: %w", campaignID, err)
	}
	defer rows.Close()
	var out []campaigns.Member // nil without members, as before
	if size > 0 {
		out = make([]campaigns.Member, 0, size) // a hint: members added since still go in
	}
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: campaign %s members: %w", campaignID, err)
		}
		// One campaign id for all, not a copy a member: the leader's view keeps them live.
		m.CampaignID = campaignID
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: campaign %s members: %w", campaignID, err)
	}
	return out, nil
}

// membersQuery is Members' query (not yet rebound) and its arguments.
func membersQuery(d *dialect, campaignID string, f campaigns.MemberFilter) (string, []any) {
	q := "SELECT " + strings.Join(memberColumns, ", ") + " FROM campaign_members" + stateIndexHint(d, f.State) + " WHERE campaign_id = ?"
	args := []any{campaignID}
	if f.State != "" {
		q += " AND state = ?" + settledTerm(f.State)
		args = append(args, string(f.State))
	}
	if f.After != "" {
		q += " AND endpoint > ?"
		args = append(args, f.After)
	}
	if f.Limit > 0 || f.After != "" {
		q += " ORDER BY endpoint"
	} else {
		q += " ORDER BY wave, ord, endpoint"
	}
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return q, args
}

// failureReasonsQuery counts a campaign's failed members per reason (MemberSummary).
func failureReasonsQuery(d *dialect) string {
	return "SELECT reason, COUNT(*) FROM campaign_members" + stateIndexHint(d, campaigns.MemberFailed) +
		" WHERE campaign_id = ? AND state = ?" + settledTerm(campaigns.MemberFailed) + " GROUP BY reason"
}

// MemberSummary counts the members of a campaign per wave and state, and the failed ones per
// reason, with two GROUP BY queries: a campaign's answer costs counts, not its rows.
func (s *Store) MemberSummary(ctx context.Context, campaignID string, waves int) (campaigns.MemberSummary, error) {
	out := campaigns.MemberSummary{Waves: make([]plan.Counts, waves), Failed: map[string]int{}}
	rows, err := s.query(ctx, s.dialect.rebind("SELECT wave, state, COUNT(*) FROM campaign_members WHERE campaign_id = ? GROUP BY wave, state"), campaignID)
	if err != nil {
		return out, fmt.Errorf("sqlstore: campaign %s member counts: %w", campaignID, err)
	}
	type waveState struct {
		wave  int64
		state string
		n     int
	}
	counts, err := collect(rows, func(r scanner) (waveState, error) {
		var ws waveState
		return ws, r.Scan(&ws.wave, &ws.state, &ws.n)
	})
	if err != nil {
		return out, fmt.Errorf("sqlstore: campaign %s member counts: %w", campaignID, err)
	}
	for _, ws := range counts {
		if ws.wave < 0 || ws.wave >= int64(waves) {
			continue // as campaigns.Counts: a wave the plan lacks is not counted
		}
		c := &out.Waves[ws.wave]
		switch campaigns.MemberState(ws.state) {
		case campaigns.MemberPending:
			c.Pending += ws.n
		case campaigns.MemberInProgress:
			c.InProgress += ws.n
		case campaigns.MemberSucceeded:
			c.Succeeded += ws.n
		case campaigns.MemberUpToDate:
			c.UpToDate += ws.n
		case campaigns.MemberFailed:
			c.Failed += ws.n
		case campaigns.MemberCancelled:
			c.Cancelled += ws.n
		}
	}
	rows, err = s.query(ctx, s.dialect.rebind(failureReasonsQuery(s.dialect)),
		campaignID, string(campaigns.MemberFailed))
	if err != nil {
		return out, fmt.Errorf("sqlstore: campaign %s failure reasons: %w", campaignID, err)
	}
	type reasonCount struct {
		reason string
		n      int
	}
	reasons, err := collect(rows, func(r scanner) (reasonCount, error) {
		var rc reasonCount
		return rc, r.Scan(&rc.reason, &rc.n)
	})
	if err != nil {
		return out, fmt.Errorf("sqlstore: campaign %s failure reasons: %w", campaignID, err)
	}
	for _, rc := range reasons {
		out.Failed[rc.reason] = rc.n
	}
	return out, nil
}

// settledTerm is the term a read of members in state st adds beside its "state = ?" so that
// the planner may use the partial index campaign_members_state (migration 00018), which holds
// only the members that have left the initial state: both SQLite and PostgreSQL use a partial
// index when the query's WHERE holds the index's own term, and neither SQLite nor PostgreSQL's
// generic plan of a prepared statement can tell that a bound state differs from 'pending'. A
// read of pending members has no such index and walks the campaign's members by the primary key.
func settledTerm(st campaigns.MemberState) string {
	if st == campaigns.MemberPending {
		return ""
	}
	return " AND state <> 'pending'"
}

// stateIndexHint names the state index for a read of members in state st on SQLite, whose
// planner, with no statistics (lwota runs no ANALYZE), prefers the primary key's range of the
// whole campaign to an index on (campaign_id, state): it did so with the full index before
// 00018 too, reading every member of a campaign of 10,000 to page through its few failed ones.
// PostgreSQL plans from its statistics.
func stateIndexHint(d *dialect, st campaigns.MemberState) string {
	if d.name != sqliteDialect.name || st == "" || settledTerm(st) == "" {
		return ""
	}
	return " INDEXED BY campaign_members_state"
}

func scanMember(r scanner) (campaigns.Member, error) {
	var m campaigns.Member
	var state, jobState string
	var wave, ord, attempts int64
	var started, pending, ended, updated sql.NullInt64
	err := r.Scan(&m.CampaignID, &m.Endpoint, &wave, &ord, &m.CapLabel, &state, &m.JobID, &jobState, &m.Reason,
		&attempts, &started, &pending, &ended, &updated)
	if err != nil {
		return m, err
	}
	m.Wave, m.Rank, m.Attempts = int(wave), int(ord), int(attempts)
	m.State, m.JobState = campaigns.MemberState(state), fwupdate.State(jobState)
	m.StartedAt, m.PendingSince, m.EndedAt, m.UpdatedAt = fromNanos(started), fromNanos(pending), fromNanos(ended), fromNanos(updated)
	return m, nil
}

func memberArgs(m campaigns.Member) ([]any, error) {
	ts, err := timeArgs(m.StartedAt, m.PendingSince, m.EndedAt, m.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return []any{m.CampaignID, m.Endpoint, int64(m.Wave), int64(m.Rank), m.CapLabel, string(m.State), m.JobID,
		string(m.JobState), m.Reason, int64(m.Attempts), ts[0], ts[1], ts[2], ts[3]}, nil
}

// SaveMembers updates stored members, in one transaction.
func (s *Store) SaveMembers(ctx context.Context, members []campaigns.Member) error {
	if len(members) == 0 {
		return nil
	}
	stmts, err := s.memberUpdates(members)
	if err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	if err := s.w.do(ctx, campaignKey(members[0].CampaignID), stmts...); err != nil {
		return fmt.Errorf("sqlstore: save %d members of %s: %w", len(members), members[0].CampaignID, err)
	}
	return nil
}

// memberUpdates are the UPDATEs storing members' progress (state, job, reason, attempts, times).
func (s *Store) memberUpdates(members []campaigns.Member) ([]stmt, error) {
	q := s.q.updateMember
	stmts := make([]stmt, 0, len(members))
	for _, m := range members {
		a, err := memberArgs(m)
		if err != nil {
			return nil, fmt.Errorf("save member %s: %w", m.Endpoint, err)
		}
		stmts = append(stmts, stmt{q, append(a[5:], m.CampaignID, m.Endpoint)})
	}
	return stmts, nil
}

// AddMembers stores the members whose devices c can claim (claimed by no other campaign) and
// returns them. The claims and the members go in one transaction, each member only if c holds
// its device: a claim never outlives its member row, through which SaveTick releases it.
func (s *Store) AddMembers(ctx context.Context, c *campaigns.Campaign, members []campaigns.Member) ([]campaigns.Member, error) {
	if len(members) == 0 {
		return nil, nil
	}
	eps := make([]string, len(members))
	for i, m := range members {
		eps[i] = m.Endpoint
	}
	stmts, err := s.claimInserts(c.ID, eps, true)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: add members to %s: %w", c.ID, err)
	}
	for _, m := range members {
		a, err := memberArgs(m)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: add members to %s: member %s: %w", c.ID, m.Endpoint, err)
		}
		stmts = append(stmts, stmt{s.q.insertClaimedMember, append(a, m.Endpoint, c.ID)})
	}
	if err := s.w.do(ctx, campaignKey(c.ID), stmts...); err != nil {
		return nil, fmt.Errorf("sqlstore: add %d members to %s: %w", len(members), c.ID, err)
	}
	claimed, err := s.Claimed(ctx, eps)
	if err != nil {
		return nil, err
	}
	var add []campaigns.Member
	for _, m := range members {
		if claimed[m.Endpoint] == c.ID {
			add = append(add, m)
		}
	}
	return add, nil
}

// claimedMemberInsertQuery stores one member (memberArgs, then its endpoint and campaign id
// again) if its campaign holds the device's claim.
func claimedMemberInsertQuery(d *dialect) string {
	casts := []string{"TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"}
	vals := make([]string, len(casts))
	for i, t := range casts {
		vals[i] = "CAST(? AS " + t + ")"
	}
	return d.rebind("INSERT INTO campaign_members (" + strings.Join(memberColumns, ", ") + ") SELECT " + strings.Join(vals, ", ") +
		" WHERE EXISTS (SELECT 1 FROM campaign_claims WHERE endpoint = ? AND campaign_id = ?)")
}

// Claim claims the free endpoints for campaignID and returns those it holds now.
func (s *Store) Claim(ctx context.Context, campaignID string, endpoints []string) ([]string, error) {
	if len(endpoints) == 0 {
		return nil, nil
	}
	claims, err := s.claimInserts(campaignID, endpoints, true)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim for %s: %w", campaignID, err)
	}
	if err := s.w.do(ctx, campaignKey(campaignID), claims...); err != nil {
		return nil, fmt.Errorf("sqlstore: claim for %s: %w", campaignID, err)
	}
	claimed, err := s.Claimed(ctx, endpoints)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ep := range endpoints {
		if claimed[ep] == campaignID {
			out = append(out, ep)
		}
	}
	return out, nil
}

// Claimed returns the endpoints among endpoints that a campaign holds, with its id.
func (s *Store) Claimed(ctx context.Context, endpoints []string) (map[string]string, error) {
	out := make(map[string]string)
	// One query per claimedPerQuery endpoints, joining the claims with a JSON array of them.
	q := s.dialect.rebind("SELECT c.endpoint, c.campaign_id FROM " + s.dialect.jsonTextRows() + " JOIN campaign_claims c ON c.endpoint = value")
	for start := 0; start < len(endpoints); start += claimedPerQuery {
		doc, err := jsonText(endpoints[start:min(start+claimedPerQuery, len(endpoints))])
		if err != nil {
			return nil, fmt.Errorf("sqlstore: campaign claims: %w", err)
		}
		rows, err := s.query(ctx, q, doc)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: campaign claims: %w", err)
		}
		pairs, err := collect(rows, func(r scanner) ([2]string, error) {
			var p [2]string
			return p, r.Scan(&p[0], &p[1])
		})
		if err != nil {
			return nil, fmt.Errorf("sqlstore: campaign claims: %w", err)
		}
		for _, p := range pairs {
			out[p[0]] = p[1]
		}
	}
	return out, nil
}

// CampaignHistory returns a campaign's events in order.
func (s *Store) CampaignHistory(ctx context.Context, campaignID string) ([]campaigns.Event, error) {
	rows, err := s.query(ctx, s.dialect.rebind("SELECT campaign_id, seq, at, from_state, to_state, actor, action, reason "+
		"FROM campaign_events WHERE campaign_id = ? ORDER BY seq"), campaignID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: campaign %s history: %w", campaignID, err)
	}
	out, err := collect(rows, func(r scanner) (campaigns.Event, error) {
		var e campaigns.Event
		var seq, at int64
		var from, to string
		if err := r.Scan(&e.CampaignID, &seq, &at, &from, &to, &e.Actor, &e.Action, &e.Reason); err != nil {
			return e, err
		}
		e.Seq, e.At, e.From, e.To = int(seq), time.Unix(0, at).UTC(), campaigns.State(from), campaigns.State(to)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: campaign %s history: %w", campaignID, err)
	}
	return out, nil
}

// errNoLease is the writer's "no row changed" for a lease held by another node.
var errNoLease = errors.New("sqlstore: lease held by another holder")

// Lease takes or renews the named lease for holder until now+ttl when it is free, expired or
// holder's own, and reports whether holder has it.
func (s *Store) Lease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	q := s.dialect.rebind("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE " +
		"SET holder = excluded.holder, expires_at = excluded.expires_at WHERE leases.holder = excluded.holder OR leases.expires_at < ?")
	err := s.w.doMatch(ctx, "lease:"+name, errNoLease, stmt{q, []any{name, holder, now.Add(ttl).UnixNano(), now.UnixNano()}})
	switch {
	case errors.Is(err, errNoLease):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlstore: lease %s: %w", name, err)
	}
	return true, nil
}

// CampaignJobs returns the jobs of a campaign changed at or after since, oldest change first.
func (s *Store) CampaignJobs(ctx context.Context, campaignID string, since time.Time) ([]*fwupdate.Job, error) {
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	rows, err := s.query(ctx, s.dialect.rebind("SELECT "+strings.Join(jobColumns, ", ")+
		" FROM update_jobs WHERE campaign_id = ? AND updated_at >= ? ORDER BY updated_at, id"), campaignID, from)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: jobs of campaign %s: %w", campaignID, err)
	}
	out, err := collect(rows, scanJob)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: jobs of campaign %s: %w", campaignID, err)
	}
	return out, nil
}
