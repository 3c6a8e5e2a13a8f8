package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/pressly/goose/v3"

	"github.com/lwota/lwota/migrations"
)

// migrate applies the dialect's pending migrations with a goose Provider of its own: no global
// goose state, no Go migrations from goose's global registry.
func migrate(ctx context.Context, db *sql.DB, d *dialect, logger *slog.Logger, opts ...goose.ProviderOption) error {
	fsys, err := migrations.For(d.name)
	if err != nil {
		return err
	}
	opts = append(opts, goose.WithDisableGlobalRegistry(true), goose.WithSlog(logger))
	p, err := goose.NewProvider(d.goose, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	// Not p.Close: it would close db.
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "applied migration", "backend", d.name,
			"version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}
