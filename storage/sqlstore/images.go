package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
)

// SaveImage inserts img and its labels in one transaction and returns once they are committed.
// Images are never updated: saving an ID that exists fails.
func (s *Store) SaveImage(ctx context.Context, img *firmware.Image) error {
	if img == nil || img.ID == "" {
		return errors.New("sqlstore: save image: no id")
	}
	if img.BlobKey == "" {
		return fmt.Errorf("sqlstore: save image %s: no blob key", img.ID)
	}
	args, err := imageArgs(img)
	if err != nil {
		return fmt.Errorf("sqlstore: save image %s: %w", img.ID, err)
	}
	stmts := make([]stmt, 0, 1+len(img.Labels))
	stmts = append(stmts, stmt{s.q.insertImage, args})
	for _, name := range sortedKeys(img.Labels) {
		stmts = append(stmts, stmt{s.q.insertImageLabel, []any{img.ID, name, img.Labels[name]}})
	}
	if err := s.w.do(ctx, img.ID, stmts...); err != nil {
		return fmt.Errorf("sqlstore: save image %s: %w", img.ID, err)
	}
	return nil
}

// GetImage returns the image id, or an error matching firmware.ErrNotFound.
func (s *Store) GetImage(ctx context.Context, id string) (*firmware.Image, error) {
	img, err := scanImage(s.queryRow(ctx, s.q.getImage, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = firmware.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get image %s: %w", id, err)
	}
	return img, nil
}

// ListImages returns the images matching f, ordered by ID. The model and version filters are
// exact; every label pair must be on the image; After is a cursor (IDs strictly greater).
func (s *Store) ListImages(ctx context.Context, f firmware.ImageFilter) ([]*firmware.Image, error) {
	q, args := s.imagesQuery(f)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list images: %w", err)
	}
	out, err := collect(rows, scanImage)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list images: %w", err)
	}
	return out, nil
}

// imagesQuery turns f into SQL the indexes serve: model and version are columns indexed with id,
// each label pair a lookup in image_labels by (name, value).
func (s *Store) imagesQuery(f firmware.ImageFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.Model != "" {
		where = append(where, "model = ?")
		args = append(args, f.Model)
	}
	if f.Version != "" {
		where = append(where, "version = ?")
		args = append(args, f.Version)
	}
	if f.After != "" {
		where = append(where, "id > ?")
		args = append(args, f.After)
	}
	for _, name := range sortedKeys(f.Labels) {
		where = append(where, "id IN (SELECT image_id FROM image_labels WHERE name = ? AND value = ?)")
		args = append(args, name, f.Labels[name])
	}
	var b strings.Builder
	b.WriteString(s.q.selectImages)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	b.WriteString(" ORDER BY id")
	if f.Limit > 0 {
		b.WriteString(" LIMIT ?")
		args = append(args, f.Limit)
	}
	return s.dialect.rebind(b.String()), args
}

// DeleteImage removes the image id and its labels, or fails with an error matching
// firmware.ErrNotFound when there is no such image and firmware.ErrInUse while an active update
// job delivers it or a campaign that has not ended names it. The check and the delete are one transaction: a job created at the same time
// either commits first (and the delete is refused) or finds the image gone (CreateJob fails).
// The blob is the caller's business.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	var stmts []stmt
	if lock := s.q.lockImageForDelete; lock != "" {
		// Waits for jobs that hold the row (CreateJob's lockImage) to commit, so that the next
		// statement, in a new snapshot, sees them.
		stmts = append(stmts, stmt{lock, []any{id}})
	}
	stmts = append(stmts, stmt{s.q.deleteImageLabels, []any{id}}, stmt{s.q.deleteUnusedImage, []any{id, id, id}})
	err := s.w.doMatch(ctx, id, errDeleteRefused, stmts...)
	if errors.Is(err, errDeleteRefused) {
		err = firmware.ErrNotFound
		if _, gerr := s.GetImage(ctx, id); gerr == nil {
			err = firmware.ErrInUse
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: delete image %s: %w", id, err)
	}
	return nil
}

