package dm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// validate checks a request's shape against the operation before anything is sent (Core §6.3/6.4).
func validate(req Request) error {
	depth := req.Path.Len()
	bad := func(why string) error {
		return fmt.Errorf("%w: %s on %s: %s", ErrInvalid, req.Op, req.Path, why)
	}
	switch req.Op {
	case OpRead, OpObserve, OpCancelObserve:
		if depth < 1 {
			return bad("needs an object, instance, resource or resource instance path")
		}
	case OpDiscover:
		if depth < 1 || depth > 3 {
			return bad("needs an object, instance or resource path")
		}
	case OpWrite:
		if depth < 2 {
			return bad("needs an instance, resource or resource instance path")
		}
		if len(req.Records) == 0 {
			return bad("no values to write")
		}
	case OpWritePartial:
		if depth < 2 || depth > 3 {
			return bad("needs an instance or multiple-instance resource path")
		}
		if len(req.Records) == 0 {
			return bad("no values to write")
		}
	case OpWriteAttributes:
		if depth < 1 {
			return bad("needs a path")
		}
		if req.Attributes == nil {
			return bad("no attributes")
		}
	case OpExecute:
		if depth != 3 {
			return bad("needs a resource path")
		}
	case OpCreate:
		if depth != 1 {
			return bad("needs an object path")
		}
	case OpDelete:
		if depth != 2 {
			return bad("needs an instance path")
		}
	case OpReadComposite, OpObserveComposite, OpCancelObserveComposite:
		if depth != 0 {
			return bad("a composite read names its paths in Paths, on the root path")
		}
		if len(req.Paths) == 0 || len(req.Paths) > codec.MaxPaths {
			return bad(fmt.Sprintf("needs 1 to %d paths, got %d", codec.MaxPaths, len(req.Paths)))
		}
		for _, p := range req.Paths {
			if p.Len() == 0 {
				return bad("the root cannot be read in a composite read")
			}
		}
	case OpWriteComposite:
		if depth != 0 {
			return bad("a composite write names its paths in its records, on the root path")
		}
		if len(req.Records) == 0 {
			return bad("no values to write")
		}
	default:
		return fmt.Errorf("%w: unknown operation %q", ErrInvalid, req.Op)
	}
	if !compositeRead(req.Op) && len(req.Paths) > 0 {
		return bad("paths belong to a composite read or observe")
	}
	for _, r := range req.Records {
		if !r.Path.HasPrefix(req.Path) {
			return bad(fmt.Sprintf("value path %s is not under %s", r.Path, req.Path))
		}
		if r.Path.Len() < 3 {
			return bad(fmt.Sprintf("value path %s is not a resource", r.Path))
		}
	}
	return nil
}

// preferred formats in order: compact and typed first. TLV stays the choice of 1.0 devices.
var preferred = []lwm2m.ContentFormat{lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatTLV}

// compositeRead reports the composite operations that send a path list in a FETCH.
func compositeRead(op Op) bool {
	return op == OpReadComposite || op == OpObserveComposite || op == OpCancelObserveComposite
}

// compositeFormats are the formats composite answers and writes may take, preferred first
// (Core §6.3.1: SenML JSON, SenML CBOR, and LwM2M CBOR from 1.2).
var compositeFormats = []lwm2m.ContentFormat{lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatSenMLJSON}

// CompositeFormat returns the format lwota reads and writes reg's device in with composite
// operations, and false when its registration does not allow them: a 1.0 device, or a 1.1+
// device that declared (ct= on its root link) none of SenML CBOR, LwM2M CBOR and SenML JSON.
func CompositeFormat(reg *registration.Registration) (lwm2m.ContentFormat, bool) {
	if reg.Version == "" || reg.Version == "1.0" {
		return 0, false
	}
	for _, f := range compositeFormats {
		if reg.SupportsFormat(f) {
			return f, true
		}
	}
	return 0, false
}

// compositeFormat picks the answer (read) or payload (write) format of a composite request:
// the caller's choice, which must be one composite operations allow, else CompositeFormat.
func compositeFormat(reg *registration.Registration, req Request) (lwm2m.ContentFormat, error) {
	if req.Format != nil {
		if !slices.Contains(compositeFormats, *req.Format) {
			return 0, fmt.Errorf("%w: %s on %s: format %s cannot carry a composite payload; use senml-cbor, senml-json or lwm2m-cbor",
				ErrInvalid, req.Op, reg.Endpoint, req.Format.Name())
		}
		if reg.Version == "1.0" {
			return 0, fmt.Errorf("%w: %s on %s: an LwM2M 1.0 device has no composite operations", ErrInvalid, req.Op, reg.Endpoint)
		}
		return *req.Format, nil
	}
	f, ok := CompositeFormat(reg)
	if !ok {
		return 0, fmt.Errorf("%w: %s on %s: the device (LwM2M %s, formats %v) declared no format composite operations take; give one",
			ErrInvalid, req.Op, reg.Endpoint, reg.Version, reg.ContentFormats)
	}
	return f, nil
}

