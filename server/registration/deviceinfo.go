package registration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unique"

	"github.com/lwota/lwota/server/lwm2m"
)

// The Object 3 resources a registration keeps: what campaigns select on and the console shows.
var (
	pathManufacturer    = lwm2m.MustParsePath("/3/0/0")
	pathModel           = lwm2m.MustParsePath("/3/0/1")
	pathFirmwareVersion = lwm2m.MustParsePath("/3/0/3")
	pathDeviceType      = lwm2m.MustParsePath("/3/0/17")
	pathDevice          = lwm2m.MustParsePath("/3/0")
)

// infoField returns the field of reg that keeps the value of path, or nil for other paths.
func infoField(reg *Registration, path lwm2m.Path) *string {
	switch path {
	case pathManufacturer:
		return &reg.Manufacturer
	case pathModel:
		return &reg.Model
	case pathFirmwareVersion:
		return &reg.FirmwareVersion
	case pathDeviceType:
		return &reg.DeviceType
	}
	return nil
}

// intern makes registrations of one model share its strings: a fleet has few distinct
// manufacturers, models and versions, and the registry holds every device in memory.
func intern(s string) string { return unique.Make(s).Value() }

func internInfo(reg *Registration) {
	reg.Manufacturer = intern(reg.Manufacturer)
	reg.Model = intern(reg.Model)
	reg.FirmwareVersion = intern(reg.FirmwareVersion)
	reg.DeviceType = intern(reg.DeviceType)
}

// carryInfo copies the identity a device reported under an earlier registration: it stays
// until the device reports another value.
func carryInfo(to, from *Registration) {
	to.Manufacturer, to.Model = from.Manufacturer, from.Model
	to.FirmwareVersion, to.DeviceType = from.FirmwareVersion, from.DeviceType
}

// RecordDeviceInfo keeps the Object 3 identity values (/3/0/0 manufacturer, /3/0/1 model,
// /3/0/3 firmware version, /3/0/17 device type) found among recs, the records of a device's
// answer or notification, on endpoint's live registration. It stores the registration only when
// a value changed; other records and non-string values are ignored.
func (r *Registry) RecordDeviceInfo(ctx context.Context, endpoint string, recs []lwm2m.Record) error {
	changed := func(reg *Registration) bool {
		for _, rec := range recs {
			if f := infoField(reg, rec.Path); f != nil && rec.Value.Type == lwm2m.TypeString && *f != rec.Value.Str {
				return true
			}
		}
		return false
	}
	// Most answers change nothing (a Read of /3/0/9, the same version again): decide that
	// without taking the endpoint's write lock.
	if reg, ok := r.live(endpoint); !ok || !changed(reg) {
		return nil
	}
	mu := r.writeLock(endpoint)
	mu.Lock()
	defer mu.Unlock()
	reg, ok := r.live(endpoint)
	if !ok || !changed(reg) {
		return nil
	}
	next := *reg
	for _, rec := range recs {
		if f := infoField(&next, rec.Path); f != nil && rec.Value.Type == lwm2m.TypeString {
			*f = intern(rec.Value.Str)
		}
	}
	if err := r.storeInfo(ctx, &next); err != nil {
		return fmt.Errorf("device info of %s: %w", endpoint, err)
	}
	r.mu.Lock()
	if d := r.byEndpoint[endpoint]; d != nil && d.reg == reg { // always so under the write lock; next keeps its id and address
		d.setReg(&next)
	}
	r.mu.Unlock()
	return nil
}