// EditImage sets the release notes and metadata that edit names, in one statement, or fails
// with an error matching firmware.ErrNotFound. An empty metadata map is stored as none.
func (s *Store) EditImage(ctx context.Context, id string, edit firmware.ImageEdit) error {
	var (
		set  []string
		args []any
	)
	if edit.ReleaseNotes != nil {
		set = append(set, "release_notes = ?")
		args = append(args, *edit.ReleaseNotes)
	}
	if edit.Metadata != nil {
		meta, err := nullJSON(edit.Metadata, len(edit.Metadata) == 0)
		if err != nil {
			return fmt.Errorf("sqlstore: edit image %s: metadata: %w", id, err)
		}
		set = append(set, "metadata = ?")
		args = append(args, meta)
	}
	if len(set) == 0 { // nothing to change: still tell a missing image
		_, err := s.GetImage(ctx, id)
		return err
	}
	q := s.dialect.rebind("UPDATE images SET " + strings.Join(set, ", ") + " WHERE id = ?")
	err := s.w.doMatch(ctx, id, firmware.ErrNotFound, stmt{q, append(args, id)})
	if err != nil {
		return fmt.Errorf("sqlstore: edit image %s: %w", id, err)
	}
	return nil
}

// errDeleteRefused: DeleteImage deleted no row; the image is missing or in use.
var errDeleteRefused = errors.New("delete refused")

// CountBlobRefs counts the images whose bytes are at blobKey.
func (s *Store) CountBlobRefs(ctx context.Context, blobKey string) (int, error) {
	var n int
	if err := s.queryRow(ctx, s.q.countBlobRefs, blobKey).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlstore: count references to %s: %w", blobKey, err)
	}
	return n, nil
}

// imageArgs encodes img in the order of imageColumns.
func imageArgs(img *firmware.Image) ([]any, error) {
	target, err := jsonText(img.Target)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	labels, err := nullJSON(img.Labels, img.Labels == nil)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	meta, err := nullJSON(img.Metadata, img.Metadata == nil)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	boot, err := nullJSON(img.MCUboot, img.MCUboot == nil)
	if err != nil {
		return nil, fmt.Errorf("mcuboot: %w", err)
	}
	created, err := nanos(img.CreatedAt)
	if err != nil {
		return nil, err
	}
	var sig any // NULL for a nil signature, so that nil and empty read back as they were saved
	if img.Signature != nil {
		sig = img.Signature
	}
	return []any{
		img.ID, img.Name, img.Version, target, img.Target.Model, img.Size, img.SHA256,
		string(img.SignatureAlg), img.KeyID, sig, img.Unsigned, img.Uploader, created,
		img.ReleaseNotes, labels, boot, img.BlobKey, meta,
	}, nil
}

// scanImage reads one row of imageColumns.
func scanImage(row interface{ Scan(...any) error }) (*firmware.Image, error) {
	var (
		img           firmware.Image
		target, model string
		alg           string
		sig           sql.Null[[]byte]
		created       sql.NullInt64
		labels, boot  sql.NullString
		meta          sql.NullString
	)
	err := row.Scan(&img.ID, &img.Name, &img.Version, &target, &model, &img.Size, &img.SHA256,
		&alg, &img.KeyID, &sig, &img.Unsigned, &img.Uploader, &created,
		&img.ReleaseNotes, &labels, &boot, &img.BlobKey, &meta)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(target), &img.Target); err != nil {
		return nil, fmt.Errorf("image %s: target: %w", img.ID, err)
	}
	if labels.Valid {
		if err := json.Unmarshal([]byte(labels.String), &img.Labels); err != nil {
			return nil, fmt.Errorf("image %s: labels: %w", img.ID, err)
		}
		if img.Labels == nil { // "{}" was saved for an empty map
			img.Labels = map[string]string{}
		}
	}
	if meta.Valid {
		if err := json.Unmarshal([]byte(meta.String), &img.Metadata); err != nil {
			return nil, fmt.Errorf("image %s: metadata: %w", img.ID, err)
		}
		if img.Metadata == nil {
			img.Metadata = map[string]string{}
		}
	}
	if boot.Valid {
		if err := json.Unmarshal([]byte(boot.String), &img.MCUboot); err != nil {
			return nil, fmt.Errorf("image %s: mcuboot: %w", img.ID, err)
		}
	}
	if sig.Valid {
		img.Signature = sig.V
		if img.Signature == nil { // SQLite reads an empty BLOB back as nil
			img.Signature = []byte{}
		}
	}
	img.SignatureAlg = signing.Algorithm(alg)
	img.CreatedAt = fromNanos(created)
	return &img, nil
}

// sortedKeys returns m's keys in order, so that statements and queries come out the same every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
