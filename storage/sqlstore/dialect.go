package sqlstore

import (
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

// dialect is everything that differs between SQLite and PostgreSQL once a connection is open.
// Queries are written once, with "?" placeholders and the upsert syntax both share
// (INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col); rebind numbers the
// placeholders for PostgreSQL.
type dialect struct {
	name        string        // "sqlite" or "postgres", also the migrations folder
	goose       goose.Dialect // for the migration provider
	numbered    bool          // placeholders are $1, $2, ... instead of ?
	writers     int           // writer goroutines, each committing its own batches
	queue       int           // bounded write queue shared by the writers
	maxBatch    int           // most writes committed in one transaction
	maxReaders  int           // open read connections
	lookupConns int           // connections of the group reads' own pool (groupReads)
	// unboundedTx runs the writer's transactions under a context that never ends. On SQLite a
	// context that can end costs a watcher goroutine and a progress handler per statement
	// (modernc.org/sqlite), about a tenth of a registration's server CPU; there is no network
	// to hang on, and busy_timeout bounds the only wait (another process's write lock).
	unboundedTx bool
	// pipelined commits a batch through pgx directly: BEGIN and its statements go to
	// PostgreSQL in one pipeline (a pgx.Batch), then COMMIT: two round trips per batch instead
	// of one per statement and two more for the transaction.
	pipelined bool
	// groupReads answers the per-request lookups (HasCredential, StoredInfo) many per query
	// (groupread.go), with readers goroutines per lookup, each taking up to maxBatch lookups.
	groupReads bool
	readers    int
	// walCheckpoint: the database checkpoints a write-ahead log, which a large write's commit
	// leaves to the writer to run after answering it (checkpoint.go).
	walCheckpoint bool
}

// rebind turns "?" placeholders into "$n" where the dialect wants numbered ones. Queries in this
// package never contain a literal question mark.
func (d *dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// upsert builds "INSERT INTO table (cols) VALUES (?, ...) ON CONFLICT (key) DO UPDATE SET
// col = excluded.col, ..." in the syntax SQLite (3.24+) and PostgreSQL share.
func upsert(table string, key, cols []string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('?')
	}
	b.WriteString(") ON CONFLICT (")
	b.WriteString(strings.Join(key, ", "))
	b.WriteString(") DO UPDATE SET ")
	first := true
	for _, c := range cols {
		if isKey(c, key) {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(c)
		b.WriteString(" = excluded.")
		b.WriteString(c)
	}
	return b.String()
}

// upsertArrays is upsert for PostgreSQL over one array per column ($1::type[], ...), a row per
// element (a merger, merge.go): "INSERT INTO table (cols) SELECT * FROM unnest($1::text[], ...)
// ON CONFLICT (key) DO UPDATE SET col = excluded.col, ...". types are the columns' types.
func upsertArrays(table string, key, cols, types []string) string {
	q := upsert(table, key, cols)
	values := q[strings.Index(q, " VALUES ("):strings.Index(q, " ON CONFLICT (")]
	return strings.Replace(q, values, " SELECT * FROM "+unnest(types), 1)
}

// unnest is "unnest($1::t1[], $2::t2[], ...)" for PostgreSQL: the rows of one array per column.
func unnest(types []string) string {
	var b strings.Builder
	b.WriteString("unnest(")
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1) + "::" + t + "[]")
	}
	b.WriteString(")")
	return b.String()
}

// jsonTextRows is a FROM item with a row per element of a JSON array of strings (one "?"
// parameter), the element as text in column value: SQLite's json_each, PostgreSQL's
// jsonb_array_elements_text.
func (d *dialect) jsonTextRows() string {
	if d.name == "postgres" {
		return "jsonb_array_elements_text(CAST(? AS jsonb)) AS j(value)"
	}
	return "json_each(?)"
}

// insert builds "INSERT INTO table (cols) VALUES (?, ...)": for rows that are never replaced.
func insert(table string, cols []string) string {
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (?" +
		strings.Repeat(", ?", len(cols)-1) + ")"
}

func isKey(c string, key []string) bool {
	for _, k := range key {
		if c == k {
			return true
		}
	}
	return false
}
