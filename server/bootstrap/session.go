package bootstrap

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/codec/linkformat"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// run is one session in progress: the sequence of LwM2M 1.1 Core §5.2.7 after the 2.04 to
// Bootstrap-Request: Bootstrap-Discover, Bootstrap-Delete, Bootstrap-Write of the Security and
// Server instances, Bootstrap-Read, Bootstrap-Finish.
type run struct {
	s      *Server
	sess   *Session
	cfg    *Config
	format lwm2m.ContentFormat
	to     transport.Addr
	ep     *transport.Endpoint
	cancel context.CancelFunc

	bsAccount []uint16 // Security instances of bootstrap accounts (Discover), never deleted or written
	dm        *credentials.Sealed
}

// stepError is a failed step: its name (the metric's label) and the reason kept in the session.
type stepError struct {
	step   string
	reason string
}

func (e *stepError) Error() string { return e.reason }

func (r *run) run(ctx context.Context) {
	start := r.s.now()
	err := r.sequence(ctx)
	// The result is stored even when the session's own context ended (timeout, shutdown).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.cfg.RequestTimeout)
	defer cancel()
	sess := r.sess
	sess.EndedAt = r.s.now().UTC()
	if err == nil {
		sess.Outcome = OutcomeSuccess
		if ferr := r.s.store.FinishBootstrapSession(sctx, sess, r.dm); ferr != nil {
			// The device was provisioned with a key lwota could not store: it will fail to
			// register, and its next bootstrap mints another.
			err = &stepError{"store", fmt.Sprintf("bootstrap finished on the device, but its result could not be stored: %v", ferr)}
		} else {
			r.s.m.sessions.WithLabelValues(OutcomeSuccess, "none").Inc()
			r.s.m.duration.Observe(r.s.now().Sub(start).Seconds())
			r.s.record(sctx, sess, "bootstrap.success", "", "", audit.OutcomeSuccess, sess.DMIdentity)
			r.s.log.Info("bootstrap done", "endpoint", sess.Endpoint, "session", sess.ID, "rotated", sess.Rotated)
			return
		}
	}
	var se *stepError
	if !errors.As(err, &se) {
		se = &stepError{"internal", err.Error()}
	}
	sess.Outcome, sess.Reason = OutcomeFailure, se.reason
	sess.Rotated = false
	r.s.m.sessions.WithLabelValues(OutcomeFailure, se.step).Inc()
	r.s.log.Info("bootstrap failed", "endpoint", sess.Endpoint, "session", sess.ID, "step", se.step, "reason", se.reason)
	// Nothing of the DM side is written: the new key (if any) is dropped with the session.
	if serr := r.s.store.FinishBootstrapSession(sctx, sess, nil); serr != nil {
		r.s.log.Error("bootstrap session not stored", "endpoint", sess.Endpoint, "err", serr)
	}
	r.s.record(sctx, sess, "bootstrap.failure", "", "", audit.OutcomeFailure, se.reason)
}

func (r *run) sequence(ctx context.Context) error {
	if r.ep == nil {
		return &stepError{"internal", "listener closed"}
	}
	if !r.cfg.NoDiscover {
		if err := r.discover(ctx); err != nil {
			return err
		}
	}
	if err := r.deleteAll(ctx); err != nil {
		return err
	}
	sec, err := r.securityRecords(ctx)
	if err != nil {
		return err
	}
	secID := r.securityInstance()
	if err := r.write(ctx, lwm2m.NewPath(0, secID), sec); err != nil {
		return err
	}
	if err := r.write(ctx, lwm2m.NewPath(1, r.cfg.ServerID), r.serverRecords()); err != nil {
		return err
	}
	if r.cfg.ReadBack {
		if err := r.readBack(ctx); err != nil {
			return err
		}
	}
	return r.finish(ctx)
}

