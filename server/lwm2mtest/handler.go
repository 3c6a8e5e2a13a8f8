package lwm2mtest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
)

// response is what a DM operation answers.
type response struct {
	code     codes.Code
	format   lwm2m.ContentFormat
	hasBody  bool
	body     []byte
	observe  int64            // Observe option, -1 for none
	location []string         // Location-Path segments (Create)
	opts     []message.Option // more options (Block1, Size1)
	after    func()           // runs once the response was sent
}

func errorResponse(err error) response {
	r := response{observe: -1}
	switch {
	case errors.Is(err, errNotFound):
		r.code = codes.NotFound
	case errors.Is(err, errMethodNotAllowed):
		r.code = codes.MethodNotAllowed
	case errors.Is(err, errNotAcceptable):
		r.code = codes.NotAcceptable
	case errors.Is(err, errUnsupportedCF):
		r.code = codes.UnsupportedMediaType
	case errors.Is(err, errBadRequest):
		r.code = codes.BadRequest
	default:
		r.code = codes.InternalServerError
	}
	return r
}

// request is an incoming DM request with the options the device looks at.
type request struct {
	code    codes.Code
	path    lwm2m.Path
	token   []byte
	accept  int // -1 when absent
	cf      int // -1 when absent
	observe int64
	queries []string
	body    []byte
	conn    mux.Conn
	block1  int64 // Block1 option, -1 when absent
	size1   int64 // Size1 option, -1 when absent
}

// serveCOAP answers requests the server sends to the device (Core §6.3 Device Management
// and Service Enablement, §6.4 Information Reporting).
func (d *Device) serveCOAP(w mux.ResponseWriter, m *mux.Message) {
	if c := m.Code(); c < codes.GET || c >= 32 {
		return // not a request: an unmatched response or an empty message needs no answer
	}
	req := request{code: m.Code(), token: m.Token(), accept: -1, cf: -1, observe: -1, conn: w.Conn(), block1: -1, size1: -1}
	raw, err := m.Options().Path()
	if err != nil {
		raw = "/"
	}
	p, perr := lwm2m.ParsePath(raw)
	if v, err := m.Options().Accept(); err == nil {
		req.accept = int(v)
	}
	if v, err := m.Options().ContentFormat(); err == nil {
		req.cf = int(v)
	}
	if v, err := m.Options().Observe(); err == nil {
		req.observe = int64(v)
	}
	req.queries, _ = m.Options().Queries()
	if v, err := m.Options().GetUint32(message.Block1); err == nil {
		req.block1 = int64(v)
	}
	if v, err := m.Options().GetUint32(message.Size1); err == nil {
		req.size1 = int64(v)
	}
	if m.Body() != nil {
		req.body, _ = m.ReadBody()
	}
	op, resp := OpUnknown, errorResponse(errNotFound)
	if perr == nil {
		req.path = p
		var early *response
		if req.block1 >= 0 && p != packagePath {
			d.mu.Lock()
			early = d.reassemble(&req) // block1.go
			d.mu.Unlock()
		}
		if early != nil {
			resp = *early
		} else {
			op, resp = d.dispatch(&req)
		}
	}
	d.stats.add(func(s *Stats) {
		s.Requests[op]++
		if resp.code >= codes.BadRequest {
			s.Errors++
		}
	})
	d.log.Debug("dm", "op", op, "path", raw, "code", codeString(resp.code))
	if delay := d.faults.get().AnswerDelay; delay > 0 {
		select {
		case <-time.After(delay):
		case <-d.ctx.Done():
		}
	}

	opts := resp.opts
	for _, seg := range resp.location {
		opts = append(opts, message.Option{ID: message.LocationPath, Value: []byte(seg)})
	}
	var body *bytes.Reader
	if resp.hasBody {
		body = bytes.NewReader(resp.body)
	}
	if body != nil {
		err = w.SetResponse(resp.code, message.MediaType(resp.format), body, opts...)
	} else {
		err = w.SetResponse(resp.code, message.TextPlain, nil, opts...)
	}
	if err != nil {
		d.log.Warn("dm: set response", "err", err)
		return
	}
	if resp.observe >= 0 {
		w.Message().SetObserve(uint32(resp.observe))
	}
	if resp.after != nil && !responsewriter.AfterWrite(m.Context(), resp.after) {
		go resp.after()
	}
}

