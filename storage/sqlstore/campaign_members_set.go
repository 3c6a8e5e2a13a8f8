package sqlstore

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lwota/lwota/campaigns"
)

// setRowsPerStatement bounds the endpoints one set-based INSERT carries in its JSON document.
const setRowsPerStatement = 10000

// memberSetInsertQuery stores members that differ only in their endpoint, wave and rank: one
// JSON object (one parameter) maps each endpoint to its wave and rank packed in one integer
// (wave<<32 | rank, memberPlace), every other column one parameter for all. SQLite parses one
// statement and walks the object instead of binding 14 parameters a member: 0.5x the CPU of
// memberInserts at 10,000. The object's keys come in endpoint order (memberSetInserts sorts
// them) and both backends read a JSON object (SQLite's json_each, PostgreSQL's json_each_text of
// json, not jsonb) in the document's order: the rows go in in the primary key's order, so its
// B-tree fills page after page, without the sort an ORDER BY of the statement cost SQLite (about
// a fifth of a 10,000-member create's CPU; a campaign's waves are in the plan's hashed order).
// Parameters: campaign_id, cap_label ... updated_at (as memberArgs), then the object.
func memberSetInsertQuery(d *dialect) string {
	from, value := "json_each(?)", "value"
	if d.name == "postgres" {
		from, value = "json_each_text(CAST(? AS json)) AS j(key, value)", "CAST(j.value AS BIGINT)"
	}
	return d.rebind("INSERT INTO campaign_members (campaign_id, endpoint, wave, ord, cap_label, state, job_id, job_state, reason, " +
		"attempts, started_at, pending_since, ended_at, updated_at) SELECT CAST(? AS TEXT), key, " + value + " >> 32, " +
		value + " & 4294967295, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), " +
		"CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT) FROM " + from)
}

// memberPlace packs a member's wave and rank into the integer memberSetInsertQuery unpacks;
// ok is false for a wave or rank out of its 31 or 32 bits.
func memberPlace(m campaigns.Member) (int64, bool) {
	if m.Wave < 0 || m.Rank < 0 || int64(m.Wave) >= 1<<31 || int64(m.Rank) >= 1<<32 {
		return 0, false
	}
	return int64(m.Wave)<<32 | int64(m.Rank), true
}

// claimSetInsertQuery claims the endpoints of a JSON array (one parameter) for a campaign;
// with skipTaken, endpoints claimed already are left alone instead of failing the
// transaction. (SQLite needs the WHERE to read ON CONFLICT as the upsert's, not a join's.)
// The array comes sorted (claimInserts), so the claims go in in their primary key's order
// without an ORDER BY, as memberSetInsertQuery's rows.
func claimSetInsertQuery(d *dialect, skipTaken bool) string {
	q := "INSERT INTO campaign_claims (endpoint, campaign_id) SELECT value, CAST(? AS TEXT) FROM " + d.jsonTextRows() + " WHERE true"
	if skipTaken {
		q += " ON CONFLICT (endpoint) DO NOTHING"
	}
	return d.rebind(q)
}

// memberSetInserts are set-based INSERTs of members (memberSetInsertQuery), when they are
// what a campaign's creation stores: alike but for their endpoint, wave and rank. ok is false
// for any other list, which memberInserts stores row by row.
func (s *Store) memberSetInserts(members []campaigns.Member) (out []stmt, ok bool, err error) {
	if len(members) == 0 {
		return nil, false, nil
	}
	alike := func(m campaigns.Member) campaigns.Member {
		m.Endpoint, m.Wave, m.Rank = "", 0, 0
		return m
	}
	first := alike(members[0])
	type row struct {
		ep    string
		place int64
	}
	rows := make([]row, len(members))
	for i, m := range members {
		if alike(m) != first {
			return nil, false, nil
		}
		place, ok := memberPlace(m)
		if !ok {
			return nil, false, nil
		}
		rows[i] = row{m.Endpoint, place}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.ep, b.ep) })
	consts, err := memberArgs(members[0])
	if err != nil {
		return nil, false, fmt.Errorf("member %s: %w", members[0].Endpoint, err)
	}
	for start := 0; start < len(rows); start += setRowsPerStatement {
		chunk := rows[start:min(start+setRowsPerStatement, len(rows))]
		size := 2
		for _, r := range chunk {
			size += len(r.ep) + 16 // quotes, colon, comma and the place's digits, when nothing is escaped
		}
		var doc strings.Builder // one copy of the document, where a []byte and string(doc) made two
		doc.Grow(size)
		for i, r := range chunk {
			if i == 0 {
				doc.WriteByte('{')
			} else {
				doc.WriteByte(',')
			}
			if err := writeJSONString(&doc, r.ep); err != nil {
				return nil, false, fmt.Errorf("member %s: %w", r.ep, err)
			}
			doc.WriteByte(':')
			var num [20]byte
			doc.Write(strconv.AppendInt(num[:0], r.place, 10))
		}
		doc.WriteByte('}')
		// campaign_id, cap_label ... updated_at as memberArgs, then the object.
		args := append(append([]any{consts[0]}, consts[4:]...), doc.String())
		out = append(out, stmt{s.q.insertMemberSet, args})
	}
	return out, true, nil
}

// writeJSONString writes s as a JSON string: as it is when it holds only printable ASCII other
// than the quote and the backslash (an endpoint, usually), else as encoding/json writes it.
func writeJSONString(b *strings.Builder, s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			q, err := json.Marshal(s)
			if err != nil {
				return err
			}
			b.Write(q)
			return nil
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
	return nil
}

// jsonStrings is the JSON array of eps, built in one buffer of the size it needs: a campaign's
// claims carry 10,000 endpoints, which json.Marshal copied twice more (its buffer, then the
// string).
func jsonStrings(eps []string) (string, error) {
	size := 2
	for _, ep := range eps {
		size += len(ep) + 3
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('[')
	for i, ep := range eps {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeJSONString(&b, ep); err != nil {
			return "", err
		}
	}
	b.WriteByte(']')
	return b.String(), nil
}
