package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// checkBootstrap checks the --bootstrap flags of lwota sim.
func (c simConfig) checkBootstrap() error {
	if c.Bootstrap == "" {
		if c.BootstrapPSKIdentity != "" || c.BootstrapPSKKey != "" {
			return errors.New("sim: --bootstrap-psk-identity and --bootstrap-psk-key need --bootstrap")
		}
		return nil
	}
	switch {
	case strings.HasPrefix(c.Bootstrap, "coaps://"):
		if c.BootstrapPSKIdentity == "" || c.BootstrapPSKKey == "" {
			return errors.New("sim: a coaps:// --bootstrap needs --bootstrap-psk-identity and --bootstrap-psk-key")
		}
		if _, err := hex.DecodeString(c.BootstrapPSKKey); err != nil {
			return errors.New("sim: --bootstrap-psk-key must be hex")
		}
	case strings.HasPrefix(c.Bootstrap, "coap://"):
	default:
		return fmt.Errorf("sim: --bootstrap %q: want coaps://HOST:PORT or coap://HOST:PORT", c.Bootstrap)
	}
	return nil
}

// simBootstrap runs the devices from bootstrap credentials only: each bootstraps, registers with
// the DM server it was given (and bootstraps again when the server executes /1/x/9).
func simBootstrap(ctx context.Context, cfg simConfig, tmpl lwm2mtest.DeviceConfig, stdout io.Writer, logger *slog.Logger) error {
	key, _ := hex.DecodeString(cfg.BootstrapPSKKey)
	devs := make([]*lwm2mtest.BootstrapDevice, cfg.Count)
	for i := range devs {
		dc := tmpl
		dc.Endpoint = fmt.Sprintf("%s%06d", cfg.Prefix, i)
		devs[i] = lwm2mtest.NewBootstrapDevice(dc, lwm2mtest.BootstrapConfig{
			URI: cfg.Bootstrap, PSKIdentity: strings.ReplaceAll(cfg.BootstrapPSKIdentity, "{ep}", dc.Endpoint), PSK: key,
		}, logger)
	}
	defer func() {
		for _, d := range devs {
			_ = d.Close()
		}
	}()
	start := time.Now()
	sem := make(chan struct{}, max(1, cfg.Concurrency))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, d := range devs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := d.Start(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("sim: %w", first)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "bootstrapped and registered %d devices in %s (%.0f/s)\n", cfg.Count, took.Round(time.Millisecond), float64(cfg.Count)/took.Seconds())
	if cfg.ExitAfterReg {
		return nil
	}
	<-ctx.Done()
	return nil
}