var packagePath = lwm2m.NewPath(5, 0, 0)

func (d *Device) dispatch(r *request) (Op, response) {
	if (r.code == codes.PUT || r.code == codes.POST) && r.path == packagePath && (len(r.body) > 0 || r.cf >= 0 || len(r.queries) == 0) {
		return OpWrite, d.push(r) // Package: a push, block by block
	}
	switch r.code {
	case codes.FETCH, codes.IPATCH:
		return d.composite(r)
	case codes.GET:
		switch {
		case r.accept == int(lwm2m.FormatLinkFormat):
			return OpDiscover, d.discover(r.path)
		case r.observe == 0:
			if d.cfg.RefuseFirmwareObserve && r.path.Len() >= 1 && r.path.ObjectID() == 5 {
				return OpObserve, errorResponse(errMethodNotAllowed)
			}
			return OpObserve, d.observe(r)
		case r.observe == 1:
			d.mu.Lock()
			d.cancelObservation(string(r.token))
			d.mu.Unlock()
			return OpCancelObserve, d.read(r.path, r.accept)
		}
		return OpRead, d.read(r.path, r.accept)
	case codes.PUT:
		if len(r.body) == 0 && r.cf < 0 {
			return OpWriteAttributes, d.writeAttributes(r.path, r.queries)
		}
		return OpWrite, d.write(r, true)
	case codes.POST:
		switch r.path.Len() {
		case 1:
			return OpCreate, d.create(r)
		case 2:
			return OpWritePartial, d.write(r, false)
		case 3:
			return OpExecute, d.execute(r.path, string(r.body))
		}
		return OpUnknown, errorResponse(errMethodNotAllowed)
	case codes.DELETE:
		return OpDelete, d.delete(r.path)
	}
	return OpUnknown, errorResponse(errMethodNotAllowed)
}

// single reports whether p addresses one value: a single resource or a resource instance.
func single(p lwm2m.Path, rd *resourceDef) bool {
	return p.Len() == 4 || (p.Len() == 3 && rd != nil && !rd.multiple)
}