// storeInfo stores the device attributes of next, a live registration whose attributes alone
// changed: through InfoSaver when the store has it (four columns, not the whole row), else, or
// when the stored row no longer holds next's id (replaced behind this registry's back), the
// whole registration.
func (r *Registry) storeInfo(ctx context.Context, next *Registration) error {
	if s, ok := r.store.(InfoSaver); ok {
		err := s.SaveDeviceInfo(ctx, next)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return r.store.SaveRegistration(ctx, next)
}

// live returns the snapshot in the index, without the LastSeen overlay of Get.
func (r *Registry) live(endpoint string) (*Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.byEndpoint[endpoint]
	if !ok {
		return nil, false
	}
	return d.reg, true
}

// InfoReader reads a resource of a registered device that is awake now. The server implements it
// with a device-management Read; the answer reaches RecordDeviceInfo through the server's value
// sink, so the reader only reports whether the read worked.
type InfoReader interface {
	ReadDeviceInfo(ctx context.Context, endpoint string, path lwm2m.Path) error
}

type infoReaderBox struct{ ir InfoReader }

// SetInfoReader makes every Register of a device with Object 3 queue a background read of its
// identity through ir: /3/0/3 when the registration already knows all four values (a reboot
// may have changed the firmware), all of /3/0 otherwise. RunInfoReads works the queue; nil
// stops queueing. Call it before devices register.
func (r *Registry) SetInfoReader(ir InfoReader) {
	if ir == nil {
		r.infoReader.Store(nil)
		return
	}
	r.infoReader.Store(&infoReaderBox{ir})
}

// queueInfoRead queues the read of reg's identity without waiting: a Register is never slowed
// down by it. When the queue is full (a burst of registrations), the endpoint is kept aside and
// read once the queue has room, so that no device is left without its model.
func (r *Registry) queueInfoRead(reg *Registration) {
	if r.infoReader.Load() == nil || !reg.HasObject(3) {
		return
	}
	select {
	case r.infoQueue <- reg:
	default:
		r.infoMu.Lock()
		r.infoLater[reg.Endpoint] = struct{}{}
		r.infoMu.Unlock()
		r.metrics.infoReads.WithLabelValues("deferred").Inc()
	}
}

// infoRetry is the state of an endpoint whose identity read failed.
type infoRetry struct {
	attempts int       // failed reads in a row
	due      time.Time // when to read again; zero: at the next Update only
}

// Failed identity reads of a device that is not in queue mode are tried again infoRetries times,
// infoRetryBase, 2×, 4× ... later; then the device's next Update reads again.
const (
	infoRetries   = 4
	infoRetryBase = 2 * time.Second
)

// refillInfoQueue moves deferred reads, and failed reads whose retry is due, into the queue while
// it has room.
func (r *Registry) refillInfoQueue() {
	r.infoMu.Lock()
	defer r.infoMu.Unlock()
	now := r.now()
	for ep, st := range r.infoFailed {
		if st.due.IsZero() || now.Before(st.due) {
			continue
		}
		reg, ok := r.live(ep)
		if !ok {
			delete(r.infoFailed, ep)
			continue
		}
		select {
		case r.infoQueue <- reg:
			st.due = time.Time{} // the read records its own outcome
			r.infoFailed[ep] = st
			r.metrics.infoReads.WithLabelValues("retried").Inc()
		default:
			return
		}
	}
	for ep := range r.infoLater {
		reg, ok := r.live(ep)
		if !ok {
			delete(r.infoLater, ep)
			continue
		}
		select {
		case r.infoQueue <- reg:
			delete(r.infoLater, ep)
		default:
			return
		}
	}
}

// takeInfoFailed reports whether endpoint's last read failed, and forgets it: the read it
// queues records its own outcome.
func (r *Registry) takeInfoFailed(endpoint string) bool {
	r.infoMu.Lock()
	defer r.infoMu.Unlock()
	_, failed := r.infoFailed[endpoint]
	delete(r.infoFailed, endpoint)
	return failed
}

// infoRefillEvery is how often deferred reads are moved into the queue.
const infoRefillEvery = 250 * time.Millisecond

// RunInfoReads runs Config.InfoReadWorkers readers of the queue SetInfoReader fills, until ctx
// ends; it returns once they have stopped. Reads that are still queued then are dropped.
func (r *Registry) RunInfoReads(ctx context.Context) {
	var wg sync.WaitGroup
	for range max(r.cfg.InfoReadWorkers, 1) {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case reg := <-r.infoQueue:
					r.readInfo(ctx, reg)
				}
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(infoRefillEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.refillInfoQueue()
			}
		}
	})
	wg.Wait()
}

func (r *Registry) readInfo(ctx context.Context, reg *Registration) {
	box := r.infoReader.Load()
	if box == nil {
		return
	}
	if live, ok := r.live(reg.Endpoint); !ok || live.ID != reg.ID {
		r.metrics.infoReads.WithLabelValues("stale").Inc() // the newer Register queued its own read
		return
	}
	path := pathDevice
	if reg.HasDeviceInfo() {
		path = pathFirmwareVersion
	}
	readCtx := ctx
	if r.cfg.InfoReadTimeout > 0 {
		var cancel context.CancelFunc
		readCtx, cancel = context.WithTimeout(ctx, r.cfg.InfoReadTimeout)
		defer cancel()
	}
	err := box.ir.ReadDeviceInfo(readCtx, reg.Endpoint, path)
	r.infoMu.Lock()
	if err != nil {
		st := r.infoFailed[reg.Endpoint]
		st.attempts++
		st.due = time.Time{}
		if !reg.QueueMode && st.attempts <= infoRetries && ctx.Err() == nil { // not at shutdown
			st.due = r.now().Add(infoRetryBase << (st.attempts - 1))
		}
		r.infoFailed[reg.Endpoint] = st
	} else {
		delete(r.infoFailed, reg.Endpoint)
	}
	r.infoMu.Unlock()
	if err != nil {
		r.metrics.infoReads.WithLabelValues("failed").Inc()
		r.log.Debug("device info read failed", "endpoint", reg.Endpoint, "path", path.String(), "err", err)
		return
	}
	r.metrics.infoReads.WithLabelValues("ok").Inc()
}
