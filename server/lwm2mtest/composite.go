package lwm2mtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
)

// ProfileNoComposite names a 1.1+ client without the composite operations (Wakaama, older
// Zephyr builds): FETCH and iPATCH are answered 4.05 Method Not Allowed, so the server must
// fall back to one Read per path. DeviceConfig.NoComposite selects it.
const ProfileNoComposite = "no-composite"

// compositeFormat checks the format of a composite answer or payload (Core §6.3.1: SenML
// JSON, SenML CBOR, LwM2M CBOR), as the device declared them.
func (d *Device) compositeFormat(f lwm2m.ContentFormat) bool {
	switch f {
	case lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR:
		return d.cfg.declares(f)
	}
	return false
}

// composite answers FETCH (Read-Composite; Observe-Composite with Observe 0, its cancel with
// Observe 1) and iPATCH
// (Write-Composite) on the root path, LwM2M 1.1 Transport §6.3.1, §6.3.3, §6.4.1.
func (d *Device) composite(r *request) (Op, response) {
	if r.code == codes.FETCH {
		op := OpReadComposite
		switch r.observe {
		case 0:
			op = OpObserveComposite
		case 1:
			op = OpCancelObserveComposite
		}
		if d.cfg.NoComposite || d.cfg.LwM2MVersion == "1.0" {
			return op, errorResponse(errMethodNotAllowed)
		}
		return op, d.readComposite(r)
	}
	if d.cfg.NoComposite || d.cfg.LwM2MVersion == "1.0" {
		return OpWriteComposite, errorResponse(errMethodNotAllowed)
	}
	return OpWriteComposite, d.writeComposite(r)
}

// readComposite reads every path of the request's path list into one answer. Paths the device
// does not have are left out (as Leshan and Anjay do); if none exists the answer is 4.04.
func (d *Device) readComposite(r *request) response {
	if r.path.Len() != 0 {
		return errorResponse(fmt.Errorf("%w: composite request on %s, not the root", errMethodNotAllowed, r.path))
	}
	if r.cf < 0 || !codec.PathListFormat(lwm2m.ContentFormat(r.cf)) {
		return errorResponse(fmt.Errorf("%w: path list in format %d", errUnsupportedCF, r.cf))
	}
	paths, err := codec.DecodePaths(lwm2m.ContentFormat(r.cf), r.body)
	if err != nil {
		return errorResponse(fmt.Errorf("%w: %v", errBadRequest, err))
	}
	f := lwm2m.ContentFormat(r.cf) // no Accept: the path list's format
	if r.accept >= 0 {
		f = lwm2m.ContentFormat(r.accept)
	}
	if !d.compositeFormat(f) {
		return errorResponse(fmt.Errorf("%w: %d for a composite answer", errNotAcceptable, f))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	body, err := d.compositeBody(paths, f)
	if err != nil {
		return errorResponse(err)
	}
	d.stats.add(func(s *Stats) { s.CompositePaths += uint64(len(paths)) })
	resp := response{code: codes.Content, format: f, hasBody: true, body: body, observe: -1}
	switch r.observe {
	case 0: // Observe-Composite (Transport §6.4.1): one observation of all the paths
		nc, ok := asNotifyConn(r.conn)
		if !ok {
			return errorResponse(errors.New("connection cannot notify"))
		}
		tok := string(r.token)
		d.cancelObservation(tok)
		o := &observation{token: append([]byte(nil), r.token...), path: lwm2m.RootPath, paths: paths, format: f, conn: nc, lastSent: time.Now()}
		d.observations[tok] = o
		d.armPmax(o)
		resp.observe = int64(o.seq)
	case 1:
		d.cancelObservation(string(r.token))
	}
	return resp
}

// compositeBody encodes every listed path the device has, in format f; with d.mu held. None
// existing is errNotFound.
func (d *Device) compositeBody(paths []lwm2m.Path, f lwm2m.ContentFormat) ([]byte, error) {
	var recs []lwm2m.Record
	for _, p := range paths {
		_, _, rd, err := d.tree.lookup(p)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if rd != nil && rd.ops&opR == 0 {
			return nil, fmt.Errorf("%w: %s is not readable", errMethodNotAllowed, p)
		}
		recs = append(recs, d.records(p)...)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: none of %d paths", errNotFound, len(paths))
	}
	body, err := codec.Encode(f, lwm2m.RootPath, recs)
	if err != nil {
		return nil, fmt.Errorf("encode composite answer as %d: %w", f, err)
	}
	return body, nil
}

// covers reports whether a change at p concerns the observation.
func (o *observation) covers(p lwm2m.Path) bool {
	if len(o.paths) == 0 {
		return o.path.HasPrefix(p) || p.HasPrefix(o.path)
	}
	for _, q := range o.paths {
		if q.HasPrefix(p) || p.HasPrefix(q) {
			return true
		}
	}
	return false
}

// writeComposite writes resources of several objects at once; every record is checked before
// any is written, so a refused request changes nothing.
func (d *Device) writeComposite(r *request) (resp response) {
	if r.path.Len() != 0 {
		return errorResponse(fmt.Errorf("%w: composite request on %s, not the root", errMethodNotAllowed, r.path))
	}
	if r.cf < 0 || !d.compositeFormat(lwm2m.ContentFormat(r.cf)) {
		return errorResponse(fmt.Errorf("%w: composite write in format %d", errUnsupportedCF, r.cf))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() { resp = d.answered(resp) }() // with d.mu, before the unlock above
	recs, err := codec.Decode(lwm2m.ContentFormat(r.cf), lwm2m.RootPath, r.body, d.tree)
	if err != nil {
		return errorResponse(fmt.Errorf("%w: %v", errBadRequest, err))
	}
	if len(recs) == 0 {
		return errorResponse(fmt.Errorf("%w: no value", errBadRequest))
	}
	type checked struct {
		in  *instance
		rd  *resourceDef
		rec lwm2m.Record
	}
	todo := make([]checked, 0, len(recs))
	for _, rec := range recs {
		if rec.Path.Len() < 3 || rec.Value.Type == lwm2m.TypeNone {
			return errorResponse(fmt.Errorf("%w: %s is not a resource value", errBadRequest, rec.Path))
		}
		o, in, _, err := d.tree.lookup(lwm2m.NewPath(rec.Path.ObjectID(), rec.Path.InstanceID()))
		if err != nil {
			return errorResponse(err)
		}
		rd, rec, err := checkRecord(o, rec, false)
		if err != nil {
			return errorResponse(err)
		}
		if rec.Path.Len() == 4 && !rd.multiple {
			return errorResponse(fmt.Errorf("%w: %s", errNotFound, rec.Path))
		}
		todo = append(todo, checked{in, rd, rec})
	}
	for _, c := range todo {
		if c.rd.write != nil {
			if err := c.rd.write(d, c.rec.Path, c.rec.Value); err != nil {
				return errorResponse(err)
			}
		}
		c.in.set(c.rd, c.rec.Path, c.rec.Value)
		d.changed(c.rec.Path)
	}
	return response{code: codes.Changed, observe: -1}
}
