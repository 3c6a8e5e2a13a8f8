package blobstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// probeKey is the object Check writes and reads back. It starts with the reserved prefix, so
// no image key can collide with it and Dir's List never shows it.
const probeKey = reservedPrefix + "probe"

// Check writes a small object and reads it back: the store can take uploads and serve
// downloads now. A full disk, a read-only mount or an unreachable bucket fails it.
func (d *Dir) Check(ctx context.Context) error {
	want := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	if _, err := d.put(ctx, probeKey, bytes.NewReader(want)); err != nil {
		return fmt.Errorf("blobstore: check: write: %w", err)
	}
	got, err := os.ReadFile(d.path(probeKey))
	if err != nil {
		return fmt.Errorf("blobstore: check: read: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("blobstore: check: read back %d bytes that differ from those written", len(got))
	}
	return nil
}

// Check writes a small object under the configured Prefix and reads it back.
func (s *S3) Check(ctx context.Context) error {
	want := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	k := s.objectKey(probeKey)
	if _, err := s.put(ctx, k, bytes.NewReader(want)); err != nil {
		return fmt.Errorf("blobstore: check: write: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return fmt.Errorf("blobstore: check: read: %w", err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(io.LimitReader(out.Body, 64))
	if err != nil {
		return fmt.Errorf("blobstore: check: read: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("blobstore: check: read back bytes that differ from those written")
	}
	return nil
}

// SweepStale removes what crashed writers left behind before cutoff and returns how many:
// Dir's temporary files.
func (d *Dir) SweepStale(ctx context.Context, cutoff time.Time) (int, error) {
	return d.removeStaleTemps(ctx, cutoff)
}

// SweepStale aborts the multipart uploads initiated before cutoff (see AbortUploads).
func (s *S3) SweepStale(ctx context.Context, cutoff time.Time) (int, error) {
	return s.AbortUploads(ctx, cutoff)
}

// Sweeper is a store that can remove the leftovers of crashed writers.
type Sweeper interface {
	SweepStale(ctx context.Context, cutoff time.Time) (int, error)
}

// SweepConfig says how often Sweep runs and how old a leftover must be to go. Age must be
// longer than any upload still running (on any node sharing the store), or that upload fails.
type SweepConfig struct {
	Interval time.Duration
	Age      time.Duration
	Now      func() time.Time // nil: time.Now
}

// DefaultSweepConfig sweeps every 10 minutes what is older than an hour.
func DefaultSweepConfig() SweepConfig {
	return SweepConfig{Interval: 10 * time.Minute, Age: time.Hour}
}

// Sweep calls s.SweepStale at once and then every cfg.Interval until ctx ends, removing what is
// older than cfg.Age. A failed pass is logged and the next one tries again.
func Sweep(ctx context.Context, s Sweeper, cfg SweepConfig, logger *slog.Logger) {
	def := DefaultSweepConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.Age <= 0 {
		cfg.Age = def.Age
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		n, err := s.SweepStale(ctx, cfg.Now().Add(-cfg.Age))
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("sweep of stale uploads failed", "err", err)
		case n > 0:
			logger.Info("stale uploads removed", "count", n, "older_than", cfg.Age)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
