package registration

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/transport"
)

// AuditNoSecRefused is the audit action of a NoSec (plain CoAP) Register, Update or De-register
// refused because the endpoint is secured.
const AuditNoSecRefused = "registration.nosec_refused"

// auditEvery is how often one endpoint's NoSec refusals are audited at most: each is counted,
// but an impersonator retrying in a loop must not fill the audit log.
const auditEvery = time.Minute

// maxAuditThrottle bounds the memory of when each endpoint was last audited; when it is full
// the memory starts over (a few extra entries, never unbounded growth).
const maxAuditThrottle = 4096

type auditBox struct{ rec audit.Recorder }

// noSecAudit remembers when refusals were last audited, per endpoint.
type noSecAudit struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// SetAudit makes the registry write an audit entry (AuditNoSecRefused) when it refuses a NoSec
// peer acting for a secured endpoint; nil stops it. Call it before devices register.
func (r *Registry) SetAudit(rec audit.Recorder) {
	if rec == nil {
		r.audit.Store(nil)
		return
	}
	r.audit.Store(&auditBox{rec})
}

// authorizeNoSec asks the authorizer whether from, a peer without a security identity, may
// update or de-register endpoint's registration. DTLS peers are checked by lookupForPeer.
func (r *Registry) authorizeNoSec(ctx context.Context, from transport.Peer, endpoint string) error {
	if from.Identity != "" {
		return nil
	}
	if box := r.authz.Load(); box != nil {
		return box.a.AuthorizeRegister(ctx, from, endpoint)
	}
	return nil
}

// authorizeNoSecUpdate is authorizeNoSec for an Update, which may leave the credential check to
// the store's touch: it returns a non-nil folder when the Authorizer folds its NoSec check into
// the store (NoSecFolder) and the store can (NoSecToucher), having read nothing; the Update must
// then write through folded's touch, or ask AuthorizeRegister before any other write
// (storeUpdate).
func (r *Registry) authorizeNoSecUpdate(ctx context.Context, from transport.Peer, endpoint string) (folded NoSecToucher, err error) {
	if from.Identity != "" {
		return nil, nil
	}
	box := r.authz.Load()
	if box == nil {
		return nil, nil
	}
	if t, ok := r.store.(NoSecToucher); ok {
		if f, ok := box.a.(NoSecFolder); ok && f.FoldsNoSecCheck(from, t) {
			return t, nil
		}
	}
	return nil, box.a.AuthorizeRegister(ctx, from, endpoint)
}

// noteRefusal counts and audits err when it refuses a NoSec peer acting for a secured endpoint.
func (r *Registry) noteRefusal(ctx context.Context, op string, from transport.Peer, endpoint string, err error) {
	if !errors.Is(err, ErrSecuredEndpoint) {
		return
	}
	r.metrics.nosecRefused.WithLabelValues(op).Inc()
	r.log.Warn("NoSec peer refused for a secured endpoint", "op", op, "endpoint", endpoint, "addr", from.Addr.String())
	box := r.audit.Load()
	if box == nil {
		return
	}
	now := r.now()
	r.auditThrottle.mu.Lock()
	if r.auditThrottle.last == nil || len(r.auditThrottle.last) >= maxAuditThrottle {
		r.auditThrottle.last = make(map[string]time.Time)
	}
	last, seen := r.auditThrottle.last[endpoint]
	due := !seen || now.Sub(last) >= auditEvery
	if due {
		r.auditThrottle.last[endpoint] = now
	}
	r.auditThrottle.mu.Unlock()
	if !due {
		return
	}
	// The refusal is audited even when the device's request context ends first.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	e := audit.Entry{
		At: now, Actor: audit.ActorDevicePrefix + endpoint, Action: AuditNoSecRefused, Target: "device:" + endpoint,
		RemoteAddr: from.Addr.String(), Outcome: audit.OutcomeDenied,
		Detail: map[string]string{"op": op, "network": string(from.Addr.Network), "reason": err.Error()},
	}
	if aerr := box.rec.Record(actx, e); aerr != nil {
		r.log.Error("audit NoSec refusal", "endpoint", endpoint, "err", aerr)
	}
}
