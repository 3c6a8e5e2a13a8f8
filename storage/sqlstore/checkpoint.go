package sqlstore

import (
	"context"
	"encoding/binary"
	"os"
	"slices"
	"strconv"
)

// A campaign start of 10,000 devices writes some 700 WAL pages in one commit. SQLite runs its
// automatic checkpoint inside the COMMIT that takes the WAL past wal_autocheckpoint pages (1000),
// so a start's commit often paid for copying every page of the WAL to the database file and
// syncing it, before the start could answer: the p99 outliers of issue 16's fleet bench. A
// large write (doLarge) therefore commits with the automatic checkpoint off, and the writer runs
// the same PASSIVE checkpoint right after answering the batch, before it takes the next one.
// The work is the same, on the same goroutine: the writes queued behind wait as long as they
// did behind the checkpoint inside the commit (a background checkpointer, tried in session 9,
// contended with the writer and cost Updates 0.59-0.91x). The commit is as durable as before:
// a checkpoint only copies committed WAL frames into the database file.

// doLarge is do for a write of thousands of rows that its caller answers an API request with
// (a campaign start): on SQLite its commit runs no checkpoint, the writer runs it after
// answering, when the WAL holds wal_autocheckpoint frames (as the commit would have).
func (w *writer) doLarge(ctx context.Context, key string, stmts ...stmt) error {
	return w.queue(ctx, key, &write{ctx: ctx, key: key, stmts: stmts, done: make(chan error, 1), large: true})
}

// deferCheckpoint turns SQLite's automatic checkpoint off for a batch holding a large write,
// and returns what to run once the batch is answered: the checkpoint, and the automatic one
// turned back on. It returns nil when there is nothing to defer (no large write, PostgreSQL,
// automatic checkpoints off).
func (c *committer) deferCheckpoint(batch []*write) func() {
	if !c.walCheckpoint || !slices.ContainsFunc(batch, func(op *write) bool { return op.large }) {
		return nil
	}
	ctx := context.Background()
	if c.autoCheckpoint == 0 {
		// Read once: the setting of the writer's connection (SQLite's default 1000 pages).
		if err := c.db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&c.autoCheckpoint); err != nil {
			c.autoCheckpoint = 0
			return nil
		}
	}
	if c.autoCheckpoint <= 0 {
		return nil // checkpoints are off: nothing to defer
	}
	if _, err := c.db.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		return nil // the commit checkpoints as usual
	}
	return func() {
		// Turned back on first: a failed checkpoint must not leave the WAL growing forever.
		// Errors are dropped as SQLite drops those of its automatic checkpoint: the next one
		// copies what this one did not.
		_, _ = c.db.ExecContext(ctx, "PRAGMA wal_autocheckpoint = "+strconv.Itoa(c.autoCheckpoint))
		// SQLite's rule: checkpoint once the WAL holds wal_autocheckpoint frames. Below that
		// (a start of 10 devices), the next commit past it checkpoints as usual.
		if frames, ok := c.walFrames(ctx); ok && frames < c.autoCheckpoint {
			return
		}
		if h := c.beforeCheckpoint; h != nil {
			if f := h.Load(); f != nil {
				(*f)()
			}
		}
		// PASSIVE, as the automatic checkpoint: it waits for no reader.
		_, _ = c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// walFrames is the number of frames in the WAL (what SQLite compares with wal_autocheckpoint),
// read from the wal-index header in the database's -shm file (mxFrame, a 32-bit integer in
// native byte order at offset 16: sqlite.org/walformat.html). SQLite has no pragma for it, and
// the driver exposes no sqlite3_wal_hook. The writer is the only process writing (one write
// connection), so the header it reads is the one its own commit left. ok is false when the
// file cannot be read: the caller then checkpoints, as a safe default.
func (c *committer) walFrames(ctx context.Context) (frames int, ok bool) {
	if c.walIndex == "" {
		var file string
		if err := c.db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil || file == "" {
			return 0, false
		}
		c.walIndex = file + "-shm"
	}
	f, err := os.Open(c.walIndex)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var hdr [20]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, false
	}
	return int(binary.NativeEndian.Uint32(hdr[16:])), true
}