// do sends one request within RequestTimeout and records it as a step and an audit entry.
func (r *run) do(ctx context.Context, op string, req *transport.Message) (*transport.Message, error) {
	rctx, cancel := context.WithTimeout(ctx, r.s.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.ep.Do(rctx, r.to, req)
	path := req.Path
	if err != nil {
		answer := "error"
		why := err.Error()
		switch {
		case errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			answer, why = "timeout", fmt.Sprintf("no answer within %s", r.s.cfg.RequestTimeout)
		case ctx.Err() != nil:
			answer = "timeout"
			why = "the session ended: " + context.Cause(ctx).Error()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("the session took longer than %s", r.s.cfg.SessionTimeout)
			}
		}
		r.s.m.requests.WithLabelValues(op, answer).Inc()
		r.sess.step(r.s.now(), op, path, "", why)
		r.s.record(ctx, r.sess, "bootstrap."+op, path, "", audit.OutcomeFailure, why)
		return nil, &stepError{op, fmt.Sprintf("Bootstrap-%s %s: %s", opName(op), path, why)}
	}
	code := resp.Code.String()
	r.s.m.requests.WithLabelValues(op, code[:1]+".xx").Inc()
	outcome := audit.OutcomeSuccess
	if !resp.Code.IsSuccess() {
		outcome = audit.OutcomeFailure
	}
	detail := ""
	if !resp.Code.IsSuccess() && len(resp.Payload) > 0 {
		detail = printable(resp.Payload)
	}
	r.sess.step(r.s.now(), op, path, code, detail)
	r.s.record(ctx, r.sess, "bootstrap."+op, path, code, outcome, detail)
	return resp, nil
}

func opName(op string) string {
	if op == "" {
		return op
	}
	return strings.ToUpper(op[:1]) + op[1:]
}

// printable is a device's diagnostic payload as text for people: at most 256 bytes, UTF-8.
func printable(b []byte) string {
	if len(b) > 256 {
		b = b[:256]
	}
	if !utf8.Valid(b) {
		return fmt.Sprintf("%x", b)
	}
	return string(b)
}

func refused(op, path string, resp *transport.Message) error {
	why := fmt.Sprintf("Bootstrap-%s %s answered %s", opName(op), path, resp.Code)
	if len(resp.Payload) > 0 {
		why += ": " + printable(resp.Payload)
	}
	return &stepError{op, why}
}

// discover runs Bootstrap-Discover on the root and notes the bootstrap accounts: the Security
// instances without an ssid (LwM2M 1.1 Core §5.2.7.1).
func (r *run) discover(ctx context.Context) error {
	req := transport.NewMessage(transport.GET)
	req.Path = "/"
	req.Accept = int(lwm2m.FormatLinkFormat)
	resp, err := r.do(ctx, "discover", req)
	if err != nil {
		return err
	}
	if resp.Code != transport.Content {
		return refused("discover", "/", resp)
	}
	accounts, err := BootstrapAccounts(resp.Payload)
	if err != nil {
		return &stepError{"discover", fmt.Sprintf("Bootstrap-Discover /: %v", err)}
	}
	r.bsAccount = accounts
	return nil
}

// BootstrapAccounts parses a Bootstrap-Discover answer and returns the Security object
// instances that are bootstrap accounts: /0/x links without an ssid parameter (the DM servers'
// Security instances carry their Short Server ID).
func BootstrapAccounts(payload []byte) ([]uint16, error) {
	links, err := linkformat.Parse(payload)
	if err != nil {
		return nil, fmt.Errorf("link format: %w", err)
	}
	var out []uint16
	for _, l := range links {
		p, err := lwm2m.ParsePath(l.Target)
		if err != nil || p.Len() != 2 || p.ObjectID() != 0 {
			continue
		}
		ssid := false
		for _, prm := range l.Params {
			if prm.Key == "ssid" {
				ssid = true
			}
		}
		if !ssid {
			out = append(out, p.InstanceID())
		}
	}
	return out, nil
}

func (r *run) isAccount(id uint16) bool {
	for _, a := range r.bsAccount {
		if a == id {
			return true
		}
	}
	return false
}

// deleteAll runs Bootstrap-Delete on /0 and /1. The client keeps its bootstrap account on a
// Delete of /0 (Core §5.2.7.5); lwota never names it.
func (r *run) deleteAll(ctx context.Context) error {
	for _, path := range []string{"/0", "/1"} {
		req := transport.NewMessage(transport.DELETE)
		req.Path = path
		resp, err := r.do(ctx, "delete", req)
		if err != nil {
			return err
		}
		if resp.Code != transport.Deleted {
			return refused("delete", path, resp)
		}
	}
	return nil
}