// pathListFormat is the format of a Read-Composite's path list: the answer's format when it
// is SenML, else the SenML format the device declared, SenML CBOR first.
func pathListFormat(reg *registration.Registration, answer lwm2m.ContentFormat) lwm2m.ContentFormat {
	if codec.PathListFormat(answer) {
		return answer
	}
	if !reg.SupportsFormat(lwm2m.FormatSenMLCBOR) && reg.SupportsFormat(lwm2m.FormatSenMLJSON) {
		return lwm2m.FormatSenMLJSON
	}
	return lwm2m.FormatSenMLCBOR
}

// readFormat picks the Accept of a read or observe: the caller's choice, else the best format the
// device declared, else none (the device answers in its default and says which).
func readFormat(reg *registration.Registration, req Request) (lwm2m.ContentFormat, bool) {
	if req.Format != nil {
		return *req.Format, true
	}
	for _, f := range preferred {
		if reg.SupportsFormat(f) {
			return f, true
		}
	}
	return 0, false
}

// writeFormat picks the Content-Format of a write or create payload.
func writeFormat(reg *registration.Registration, req Request, model codec.Resolver) lwm2m.ContentFormat {
	if req.Format != nil {
		return *req.Format
	}
	for _, f := range preferred {
		if reg.SupportsFormat(f) {
			return f
		}
	}
	// A device that declared nothing: 1.0 devices must take TLV; single values go as text or opaque,
	// which every version accepts.
	if (req.Path.Len() == 3 || req.Path.Len() == 4) && len(req.Records) == 1 && req.Records[0].Path == req.Path && !isMultiple(req, model) {
		if req.Records[0].Value.Type == lwm2m.TypeOpaque {
			return lwm2m.FormatOpaque
		}
		return lwm2m.FormatText
	}
	if reg.Version == "1.0" {
		return lwm2m.FormatTLV
	}
	return lwm2m.FormatSenMLCBOR
}

// isMultiple is true when the model says a 3-deep path is a multiple-instance resource.
func isMultiple(req Request, model codec.Resolver) bool {
	if req.Path.Len() != 3 {
		return false
	}
	type multi interface {
		Multiple(objectID, resourceID uint16) bool
	}
	if m, ok := model.(multi); ok {
		return m.Multiple(req.Path.ObjectID(), req.Path.ResourceID())
	}
	return false
}

// uriPath renders p under the device's alternate root path.
func uriPath(reg *registration.Registration, p lwm2m.Path) string {
	s := p.String()
	if reg.RootPath != "" && reg.RootPath != "/" {
		if s == "/" {
			return reg.RootPath
		}
		return reg.RootPath + s
	}
	return s
}

// attributeQuery renders Write-Attributes as Uri-Query options (Core §5.1.2).
func attributeQuery(a *Attributes) []string {
	var q []string
	u := func(k string, v *uint32) {
		if v != nil {
			q = append(q, k+"="+strconv.FormatUint(uint64(*v), 10))
		}
	}
	f := func(k string, v *float64) {
		if v != nil {
			q = append(q, k+"="+strconv.FormatFloat(*v, 'g', -1, 64))
		}
	}
	u("pmin", a.Pmin)
	u("pmax", a.Pmax)
	f("gt", a.Gt)
	f("lt", a.Lt)
	f("st", a.St)
	u("epmin", a.Epmin)
	u("epmax", a.Epmax)
	q = append(q, a.Clear...)
	return q
}

// validAttribute names the attributes Clear may carry.
func validAttribute(k string) bool {
	switch k {
	case "pmin", "pmax", "gt", "lt", "st", "epmin", "epmax":
		return true
	}
	return false
}

