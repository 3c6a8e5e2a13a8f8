package lwm2mtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

// Profiles of bootstrap clients (DeviceConfig fields, for a BootstrapDevice).
const (
	ProfileBootstrapNoDiscover   = "bootstrap-no-discover"
	ProfileBootstrapRefuseFinish = "bootstrap-refuse-finish"
)

// executeBootstrapTrigger is /1/x/9: the device bootstraps again once the 2.04 is sent.
func executeBootstrapTrigger(d *Device, _ lwm2m.Path, _ string) (func(), error) {
	if d.cfg.OnBootstrapTrigger == nil {
		return nil, nil
	}
	return func() { go d.cfg.OnBootstrapTrigger() }, nil
}

// BootstrapDevice is a device that starts from bootstrap credentials only: it bootstraps, then
// registers with the DM server it was given, using the credential it was given; an Execute of
// /1/x/9 makes it de-register, bootstrap again and register with what it gets then. Its methods
// are safe for concurrent use.
type BootstrapDevice struct {
	tmpl DeviceConfig
	bc   BootstrapConfig
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	dev     *Device
	prov    *Provisioned
	ops     []BootstrapOp
	gen     int           // bootstraps that ended in a registration
	changed chan struct{} // closed when gen or lastErr changes
	lastErr error
	closed  bool
}

// NewBootstrapDevice returns a device that bootstraps per bc; cfg's PSK fields are ignored (the
// Bootstrap Server gives them).
func NewBootstrapDevice(cfg DeviceConfig, bc BootstrapConfig, logger *slog.Logger) *BootstrapDevice {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bc.DiscoverNotFound = bc.DiscoverNotFound || cfg.BootstrapDiscoverNotFound
	if bc.RefuseFinish == "" {
		bc.RefuseFinish = cfg.BootstrapRefuseFinish
	}
	ctx, stop := context.WithCancel(context.Background())
	return &BootstrapDevice{tmpl: cfg, bc: bc, log: logger.With("ep", cfg.Endpoint), ctx: ctx, stop: stop, changed: make(chan struct{})}
}

// Start bootstraps and registers; ctx bounds both.
func (b *BootstrapDevice) Start(ctx context.Context) error {
	return b.cycle(ctx, nil)
}

// cycle runs one bootstrap (previous: the account held now) and registers with its result.
func (b *BootstrapDevice) cycle(ctx context.Context, previous *Provisioned) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	prov, ops, err := Bootstrap(ctx, b.tmpl.Endpoint, b.bc, previous, b.log)
	b.mu.Lock()
	b.ops = ops
	b.mu.Unlock()
	if err != nil {
		return b.fail(err)
	}
	addr, err := prov.Addr()
	if err != nil {
		return b.fail(err)
	}
	cfg := b.tmpl
	cfg.PSKIdentity, cfg.PSK, cfg.X509 = "", nil, nil
	switch prov.SecurityMode {
	case 0:
		cfg.PSKIdentity, cfg.PSK = prov.PSKIdentity, prov.PSK
	case 2:
		x := &DeviceX509{Certificate: prov.Certificate, PrivateKey: prov.PrivateKey, ServerCertificate: prov.ServerCertificate}
		if b.tmpl.X509 != nil { // the roots a device without a pinned server certificate trusts
			x.RootCAs, x.ServerName = b.tmpl.X509.RootCAs, b.tmpl.X509.ServerName
		}
		cfg.X509 = x
	}
	cfg.Lifetime = prov.Lifetime
	cfg.OnBootstrapTrigger = b.trigger
	// The server stores the DM credential once Finish was answered: a client that dials at
	// once may meet the old key for a moment, and retries as real clients do.
	delay := 100 * time.Millisecond
	for {
		d := NewDevice(cfg, b.log)
		err = d.Start(ctx, addr)
		if err == nil {
			b.mu.Lock()
			if b.closed {
				b.mu.Unlock()
				_ = d.Close()
				return ErrClosed
			}
			b.dev, b.prov = d, prov
			b.gen++
			b.lastErr = nil
			close(b.changed)
			b.changed = make(chan struct{})
			b.mu.Unlock()
			return nil
		}
		_ = d.Close()
		b.log.Debug("register after bootstrap", "err", err)
		select {
		case <-ctx.Done():
			return b.fail(fmt.Errorf("register after bootstrap: %w", err))
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func (b *BootstrapDevice) fail(err error) error {
	b.mu.Lock()
	b.lastErr = err
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	return err
}

// trigger is the Bootstrap-Request Trigger: de-register, close, bootstrap again.
func (b *BootstrapDevice) trigger() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	old, prov := b.dev, b.prov
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		if old != nil {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			_ = old.Deregister(ctx)
			cancel()
			_ = old.Close()
		}
		timeout := b.bc.Timeout
		if timeout <= 0 {
			timeout = time.Minute
		}
		ctx, cancel := context.WithTimeout(b.ctx, 2*timeout)
		defer cancel()
		if err := b.cycle(ctx, prov); err != nil && !errors.Is(err, ErrClosed) {
			b.log.Warn("re-bootstrap", "err", err)
		}
	}()
}

// Device is the registered DM device of the latest bootstrap; nil before the first.
func (b *BootstrapDevice) Device() *Device {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dev
}

// Provisioned is the DM account of the latest successful bootstrap; nil before the first.
func (b *BootstrapDevice) Provisioned() *Provisioned {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.prov == nil {
		return nil
	}
	p := *b.prov
	return &p
}

// Ops are the operations the Bootstrap Server ran in the latest bootstrap, in order.
func (b *BootstrapDevice) Ops() []BootstrapOp {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]BootstrapOp(nil), b.ops...)
}

// WaitGeneration waits until n bootstraps have ended in a registration, or a bootstrap after
// the last success failed (its error), or ctx ends.
func (b *BootstrapDevice) WaitGeneration(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		gen, err, ch := b.gen, b.lastErr, b.changed
		b.mu.Unlock()
		if gen >= n {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("bootstrap generation %d (at %d): %w", n, gen, ctx.Err())
		}
	}
}

// Close stops the device and any bootstrap in progress.
func (b *BootstrapDevice) Close() error {
	b.mu.Lock()
	b.closed = true
	d := b.dev
	b.mu.Unlock()
	b.stop()
	b.wg.Wait()
	if d != nil {
		return d.Close()
	}
	return nil
}
