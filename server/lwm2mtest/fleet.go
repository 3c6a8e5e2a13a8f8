package lwm2mtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Fleet is N devices built from one template, each on its own socket.
type Fleet struct {
	devices []*Device
}

// StartReport says how a Fleet's registration went.
type StartReport struct {
	Registered int           // devices registered by this Start
	Duration   time.Duration // from the first Register sent to the last answered
}

// Rate is registrations per second.
func (r StartReport) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Registered) / r.Duration.Seconds()
}

// DefaultNaming names device i "sim-000042".
func DefaultNaming(i int) string { return fmt.Sprintf("sim-%06d", i) }

// NewFleet builds n devices from tmpl; naming gives each its endpoint (nil is DefaultNaming).
// The serial number follows the endpoint unless tmpl sets one.
func NewFleet(n int, tmpl DeviceConfig, naming func(i int) string, logger *slog.Logger) *Fleet {
	if naming == nil {
		naming = DefaultNaming
	}
	f := &Fleet{devices: make([]*Device, n)}
	for i := range n {
		cfg := tmpl
		cfg.Endpoint = naming(i)
		f.devices[i] = NewDevice(cfg, logger)
	}
	return f
}

// Devices returns the fleet's devices, in naming order.
func (f *Fleet) Devices() []*Device { return f.devices }

// Start registers every device with at most concurrency registrations in flight
// (concurrency < 1 means 1). It returns when all are registered, or at the first failure
// after the registrations already in flight have finished.
func (f *Fleet) Start(ctx context.Context, server string, concurrency int) (StartReport, error) {
	concurrency = max(concurrency, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		registered atomic.Int64
		wg         sync.WaitGroup
		errMu      sync.Mutex
		firstErr   error
	)
	sem := make(chan struct{}, concurrency)
	begin := time.Now()
loop:
	for _, d := range f.devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := d.Start(ctx, server); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				cancel()
				return
			}
			registered.Add(1)
		}()
	}
	wg.Wait()
	rep := StartReport{Registered: int(registered.Load()), Duration: time.Since(begin)}
	if firstErr == nil && rep.Registered < len(f.devices) {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return rep, fmt.Errorf("fleet: %d of %d registered: %w", rep.Registered, len(f.devices), firstErr)
	}
	return rep, nil
}

// Stats sums the devices' counters.
func (f *Fleet) Stats() Stats {
	var s Stats
	s.Requests = map[Op]uint64{}
	for _, d := range f.devices {
		s.merge(d.Stats())
	}
	return s
}

// Close closes every device (no de-registration).
func (f *Fleet) Close() error {
	var errs []error
	for _, d := range f.devices {
		if err := d.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