// readFormat picks the content format of a Read or Observe answer; with d.mu held.
func (d *Device) readFormat(p lwm2m.Path, rd *resourceDef, accept int) (lwm2m.ContentFormat, error) {
	if accept < 0 {
		if single(p, rd) && rd.typ == lwm2m.TypeOpaque && !d.cfg.declares(d.cfg.DefaultFormat) {
			return lwm2m.FormatOpaque, nil
		}
		return d.cfg.DefaultFormat, nil
	}
	f := lwm2m.ContentFormat(accept)
	switch f {
	case lwm2m.FormatOpaque:
		if single(p, rd) && rd.typ == lwm2m.TypeOpaque {
			return f, nil
		}
	case lwm2m.FormatText:
		if single(p, rd) && d.cfg.declares(f) {
			return f, nil
		}
	default:
		if d.cfg.declares(f) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: %d for %s", errNotAcceptable, f, p)
}

// writeFormat checks the Content-Format of a Write or Create.
func (d *Device) writeFormat(p lwm2m.Path, rd *resourceDef, cf int) (lwm2m.ContentFormat, error) {
	if cf < 0 {
		return 0, fmt.Errorf("%w: no Content-Format", errBadRequest)
	}
	f := lwm2m.ContentFormat(cf)
	switch f {
	case lwm2m.FormatOpaque:
		if single(p, rd) && rd.typ == lwm2m.TypeOpaque {
			return f, nil
		}
	case lwm2m.FormatText:
		if single(p, rd) {
			return f, nil
		}
	default:
		if d.cfg.declares(f) && f != lwm2m.FormatLinkFormat {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: %d for %s", errUnsupportedCF, f, p)
}

func (d *Device) encode(p lwm2m.Path, accept int) (lwm2m.ContentFormat, []byte, error) {
	_, _, rd, err := d.tree.lookup(p)
	if err != nil {
		return 0, nil, err
	}
	if rd != nil && rd.ops&opR == 0 {
		return 0, nil, errMethodNotAllowed
	}
	f, err := d.readFormat(p, rd, accept)
	if err != nil {
		return 0, nil, err
	}
	body, err := codec.Encode(f, p, d.records(p))
	if err != nil {
		return 0, nil, fmt.Errorf("encode %s as %d: %w", p, f, err)
	}
	return f, body, nil
}

// read is Read (Core §6.3.1).
func (d *Device) read(p lwm2m.Path, accept int) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, body, err := d.encode(p, accept)
	if err != nil {
		return errorResponse(err)
	}
	return response{code: codes.Content, format: f, hasBody: true, body: body, observe: -1}
}

// observe is Observe (Core §6.4.1): the current value with an Observe number, then
// notifications.
func (d *Device) observe(r *request) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, body, err := d.encode(r.path, r.accept)
	if err != nil {
		return errorResponse(err)
	}
	nc, ok := asNotifyConn(r.conn)
	if !ok {
		return errorResponse(errors.New("connection cannot notify"))
	}
	tok := string(r.token)
	d.cancelObservation(tok) // an Observe with a known token replaces the observation
	o := &observation{token: append([]byte(nil), r.token...), path: r.path, format: f, conn: nc, lastSent: time.Now()}
	if v, ok := d.numericAt(r.path); ok {
		o.lastNum, o.hasNum = v, true
	}
	d.observations[tok] = o
	d.armPmax(o)
	return response{code: codes.Content, format: f, hasBody: true, body: body, observe: int64(o.seq)}
}

// discover is Discover (Core §6.3.2): the object, instances and resources under p in link
// format, with the attributes written on each.
func (d *Device) discover(p lwm2m.Path) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, _, rd, err := d.tree.lookup(p)
	if err != nil {
		return errorResponse(err)
	}
	if p.Len() == 4 {
		return errorResponse(errMethodNotAllowed)
	}
	var b strings.Builder
	link := func(q lwm2m.Path) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("<" + q.String() + ">")
	}
	resourceLink := func(q lwm2m.Path, rd *resourceDef, in *instance) {
		link(q)
		if rd.multiple && d.cfg.LwM2MVersion != "1.0" {
			b.WriteString(";dim=" + strconv.Itoa(len(in.multiple[rd.id])))
		}
		d.attrs[q].render(&b)
	}
	if p.Len() == 1 {
		link(p)
		if o.def.version != "" && d.cfg.LwM2MVersion != "1.0" {
			b.WriteString(";ver=" + o.def.version)
		}
		d.attrs[p].render(&b)
	}
	for _, iid := range o.instanceIDs() {
		if p.Len() >= 2 && iid != p.InstanceID() {
			continue
		}
		in := o.instances[iid]
		ip := lwm2m.NewPath(o.def.id, iid)
		if p.Len() <= 2 {
			link(ip)
			d.attrs[ip].render(&b)
		}
		for _, rid := range o.def.resourceIDs() {
			r := o.def.resources[rid]
			if (p.Len() == 3 && r != rd) || !in.has(r) {
				continue
			}
			resourceLink(ip.Append(rid), r, in)
		}
	}
	return response{code: codes.Content, format: lwm2m.FormatLinkFormat, hasBody: true, body: []byte(b.String()), observe: -1}
}

// writeAttributes is Write-Attributes (Core §6.3.4): a PUT with only Uri-Query.
func (d *Device) writeAttributes(p lwm2m.Path, queries []string) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _, rd, err := d.tree.lookup(p)
	if err != nil {
		return errorResponse(err)
	}
	isNumeric := false
	if rd != nil {
		switch rd.typ {
		case lwm2m.TypeInteger, lwm2m.TypeUnsignedInteger, lwm2m.TypeFloat, lwm2m.TypeTime:
			isNumeric = true
		}
	}
	a, err := parseAttributes(d.attrs[p], queries, isNumeric)
	if err != nil {
		return errorResponse(err)
	}
	if len(a) == 0 {
		delete(d.attrs, p)
	} else {
		d.attrs[p] = a
	}
	for _, o := range d.observations { // new periods apply from now
		if o.path.HasPrefix(p) || p.HasPrefix(o.path) {
			d.armPmax(o)
		}
	}
	return response{code: codes.Changed, observe: -1}
}

