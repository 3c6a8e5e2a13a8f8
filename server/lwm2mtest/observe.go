package lwm2mtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
)

// attributes are the notification attributes written at one path (Core §5.1.2): pmin,
// pmax, epmin, epmax in seconds; gt, lt, st as numbers.
type attributes map[string]float64

var attributeNames = []string{"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax"}

// parseAttributes applies Write-Attributes queries to a copy of cur. numeric says whether
// the path is a numeric resource, the only place gt, lt and st may go.
func parseAttributes(cur attributes, queries []string, numeric bool) (attributes, error) {
	out := attributes{}
	for k, v := range cur {
		out[k] = v
	}
	for _, q := range queries {
		name, val, hasVal := strings.Cut(q, "=")
		if !slices.Contains(attributeNames, name) {
			return nil, fmt.Errorf("%w: attribute %q", errBadRequest, name)
		}
		if (name == "gt" || name == "lt" || name == "st") && !numeric {
			return nil, fmt.Errorf("%w: %s on a non-numeric path", errBadRequest, name)
		}
		if !hasVal {
			delete(out, name)
			continue
		}
		var f float64
		var err error
		switch name {
		case "gt", "lt", "st":
			f, err = strconv.ParseFloat(val, 64)
		default:
			var u uint64
			u, err = strconv.ParseUint(val, 10, 32)
			f = float64(u)
		}
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || (name == "st" && f < 0) {
			return nil, fmt.Errorf("%w: %s=%q", errBadRequest, name, val)
		}
		out[name] = f
	}
	if pmin, ok := out["pmin"]; ok {
		if pmax, ok := out["pmax"]; ok && pmax < pmin {
			return nil, fmt.Errorf("%w: pmax < pmin", errBadRequest)
		}
	}
	gt, okG := out["gt"]
	lt, okL := out["lt"]
	st, okS := out["st"]
	if okG && okL && (lt >= gt || (okS && lt+2*st >= gt)) {
		return nil, fmt.Errorf("%w: lt, gt and st overlap", errBadRequest)
	}
	return out, nil
}

