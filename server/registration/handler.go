package registration

import (
	"context"
	"strings"

	"github.com/lwota/lwota/server/transport"
)

// ServeCoAP answers the Registration interface: POST /rd, POST /rd/{id}, DELETE /rd/{id}.
func (r *Registry) ServeCoAP(ctx context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	rest, ok := strings.CutPrefix(req.Path, "/rd")
	if !ok || (rest != "" && rest[0] != '/') {
		return diagnostic(transport.NotFound, "no such resource")
	}
	id := strings.TrimPrefix(rest, "/")
	if strings.Contains(id, "/") {
		return diagnostic(transport.NotFound, "no such registration")
	}
	switch {
	case id == "" && req.Code == transport.POST:
		reg, err := r.register(ctx, from, req.Query, req.ContentFormat, req.Payload)
		if err != nil {
			return r.fail("register", from, err)
		}
		resp := transport.NewMessage(transport.Created)
		resp.LocationPath = []string{"rd", reg.ID}
		return resp
	case id != "" && req.Code == transport.POST:
		if _, err := r.update(ctx, id, from, req.Query, req.ContentFormat, req.Payload); err != nil {
			return r.fail("update", from, err)
		}
		return transport.NewMessage(transport.Changed)
	case id != "" && req.Code == transport.DELETE:
		if _, err := r.deregister(ctx, id, from); err != nil {
			return r.fail("deregister", from, err)
		}
		return transport.NewMessage(transport.Deleted)
	}
	return diagnostic(transport.MethodNotAllowed, req.Code.String()+" is not a registration operation")
}

func (r *Registry) fail(op string, from transport.Peer, err error) *transport.Message {
	code := errorCode(err)
	r.metrics.rejected.WithLabelValues(op, code.String()).Inc()
	r.metrics.countLimit(err)
	if code == transport.InternalServerError {
		r.log.Error(op+" failed", "addr", from.Addr.String(), "err", err)
		return diagnostic(code, "internal error")
	}
	r.log.Debug(op+" refused", "addr", from.Addr.String(), "err", err)
	resp := diagnostic(code, err.Error())
	resp.MaxAge = maxAge(err) // a draining node: when to try again (through the balancer)
	return resp
}

// diagnostic is an error response with a text/plain diagnostic payload (RFC 7252 §5.5.2).
func diagnostic(code transport.Code, msg string) *transport.Message {
	resp := transport.NewMessage(code)
	resp.ContentFormat = 0
	resp.Payload = []byte(msg)
	return resp
}
