package registration

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrUnavailable: this server takes no new registrations now, as a draining cluster node (5.03
// with Max-Age: the device tries again later, through the balancer to another node).
var ErrUnavailable = errors.New("not taking new registrations")

// unavailableError is ErrUnavailable with the Max-Age to answer.
type unavailableError struct {
	retryAfter time.Duration
	reason     string
}

func (e *unavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.reason }
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

// Admission decides whether a Register is taken here now. A draining cluster node refuses them:
// reason says why, retryAfter becomes the 5.03's Max-Age.
type Admission interface {
	AdmitRegister() (retryAfter time.Duration, reason string, ok bool)
}

type admissionBox struct{ a Admission }

// SetAdmission makes every Register ask a first; nil takes every Register (the default).
func (r *Registry) SetAdmission(a Admission) {
	if a == nil {
		r.admit.Store(nil)
		return
	}
	r.admit.Store(&admissionBox{a})
}

// admitRegister returns the refusal of a Register, or nil.
func (r *Registry) admitRegister() error {
	box := r.admit.Load()
	if box == nil {
		return nil
	}
	if after, reason, ok := box.a.AdmitRegister(); !ok {
		return &unavailableError{retryAfter: after, reason: reason}
	}
	return nil
}

// maxAge is the Max-Age of a refusal in seconds: the retry delay of ErrUnavailable, 0 otherwise.
func maxAge(err error) uint32 {
	var ue *unavailableError
	if !errors.As(err, &ue) || ue.retryAfter <= 0 {
		return 0
	}
	return uint32(max(ue.retryAfter.Round(time.Second)/time.Second, 1))
}

// IDFinder finds a stored registration by its location id. With a store several servers share
// (a cluster, Config.Shared), an Update this registry has not seen the Register of is looked up
// through it, so a device that moves to another node keeps its registration.
type IDFinder interface {
	RegistrationByID(ctx context.Context, id string) (*Registration, error)
}

// adoptStored loads registration id from the store into this registry when another server of a
// shared store took its Register (Config.Shared). It reports whether it loaded one; a
// registration that lapsed or was de-registered, or was replaced meanwhile, is not loaded.
func (r *Registry) adoptStored(ctx context.Context, id string) (bool, error) {
	f, ok := r.store.(IDFinder)
	if !r.cfg.Shared || !ok {
		return false, nil
	}
	stored, err := f.RegistrationByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("registration %s: store: %w", id, err)
	}
	if !stored.DeregisteredAt.IsZero() || !stored.Online(r.now()) {
		return false, nil
	}
	internInfo(stored)
	internParams(stored) // as Load does (compact.go)
	mu := r.writeLock(stored.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.byEndpoint[stored.Endpoint]; old != nil {
		if old.reg.ID == stored.ID {
			return true, nil // loaded meanwhile
		}
		r.unindex(old.reg)
	}
	r.index(stored)
	r.metrics.online.Set(float64(len(r.byEndpoint)))
	return true, nil
}

// sharedFields keeps the registry's atomics for this file out of registry.go's struct noise.
type sharedFields struct {
	admit atomic.Pointer[admissionBox] // SetAdmission
}
