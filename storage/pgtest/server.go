package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// StartServer starts a throwaway cluster of its own outside a test (lwota dev cluster, lwota
// bench cluster) with one empty database, lwota, and returns its DSN. stop stops the server
// and removes its directory; the watchdog does the same if this process dies first.
func StartServer(ctx context.Context) (dsn string, stop func(), err error) {
	c, err := startThrowaway()
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := adminExec(ctx, c.url, "CREATE DATABASE lwota"); err != nil {
		c.stop()
		return "", nil, fmt.Errorf("pgtest: create database: %w", err)
	}
	u, err := url.Parse(c.url)
	if err != nil {
		c.stop()
		return "", nil, err
	}
	u.Path = "/lwota"
	return u.String(), c.stop, nil
}
