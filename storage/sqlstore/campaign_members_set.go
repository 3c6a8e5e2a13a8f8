package sqlstore

import (
	"fmt"
	"strings"

	"github.com/lwota/lwota/campaigns"
)

// setRowsPerStatement bounds the endpoints one set-based INSERT carries in its JSON array.
const setRowsPerStatement = 10000

// maxSetRuns bounds the statements of a set-based member insert: more runs (members whose
// ranks do not follow each other within a wave) than this are stored row by row.
const maxSetRuns = 64

// memberSetInsertQuery stores runs of members that differ only in their endpoint, wave and
// rank: each run's endpoints in a JSON array (one parameter) with its wave and first rank (the
// rank of an endpoint is the run's first plus its index in the array), every other column one
// parameter for all. SQLite parses one statement and walks the arrays instead of binding 14
// parameters a member: 0.5x the CPU of memberInserts at 10,000. The rows of all the runs go in
// in endpoint order: the primary key's B-tree then fills page after page instead of at random
// places (a wave is in the plan's hashed order; a campaign of 10 waves is 10 runs).
// Parameters: campaign_id, cap_label ... updated_at (as memberArgs), then per run its wave,
// first rank and array.
func memberSetInsertQuery(d *dialect, runs int) string {
	from, index := d.jsonTextRowsIndexed()
	run := "SELECT value AS endpoint, CAST(? AS BIGINT) AS wave, CAST(? AS BIGINT) + " + index + " AS ord FROM " + from
	return d.rebind("INSERT INTO campaign_members (campaign_id, endpoint, wave, ord, cap_label, state, job_id, job_state, reason, " +
		"attempts, started_at, pending_since, ended_at, updated_at) SELECT CAST(? AS TEXT), u.endpoint, u.wave, u.ord" +
		", CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), " +
		"CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT) FROM (" + strings.Repeat(run+" UNION ALL ", runs-1) + run +
		") AS u ORDER BY u.endpoint")
}

// claimSetInsertQuery claims the endpoints of a JSON array (one parameter) for a campaign;
// with skipTaken, endpoints claimed already are left alone instead of failing the
// transaction. (SQLite needs the WHERE to read ON CONFLICT as the upsert's, not a join's.)
// The claims go in in endpoint order, their primary key's, as memberSetInsertQuery's rows.
func claimSetInsertQuery(d *dialect, skipTaken bool) string {
	q := "INSERT INTO campaign_claims (endpoint, campaign_id) SELECT value, CAST(? AS TEXT) FROM " + d.jsonTextRows() + " WHERE true ORDER BY value"
	if skipTaken {
		q += " ON CONFLICT (endpoint) DO NOTHING"
	}
	return d.rebind(q)
}

// jsonTextRowsIndexed is jsonTextRows with the SQL expression of each element's 0-based index.
func (d *dialect) jsonTextRowsIndexed() (from, index string) {
	if d.name == "postgres" {
		return "jsonb_array_elements_text(CAST(? AS jsonb)) WITH ORDINALITY AS j(value, n)", "(j.n - 1)"
	}
	return "json_each(?)", "key"
}

// memberSetInserts are set-based INSERTs of members (memberSetInsertQuery), when they are
// what a campaign's creation stores: alike but for their endpoint, wave and rank, in runs of
// consecutive ranks within a wave (each wave in start order). ok is false for any other list,
// which memberInserts stores row by row.
func (s *Store) memberSetInserts(members []campaigns.Member) (out []stmt, ok bool, err error) {
	if len(members) == 0 {
		return nil, false, nil
	}
	alike := func(m campaigns.Member) campaigns.Member {
		m.Endpoint, m.Wave, m.Rank = "", 0, 0
		return m
	}
	first := alike(members[0])
	type run struct{ start, end int }
	var runs []run
	for i, m := range members {
		if alike(m) != first {
			return nil, false, nil
		}
		if i > 0 && m.Wave == members[i-1].Wave && m.Rank == members[i-1].Rank+1 && i-runs[len(runs)-1].start < setRowsPerStatement {
			runs[len(runs)-1].end = i + 1
			continue
		}
		if len(runs) == maxSetRuns {
			return nil, false, nil
		}
		runs = append(runs, run{i, i + 1})
	}
	consts, err := memberArgs(members[0])
	if err != nil {
		return nil, false, fmt.Errorf("member %s: %w", members[0].Endpoint, err)
	}
	// Runs go together into one statement up to setRowsPerStatement members: a campaign of 10
	// waves of 1,000 is one INSERT, sorted as a whole.
	var group []run
	rows := 0
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		// campaign_id, cap_label ... updated_at as memberArgs, then each run's wave, first rank
		// and endpoints.
		args := append([]any{consts[0]}, consts[4:]...)
		for _, r := range group {
			eps := make([]string, 0, r.end-r.start)
			for _, m := range members[r.start:r.end] {
				eps = append(eps, m.Endpoint)
			}
			doc, err := jsonText(eps)
			if err != nil {
				return err
			}
			m := members[r.start]
			args = append(args, int64(m.Wave), int64(m.Rank), doc)
		}
		q := s.q.insertMemberSet // one run: the statement the writer prepared
		if len(group) > 1 {
			q = memberSetInsertQuery(s.dialect, len(group))
		}
		out = append(out, stmt{q, args})
		group, rows = group[:0], 0
		return nil
	}
	for _, r := range runs {
		if rows+r.end-r.start > setRowsPerStatement {
			if err := flush(); err != nil {
				return nil, false, err
			}
		}
		group = append(group, r)
		rows += r.end - r.start
	}
	if err := flush(); err != nil {
		return nil, false, err
	}
	return out, true, nil
}