// checkRecord validates one written value against the model and converts it to the
// resource's type; with d.mu held.
func checkRecord(o *object, rec lwm2m.Record, create bool) (*resourceDef, lwm2m.Record, error) {
	if rec.Path.Len() < 3 {
		return nil, rec, fmt.Errorf("%w: %s is not a resource", errBadRequest, rec.Path)
	}
	rd, ok := o.def.resources[rec.Path.ResourceID()]
	if !ok {
		return nil, rec, fmt.Errorf("%w: %s", errNotFound, rec.Path)
	}
	if !create && rd.ops&opW == 0 {
		return nil, rec, fmt.Errorf("%w: %s is not writable", errMethodNotAllowed, rec.Path)
	}
	if rd.ops&opE != 0 {
		return nil, rec, fmt.Errorf("%w: %s is executable", errMethodNotAllowed, rec.Path)
	}
	if (rec.Path.Len() == 4) != rd.multiple {
		return nil, rec, fmt.Errorf("%w: %s does not match the resource's dimension", errBadRequest, rec.Path)
	}
	v, ok := convert(rec.Value, rd.typ)
	if !ok {
		return nil, rec, fmt.Errorf("%w: %s: %s for a %s resource", errBadRequest, rec.Path, rec.Value.Type, rd.typ)
	}
	rec.Value = v
	return rd, rec, nil
}

// convert turns a decoded value into type t when that loses nothing.
func convert(v lwm2m.Value, t lwm2m.Type) (lwm2m.Value, bool) {
	if v.Type == t || t == lwm2m.TypeNone {
		return v, true
	}
	n, isNum := numeric(v)
	switch t {
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		if isNum && n == float64(int64(n)) {
			return lwm2m.Value{Type: t, Int: int64(n)}, true
		}
	case lwm2m.TypeUnsignedInteger:
		if isNum && n >= 0 && n == float64(uint64(n)) {
			return lwm2m.Unsigned(uint64(n)), true
		}
	case lwm2m.TypeFloat:
		if isNum {
			return lwm2m.Float(n), true
		}
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		if v.Type == lwm2m.TypeString || v.Type == lwm2m.TypeCorelnk {
			return lwm2m.Value{Type: t, Str: v.Str}, true
		}
	}
	return v, false
}

// write is Write (Core §6.3.3): replace with PUT, partial update with POST to an instance.
func (d *Device) write(r *request, replace bool) (resp response) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() { resp = d.answered(resp) }() // with d.mu, before the unlock above
	p := r.path
	if p.Len() < 2 {
		return errorResponse(errMethodNotAllowed)
	}
	look := p
	if p.Len() == 4 {
		look = p.Parent() // replacing a resource instance may create it
	}
	o, in, rd, err := d.tree.lookup(look)
	if err != nil {
		return errorResponse(err)
	}
	if rd != nil && rd.ops&opW == 0 {
		return errorResponse(errMethodNotAllowed)
	}
	if p.Len() == 4 && !rd.multiple {
		return errorResponse(errNotFound)
	}
	f, err := d.writeFormat(p, rd, r.cf)
	if err != nil {
		return errorResponse(err)
	}
	recs, err := codec.Decode(f, p, r.body, d.tree)
	if err != nil {
		return errorResponse(fmt.Errorf("%w: %v", errBadRequest, err))
	}
	if len(recs) == 0 && p.Len() >= 3 && !(rd.multiple && p.Len() == 3) {
		return errorResponse(fmt.Errorf("%w: no value", errBadRequest))
	}
	type checked struct {
		rd  *resourceDef
		rec lwm2m.Record
	}
	var todo []checked
	for _, rec := range recs {
		if !rec.Path.HasPrefix(p) {
			return errorResponse(fmt.Errorf("%w: %s outside %s", errBadRequest, rec.Path, p))
		}
		rd, rec, err := checkRecord(o, rec, false)
		if err != nil {
			return errorResponse(err)
		}
		todo = append(todo, checked{rd, rec})
	}
	if replace { // a replaced multiple resource loses the instances the payload does not name
		if p.Len() == 3 && rd.multiple {
			delete(in.multiple, rd.id)
			in.multiple[rd.id] = map[uint16]lwm2m.Value{}
		}
		if p.Len() == 2 {
			for _, c := range todo {
				if c.rd.multiple {
					delete(in.multiple, c.rd.id)
				}
			}
		}
	}
	for _, c := range todo {
		if c.rd.write != nil {
			if err := c.rd.write(d, c.rec.Path, c.rec.Value); err != nil {
				return errorResponse(err)
			}
		}
		in.set(c.rd, c.rec.Path, c.rec.Value)
	}
	d.changed(p)
	return response{code: codes.Changed, observe: -1}
}