// buildMessage turns req into the CoAP request for reg, with token left to the caller.
func buildMessage(reg *registration.Registration, req Request, model codec.Resolver) (*transport.Message, lwm2m.ContentFormat, error) {
	var msg *transport.Message
	var format lwm2m.ContentFormat
	switch req.Op {
	case OpRead, OpObserve, OpCancelObserve:
		msg = transport.NewMessage(transport.GET)
		if f, ok := readFormat(reg, req); ok {
			msg.Accept = int(f)
			format = f
		}
		switch req.Op {
		case OpObserve:
			msg.Observe = 0
		case OpCancelObserve:
			msg.Observe = 1
		}
	case OpDiscover:
		msg = transport.NewMessage(transport.GET)
		msg.Accept = int(lwm2m.FormatLinkFormat)
		format = lwm2m.FormatLinkFormat
	case OpWrite, OpWritePartial, OpCreate:
		msg = transport.NewMessage(transport.PUT)
		if req.Op != OpWrite {
			msg.Code = transport.POST
		}
		format = writeFormat(reg, req, model)
		body, err := codec.Encode(format, req.Path, req.Records)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: encode %s: %v", ErrInvalid, format.Name(), err)
		}
		msg.ContentFormat = int(format)
		msg.Payload = body
	case OpWriteAttributes:
		for _, k := range req.Attributes.Clear {
			if !validAttribute(k) {
				return nil, 0, fmt.Errorf("%w: unknown attribute %q", ErrInvalid, k)
			}
		}
		msg = transport.NewMessage(transport.PUT)
		msg.Query = attributeQuery(req.Attributes)
		if len(msg.Query) == 0 {
			return nil, 0, fmt.Errorf("%w: no attributes to write", ErrInvalid)
		}
	case OpExecute:
		msg = transport.NewMessage(transport.POST)
		if req.Args != "" {
			msg.Payload = []byte(req.Args)
			msg.ContentFormat = int(lwm2m.FormatText)
		}
	case OpDelete:
		msg = transport.NewMessage(transport.DELETE)
	case OpReadComposite, OpObserveComposite, OpCancelObserveComposite:
		f, err := compositeFormat(reg, req)
		if err != nil {
			return nil, 0, err
		}
		list := pathListFormat(reg, f)
		body, err := codec.EncodePaths(list, req.Paths)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		msg = transport.NewMessage(transport.FETCH)
		msg.ContentFormat, msg.Accept, msg.Payload = int(list), int(f), body
		format = f
		switch req.Op {
		case OpObserveComposite:
			msg.Observe = 0
		case OpCancelObserveComposite:
			msg.Observe = 1
		}
	case OpWriteComposite:
		f, err := compositeFormat(reg, req)
		if err != nil {
			return nil, 0, err
		}
		body, err := codec.Encode(f, lwm2m.RootPath, req.Records)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: encode %s: %v", ErrInvalid, f.Name(), err)
		}
		msg = transport.NewMessage(transport.IPATCH)
		msg.ContentFormat, msg.Payload = int(f), body
		format = f
	}
	msg.Path = uriPath(reg, req.Path)
	return msg, format, nil
}

// expected is the success code of each operation.
func expected(op Op) transport.Code {
	switch op {
	case OpRead, OpDiscover, OpObserve, OpCancelObserve, OpReadComposite, OpObserveComposite, OpCancelObserveComposite:
		return transport.Content
	case OpCreate:
		return transport.Created
	case OpDelete:
		return transport.Deleted
	}
	return transport.Changed
}

// decodeResult reads the device's answer into a Result. A body lwota cannot decode is kept raw.
func decodeResult(req Request, asked lwm2m.ContentFormat, resp *transport.Message, model codec.Resolver) (*Result, error) {
	res := &Result{Code: resp.Code.String()}
	if resp.Code != expected(req.Op) && !(resp.Code.IsSuccess() && req.Op != OpRead && !compositeRead(req.Op)) {
		return nil, &DeviceError{Code: resp.Code.String(), Msg: diagnosticText(resp.Payload)}
	}
	if len(resp.LocationPath) > 0 {
		res.Location = "/" + strings.Join(resp.LocationPath, "/")
	}
	if len(resp.Payload) == 0 || req.Op == OpExecute || req.Op == OpWrite || req.Op == OpWritePartial || req.Op == OpWriteAttributes || req.Op == OpDelete || req.Op == OpCreate || req.Op == OpWriteComposite {
		return res, nil
	}
	format := asked
	if resp.ContentFormat >= 0 {
		format = lwm2m.ContentFormat(resp.ContentFormat)
	} else if format == 0 && req.Path.Len() >= 3 {
		format = lwm2m.FormatText
	}
	res.Format = format
	if format == lwm2m.FormatLinkFormat {
		res.Links = string(resp.Payload)
		return res, nil
	}
	recs, err := codec.Decode(format, req.Path, resp.Payload, model)
	if err != nil {
		// The device answered; keep its bytes so an operator can see what it said.
		res.Payload = resp.Payload
		return res, fmt.Errorf("decode %s answer for %s: %w", format.Name(), req.Path, err)
	}
	res.Records = recs
	return res, nil
}

// diagnosticText keeps a device's diagnostic payload only when it is short printable text.
func diagnosticText(b []byte) string {
	if len(b) == 0 || len(b) > 256 {
		return ""
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return string(b)
}