// securityInstance is the /0/x the DM account is written to: the configured one, else the
// lowest that is not a bootstrap account.
func (r *run) securityInstance() uint16 {
	if r.cfg.SecurityID != 0 && !r.isAccount(r.cfg.SecurityID) {
		return r.cfg.SecurityID
	}
	id := uint16(0)
	if len(r.bsAccount) == 0 {
		id = 1 // without Discover: the bootstrap account is commonly /0/0
	}
	for r.isAccount(id) {
		id++
	}
	return id
}

// securityRecords is the DM account's Security instance, with its PSK (stored, or minted now and
// stored for the DM server only once the session succeeds).
func (r *run) securityRecords(ctx context.Context) ([]lwm2m.Record, error) {
	mode := int64(SecurityNoSec)
	var identity, key []byte
	switch r.cfg.PSK {
	case PSKStored:
		c, err := r.s.dm.Get(ctx, r.sess.Endpoint)
		if err != nil {
			return nil, &stepError{"config", fmt.Sprintf("configuration %s: the Security instance has no key: %v", r.sess.Config, err)}
		}
		mode, identity, key = SecurityPSK, []byte(c.Identity), c.Key
		r.sess.DMIdentity = c.Identity
	case PSKGenerate:
		id := r.cfg.PSKIdentity
		if id == "" {
			id = r.sess.Endpoint
		}
		key = make([]byte, DMKeyLen)
		if _, err := rand.Read(key); err != nil {
			return nil, &stepError{"config", fmt.Sprintf("minting a DM PSK: %v", err)}
		}
		sealed, err := r.s.dm.Seal(r.sess.Endpoint, id, key)
		if err != nil {
			return nil, &stepError{"config", fmt.Sprintf("configuration %s: the Security instance has no usable key: %v", r.sess.Config, err)}
		}
		mode, identity, r.dm = SecurityPSK, []byte(id), sealed
		r.sess.DMIdentity, r.sess.Rotated = id, true
	case PSKX509:
		x := r.cfg.X509
		if x == nil || x.SealedKey == nil || len(x.Certificate) == 0 {
			return nil, &stepError{"config", fmt.Sprintf("configuration %s: the certificate account has no certificate or key", r.sess.Config)}
		}
		pk, err := r.s.dm.OpenSecret(ctx, x.SealedKey)
		if err != nil {
			return nil, &stepError{"config", fmt.Sprintf("configuration %s: the certificate account's private key cannot be opened: %v", r.sess.Config, err)}
		}
		recs := SecurityRecords(0, r.cfg.ServerURI, SecurityCertificate, x.Certificate, pk, r.cfg.ShortServerID)
		recs[4].Value = lwm2m.Opaque(append([]byte{}, x.ServerCertificate...))
		return recs, nil
	}
	if mode == SecurityPSK && (len(identity) == 0 || len(key) == 0) {
		return nil, &stepError{"config", fmt.Sprintf("configuration %s: the Security instance has no key", r.sess.Config)}
	}
	return SecurityRecords(0, r.cfg.ServerURI, mode, identity, key, r.cfg.ShortServerID), nil
}

// SecurityRecords is a DM server's Security instance /0/id (LwM2M 1.1 Core E.1): URI, not a
// bootstrap server, the security mode, the PSK identity and key (empty for NoSec; for a
// certificate, the device's certificate and private key), no server public key (records[4],
// which a certificate account fills), and the Short Server ID.
func SecurityRecords(id uint16, uri string, mode int64, identity, key []byte, ssid uint16) []lwm2m.Record {
	p := func(res uint16) lwm2m.Path { return lwm2m.NewPath(0, id, res) }
	return []lwm2m.Record{
		{Path: p(0), Value: lwm2m.String(uri)},
		{Path: p(1), Value: lwm2m.Boolean(false)},
		{Path: p(2), Value: lwm2m.Integer(mode)},
		{Path: p(3), Value: lwm2m.Opaque(append([]byte{}, identity...))},
		{Path: p(4), Value: lwm2m.Opaque([]byte{})},
		{Path: p(5), Value: lwm2m.Opaque(append([]byte{}, key...))},
		{Path: p(10), Value: lwm2m.Integer(int64(ssid))},
	}
}