// execute is Execute (Core §6.3.5); args is the payload as sent.
func (d *Device) execute(p lwm2m.Path, args string) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _, rd, err := d.tree.lookup(p)
	if err != nil {
		return errorResponse(err)
	}
	if rd.ops&opE == 0 {
		return errorResponse(errMethodNotAllowed)
	}
	var after func()
	if rd.execute != nil {
		if after, err = rd.execute(d, p, args); err != nil {
			return errorResponse(err)
		}
	}
	d.stats.add(func(s *Stats) { s.Executes++ })
	return response{code: codes.Changed, observe: -1, after: after}
}

// create is Create (Core §6.3.6) on an object whose instances the server manages.
func (d *Device) create(r *request) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, _, _, err := d.tree.lookup(r.path)
	if err != nil {
		return errorResponse(err)
	}
	if !o.def.creatable {
		return errorResponse(errMethodNotAllowed)
	}
	if !o.def.multiple && len(o.instances) > 0 {
		return errorResponse(fmt.Errorf("%w: single-instance object already has its instance", errBadRequest))
	}
	f, err := d.writeFormat(r.path, nil, r.cf)
	if err != nil {
		return errorResponse(err)
	}
	newID := uint16(0)
	for o.instances[newID] != nil {
		newID++
	}
	recs, err := codec.Decode(f, r.path, r.body, d.tree)
	if err != nil { // TLV may carry the resources without an instance around them
		recs, err = codec.Decode(f, r.path.Append(newID), r.body, d.tree)
	}
	if err != nil {
		return errorResponse(fmt.Errorf("%w: %v", errBadRequest, err))
	}
	iid := newID
	if len(recs) > 0 {
		iid = recs[0].Path.InstanceID()
	}
	if o.instances[iid] != nil {
		return errorResponse(fmt.Errorf("%w: instance %d exists", errBadRequest, iid))
	}
	in := newInstance()
	for _, rec := range recs {
		if rec.Path.InstanceID() != iid {
			return errorResponse(fmt.Errorf("%w: one instance per Create", errBadRequest))
		}
		rd, rec, err := checkRecord(o, rec, true)
		if err != nil {
			return errorResponse(err)
		}
		in.set(rd, rec.Path, rec.Value)
	}
	o.instances[iid] = in
	d.objectsChanged = true
	d.changed(lwm2m.NewPath(o.def.id, iid))
	return response{
		code: codes.Created, observe: -1,
		location: []string{strconv.Itoa(int(o.def.id)), strconv.Itoa(int(iid))},
		after:    d.triggerUpdate,
	}
}

// delete is Delete (Core §6.3.7) of an object instance.
func (d *Device) delete(p lwm2m.Path) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Len() != 2 {
		return errorResponse(errMethodNotAllowed)
	}
	o, _, _, err := d.tree.lookup(p)
	if err != nil {
		return errorResponse(err)
	}
	if !o.def.creatable {
		return errorResponse(errMethodNotAllowed)
	}
	delete(o.instances, p.InstanceID())
	for k := range d.attrs {
		if k.HasPrefix(p) {
			delete(d.attrs, k)
		}
	}
	for _, ob := range d.observations { // observers below the instance get a last 4.04
		if ob.path.HasPrefix(p) {
			ob.pending = true
			go d.notify(ob)
		}
	}
	d.changed(p)
	d.objectsChanged = true
	return response{code: codes.Deleted, observe: -1, after: d.triggerUpdate}
}