// render writes the attributes as link-format parameters (";pmin=10;gt=20.5").
func (a attributes) render(b *strings.Builder) {
	for _, name := range attributeNames {
		v, ok := a[name]
		if !ok {
			continue
		}
		b.WriteString(";" + name + "=")
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
}

// effectiveAttributes merges the attributes along p, the deepest level winning, over the
// Server object's default periods (/1/0/2, /1/0/3).
func (d *Device) effectiveAttributes(p lwm2m.Path) attributes {
	out := attributes{}
	if srv, ok := d.tree.objects[1]; ok {
		if in, ok := srv.instances[0]; ok {
			if v, ok := in.single[2]; ok && v.Int > 0 {
				out["pmin"] = float64(v.Int)
			}
			if v, ok := in.single[3]; ok && v.Int > 0 {
				out["pmax"] = float64(v.Int)
			}
		}
	}
	for n := 1; n <= p.Len(); n++ {
		q := p
		for q.Len() > n {
			q = q.Parent()
		}
		for k, v := range d.attrs[q] {
			out[k] = v
		}
	}
	return out
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func numeric(v lwm2m.Value) (float64, bool) {
	switch v.Type {
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		return float64(v.Int), true
	case lwm2m.TypeUnsignedInteger:
		return float64(v.Uint), true
	case lwm2m.TypeFloat:
		return v.Float, true
	}
	return 0, false
}

// notifyConn is what sending a notification needs from the connection the Observe came in on.
type notifyConn interface {
	mux.Conn
	GetMessageID() int32
}

// observation is one Observe from the server (RFC 7641), keyed by its token.
type observation struct {
	token  []byte
	path   lwm2m.Path
	paths  []lwm2m.Path // Observe-Composite (composite.go): the paths; path is then the root
	format lwm2m.ContentFormat
	conn   notifyConn

	sendMu sync.Mutex // orders the notifications of this observation on the wire

	// guarded by Device.mu
	seq       uint32
	lastSent  time.Time
	lastNum   float64
	hasNum    bool
	pending   bool // a notification is due but waits for pmin or for the device to wake
	pminTimer *time.Timer
	pmaxTimer *time.Timer
	mids      []int32
}

func (o *observation) stopTimers() {
	if o.pminTimer != nil {
		o.pminTimer.Stop()
		o.pminTimer = nil
	}
	if o.pmaxTimer != nil {
		o.pmaxTimer.Stop()
		o.pmaxTimer = nil
	}
}

// numericAt is the value at p when p is one numeric value, for gt/lt/st.
func (d *Device) numericAt(p lwm2m.Path) (float64, bool) {
	if p.Len() < 3 {
		return 0, false
	}
	recs := d.records(p)
	if len(recs) != 1 {
		return 0, false
	}
	return numeric(recs[0].Value)
}

// changed is called with d.mu held after the value at p changed; it notifies every
// observation on, above or below p whose attributes allow it.
func (d *Device) changed(p lwm2m.Path) {
	for _, o := range d.observations {
		if !o.covers(p) {
			continue
		}
		a := d.effectiveAttributes(o.path)
		_, hasGt := a["gt"]
		_, hasLt := a["lt"]
		_, hasSt := a["st"]
		if (hasGt || hasLt || hasSt) && o.hasNum {
			v, ok := d.numericAt(o.path)
			if ok && !crosses(a, o.lastNum, v) {
				continue
			}
		}
		d.schedule(o, a)
	}
}

// crosses reports whether a change from last to v satisfies gt, lt or st.
func crosses(a attributes, last, v float64) bool {
	if gt, ok := a["gt"]; ok && (last > gt) != (v > gt) {
		return true
	}
	if lt, ok := a["lt"]; ok && (last < lt) != (v < lt) {
		return true
	}
	if st, ok := a["st"]; ok && math.Abs(v-last) >= st {
		return true
	}
	return false
}

// schedule sends a notification now or when pmin allows; with d.mu held.
func (d *Device) schedule(o *observation, a attributes) {
	o.pending = true
	if d.asleep {
		return
	}
	wait := time.Until(o.lastSent.Add(seconds(a["pmin"])))
	if wait <= 0 {
		go d.notify(o)
		return
	}
	if o.pminTimer == nil {
		o.pminTimer = time.AfterFunc(wait, func() { d.notify(o) })
	}
}

// armPmax restarts the pmax timer after a notification; with d.mu held.
func (d *Device) armPmax(o *observation) {
	if o.pmaxTimer != nil {
		o.pmaxTimer.Stop()
		o.pmaxTimer = nil
	}
	if pmax := d.effectiveAttributes(o.path)["pmax"]; pmax > 0 {
		o.pmaxTimer = time.AfterFunc(seconds(pmax), func() {
			d.mu.Lock()
			o.pending = true
			d.mu.Unlock()
			d.notify(o)
		})
	}
}

// flushPending sends the notifications held while the device slept.
func (d *Device) flushPending() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.observations {
		if o.pending {
			d.schedule(o, d.effectiveAttributes(o.path))
		}
	}
}

const maxNotifyMIDs = 8 // message ids per observation remembered for matching a Reset

// notify sends one notification if the observation still exists and one is pending.
func (d *Device) notify(o *observation) {
	o.sendMu.Lock()
	defer o.sendMu.Unlock()
	d.mu.Lock()
	if d.observations[string(o.token)] != o || !o.pending {
		d.mu.Unlock()
		return
	}
	if d.asleep {
		d.mu.Unlock()
		return
	}
	if o.pminTimer != nil {
		o.pminTimer.Stop()
		o.pminTimer = nil
	}
	code := codes.Content
	var body []byte
	if len(o.paths) > 0 {
		var err error
		if body, err = d.compositeBody(o.paths, o.format); err != nil {
			code = codes.NotFound // none of the observed paths is left: the last notification
			d.cancelObservation(string(o.token))
		} else {
			d.armPmax(o)
		}
	} else if _, _, _, err := d.tree.lookup(o.path); err != nil {
		code = codes.NotFound // the observed path is gone: the last notification
		d.cancelObservation(string(o.token))
	} else {
		var err error
		body, err = codec.Encode(o.format, o.path, d.records(o.path))
		if err != nil {
			d.mu.Unlock()
			d.log.Warn("notify: encode", "path", o.path, "err", err)
			return
		}
		if v, ok := d.numericAt(o.path); ok {
			o.lastNum, o.hasNum = v, true
		}
		d.armPmax(o)
	}
	o.pending = false
	o.seq++
	seq := o.seq
	o.lastSent = time.Now()
	mid := o.conn.GetMessageID()
	d.notifyMIDs[mid] = string(o.token)
	o.mids = append(o.mids, mid)
	if len(o.mids) > maxNotifyMIDs {
		delete(d.notifyMIDs, o.mids[0])
		o.mids = o.mids[1:]
	}
	d.mu.Unlock()

	ctx, cancel := d.requestContext(d.ctx)
	defer cancel()
	msg := o.conn.AcquireMessage(ctx)
	defer o.conn.ReleaseMessage(msg)
	msg.SetCode(code)
	msg.SetToken(o.token)
	msg.SetMessageID(mid)
	if d.cfg.NonConfirmableNotifications {
		msg.SetType(message.NonConfirmable)
	} else {
		msg.SetType(message.Confirmable)
	}
	if code == codes.Content {
		msg.SetObserve(seq & 0xffffff)
		msg.SetContentFormat(message.MediaType(o.format))
		msg.SetBody(bytes.NewReader(body))
	}
	d.wake()
	if err := o.conn.WriteMessage(msg); err != nil {
		if !errors.Is(err, context.Canceled) {
			d.log.Info("notification not acknowledged, dropping the observation", "path", o.path, "err", err)
		}
		d.mu.Lock()
		d.cancelObservation(string(o.token))
		d.mu.Unlock()
		return
	}
	d.stats.add(func(s *Stats) { s.Notifications++ })
}

// cancelObservation forgets an observation; with d.mu held.
func (d *Device) cancelObservation(token string) bool {
	o, ok := d.observations[token]
	if !ok {
		return false
	}
	o.stopTimers()
	for _, mid := range o.mids {
		delete(d.notifyMIDs, mid)
	}
	delete(d.observations, token)
	return true
}

// dropObservations forgets every observation (reboot, de-register, close); with d.mu held.
func (d *Device) dropObservations() {
	for tok := range d.observations {
		d.cancelObservation(tok)
	}
}

// Observations is the number of active observations (tests wait on it).
func (d *Device) Observations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.observations)
}