// serverRecords is the DM server's Server instance /1/x (Core E.2).
func (r *run) serverRecords() []lwm2m.Record {
	c := r.cfg
	p := func(res uint16) lwm2m.Path { return lwm2m.NewPath(1, c.ServerID, res) }
	recs := []lwm2m.Record{
		{Path: p(0), Value: lwm2m.Integer(int64(c.ShortServerID))},
		{Path: p(1), Value: lwm2m.Integer(int64(c.Lifetime))},
	}
	if c.DefaultPmin > 0 {
		recs = append(recs, lwm2m.Record{Path: p(2), Value: lwm2m.Integer(int64(c.DefaultPmin))})
	}
	if c.DefaultPmax > 0 {
		recs = append(recs, lwm2m.Record{Path: p(3), Value: lwm2m.Integer(int64(c.DefaultPmax))})
	}
	return append(recs,
		lwm2m.Record{Path: p(6), Value: lwm2m.Boolean(c.Storing)},
		lwm2m.Record{Path: p(7), Value: lwm2m.String(c.Binding)},
	)
}

// write runs Bootstrap-Write of one object instance.
func (r *run) write(ctx context.Context, path lwm2m.Path, recs []lwm2m.Record) error {
	for i := range recs {
		recs[i].Path = lwm2m.NewPath(path.ObjectID(), path.InstanceID(), recs[i].Path.ResourceID())
	}
	body, err := codec.Encode(r.format, path, recs)
	if err != nil {
		return &stepError{"write", fmt.Sprintf("encoding %s: %v", path, err)}
	}
	req := transport.NewMessage(transport.PUT)
	req.Path = path.String()
	req.ContentFormat = int(r.format)
	req.Payload = body
	resp, err := r.do(ctx, "write", req)
	if err != nil {
		return err
	}
	if resp.Code != transport.Changed {
		return refused("write", req.Path, resp)
	}
	return nil
}

// readBack runs Bootstrap-Read of the Server instance just written (LwM2M 1.1+) and checks
// that the device kept its Short Server ID and lifetime.
func (r *run) readBack(ctx context.Context) error {
	path := lwm2m.NewPath(1, r.cfg.ServerID)
	req := transport.NewMessage(transport.GET)
	req.Path = path.String()
	req.Accept = int(r.format)
	resp, err := r.do(ctx, "read", req)
	if err != nil {
		return err
	}
	if resp.Code != transport.Content {
		return refused("read", req.Path, resp)
	}
	f := r.format
	if resp.ContentFormat >= 0 {
		f = lwm2m.ContentFormat(resp.ContentFormat)
	}
	recs, err := codec.Decode(f, path, resp.Payload, serverTypes{})
	if err != nil {
		return &stepError{"read", fmt.Sprintf("Bootstrap-Read %s: %v", path, err)}
	}
	want := map[uint16]int64{0: int64(r.cfg.ShortServerID), 1: int64(r.cfg.Lifetime)}
	for _, rec := range recs {
		if w, ok := want[rec.Path.ResourceID()]; ok && rec.Path.Len() == 3 {
			if rec.Value.Int != w {
				return &stepError{"read", fmt.Sprintf("Bootstrap-Read %s: resource %d is %d, written %d", path, rec.Path.ResourceID(), rec.Value.Int, w)}
			}
			delete(want, rec.Path.ResourceID())
		}
	}
	if len(want) > 0 {
		return &stepError{"read", fmt.Sprintf("Bootstrap-Read %s: the Short Server ID or lifetime is missing", path)}
	}
	return nil
}

// serverTypes types the Server object's resources for Bootstrap-Read.
type serverTypes struct{}

func (serverTypes) ResourceType(obj, res uint16) (lwm2m.Type, bool) {
	if obj != 1 {
		return 0, false
	}
	switch res {
	case 0, 1, 2, 3:
		return lwm2m.TypeInteger, true
	case 6:
		return lwm2m.TypeBoolean, true
	case 7:
		return lwm2m.TypeString, true
	}
	return 0, false
}

// finish sends Bootstrap-Finish; a 4.06 is the device refusing the configuration it was given,
// its payload the diagnostic (Core §5.2.7.4).
func (r *run) finish(ctx context.Context) error {
	req := transport.NewMessage(transport.POST)
	req.Path = "/bs"
	resp, err := r.do(ctx, "finish", req)
	if err != nil {
		return err
	}
	if resp.Code != transport.Changed {
		return refused("finish", "/bs", resp)
	}
	return nil
}
