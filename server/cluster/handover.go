package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
)

// maxNotify is the largest envelope sent in a NOTIFY payload (PostgreSQL's limit is 8000
// bytes); a larger body goes into cluster_messages and the envelope names it (Config.MaxNotify).
const maxNotify = 7900

// envelope is one handover message on a node's channel.
type envelope struct {
	Kind string          `json:"k"`            // "req" or "ans"
	ID   string          `json:"id"`           // the request's id, repeated by its answer
	From uint16          `json:"from"`         // the sending node
	Ref  bool            `json:"ref,omitzero"` // the body is in cluster_messages under ID+Kind
	Body json.RawMessage `json:"b,omitempty"`
}

// request is a device request handed to the owner.
type request struct {
	Endpoint string     `json:"ep"`
	Now      bool       `json:"now,omitzero"` // DoNow: never queue
	Req      dm.Request `json:"req"`
	Deadline time.Time  `json:"deadline"`
}

// answer is the owner's outcome of a request.
type answer struct {
	Result  *dm.Result  `json:"res,omitempty"`
	Pending *dm.Pending `json:"pending,omitempty"`
	Err     *wireError  `json:"err,omitempty"`
}

// wireError carries an error across nodes with what callers branch on.
type wireError struct {
	Kind string `json:"kind"`
	Msg  string `json:"msg"`
	Code string `json:"code,omitempty"` // kind "device": the CoAP code
}

// errorKinds are the sentinels a handed-over error keeps, by wire name.
var errorKinds = []struct {
	kind string
	err  error
}{
	{"busy", ErrBusy},
	{"owner_down", ErrOwnerDown},
	{"not_found", registration.ErrNotFound},
	{"request_not_found", dm.ErrRequestNotFound},
	{"offline", dm.ErrOffline},
	{"timeout", dm.ErrTimeout},
	{"asleep", dm.ErrAsleep},
	{"queue_full", dm.ErrQueueFull},
	{"invalid", dm.ErrInvalid},
	{"unavailable", dm.ErrUnavailable},
	{"deadline", context.DeadlineExceeded},
	{"canceled", context.Canceled},
}

// toWire classifies err for the caller's node.
func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var de *dm.DeviceError
	if errors.As(err, &de) {
		return &wireError{Kind: "device", Code: de.Code, Msg: de.Msg}
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return &wireError{Kind: k.kind, Msg: err.Error()}
		}
	}
	return &wireError{Kind: "other", Msg: err.Error()}
}

// fromWire rebuilds an error that matches what toWire classified.
func fromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	if w.Kind == "device" {
		return &dm.DeviceError{Code: w.Code, Msg: w.Msg}
	}
	for _, k := range errorKinds {
		if k.kind == w.Kind {
			return fmt.Errorf("owner node: %s: %w", w.Msg, k.err)
		}
	}
	return fmt.Errorf("owner node: %s", w.Msg)
}

// Route runs req at the node owning endpoint and reports handled; handled is false when this
// node owns the device, or no live node does, and the caller runs req here. now selects DoNow.
func (n *Node) Route(ctx context.Context, endpoint string, req dm.Request, now bool) (*dm.Result, *dm.Pending, bool, error) {
	if n.Owns(endpoint) {
		return nil, nil, false, nil
	}
	o, err := n.store.DeviceOwner(ctx, endpoint)
	switch {
	case errors.Is(err, ErrNoOwner):
		return nil, nil, false, nil
	case err != nil:
		return nil, nil, true, fmt.Errorf("cluster: owner of %s: %w", endpoint, err)
	}
	at := n.now()
	if o.NodeID == n.id || !at.Before(o.LeaseUntil) {
		return nil, nil, false, nil // ours, or a lease that ended: whoever hears the device next owns it
	}
	if o.HeartbeatAt.IsZero() || at.Sub(o.HeartbeatAt) >= n.cfg.DeadAfter {
		n.m.handovers.WithLabelValues("sent", "owner_down").Inc()
		return nil, nil, true, fmt.Errorf("%s: node %d: %w", endpoint, o.NodeID, ErrOwnerDown)
	}
	ans, err := n.send(ctx, o.NodeID, request{Endpoint: endpoint, Now: now, Req: req})
	if err != nil {
		return nil, nil, true, err
	}
	return ans.Result, ans.Pending, true, fromWire(ans.Err)
}

// send hands r to node to and waits for its answer, until ctx ends.
func (n *Node) send(ctx context.Context, to uint16, r request) (answer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.HandoverTimeout)
		defer cancel()
	}
	r.Deadline, _ = ctx.Deadline()
	id := newMessageID()
	c := make(chan answer, 1)
	n.mu.Lock()
	if n.inFlight >= n.cfg.MaxInFlight {
		n.mu.Unlock()
		n.m.handovers.WithLabelValues("sent", "busy").Inc()
		return answer{}, ErrBusy
	}
	n.inFlight++
	n.waiting[id] = c
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.inFlight--
		delete(n.waiting, id)
		n.mu.Unlock()
	}()
	body, err := json.Marshal(r)
	if err != nil {
		n.m.handovers.WithLabelValues("sent", "error").Inc()
		return answer{}, fmt.Errorf("cluster: hand %s over: %w", r.Endpoint, err)
	}
	if err := n.post(ctx, to, envelope{Kind: "req", ID: id, From: n.id, Body: body}); err != nil {
		n.m.handovers.WithLabelValues("sent", "error").Inc()
		return answer{}, fmt.Errorf("cluster: hand %s over to node %d: %w", r.Endpoint, to, err)
	}
	select {
	case a, ok := <-c:
		if !ok {
			n.m.handovers.WithLabelValues("sent", "error").Inc()
			return answer{}, fmt.Errorf("cluster: hand %s over: %w", r.Endpoint, dm.ErrUnavailable)
		}
		n.m.handovers.WithLabelValues("sent", resultOf(a.Err)).Inc()
		return a, nil
	case <-ctx.Done():
		n.m.handovers.WithLabelValues("sent", "timeout").Inc()
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			// The owner did not answer in the caller's time: to the API, the device did not.
			err = fmt.Errorf("%w: %w", dm.ErrTimeout, err)
		}
		return answer{}, fmt.Errorf("cluster: %s handed over to node %d: %w", r.Endpoint, to, err)
	}
}

// resultOf names an answer's outcome for the handover metric.
func resultOf(w *wireError) string {
	if w == nil {
		return "ok"
	}
	return w.Kind
}

// post sends env to node to: in the notification, or in cluster_messages when too large.
func (n *Node) post(ctx context.Context, to uint16, env envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if len(b) > n.cfg.MaxNotify {
		if err := n.store.PutMessage(ctx, env.ID+"/"+env.Kind, string(env.Body), n.now()); err != nil {
			return err
		}
		env.Ref, env.Body = true, nil
		if b, err = json.Marshal(env); err != nil {
			return err
		}
	}
	return n.ps.Notify(ctx, nodeChannel(to), string(b))
}

// receive handles one message on this node's channel: an answer wakes its caller, a request
// runs in its own goroutine (bounded by MaxServing).
func (n *Node) receive(ctx context.Context, payload string) {
	var env envelope
	if err := json.Unmarshal([]byte(payload), &env); err != nil || env.ID == "" || (env.Kind != "req" && env.Kind != "ans") {
		n.log.Warn("malformed handover message", "err", err, "bytes", len(payload))
		return
	}
	switch env.Kind {
	case "ans":
		n.mu.Lock()
		c := n.waiting[env.ID]
		n.mu.Unlock()
		if c == nil {
			return // its caller gave up
		}
		body, err := n.body(ctx, env)
		var a answer
		if err == nil {
			err = json.Unmarshal(body, &a)
		}
		if err != nil {
			a = answer{Err: toWire(fmt.Errorf("cluster: read the answer: %w", err))}
		}
		select {
		case c <- a:
		default:
		}
	case "req":
		n.mu.Lock()
		busy := n.serving >= n.cfg.MaxServing || n.exec == nil
		if !busy {
			n.serving++
		}
		n.mu.Unlock()
		if busy {
			n.m.handovers.WithLabelValues("served", "busy").Inc()
			n.reply(ctx, env, answer{Err: toWire(ErrBusy)})
			if env.Ref { // nobody else will read it
				_, _ = n.store.TakeMessage(ctx, env.ID+"/"+env.Kind)
			}
			return
		}
		n.served.Add(1)
		go func() {
			defer n.served.Done()
			defer func() {
				n.mu.Lock()
				n.serving--
				n.mu.Unlock()
			}()
			a := n.serve(ctx, env)
			n.m.handovers.WithLabelValues("served", resultOf(a.Err)).Inc()
			n.reply(ctx, env, a)
		}()
	}
}

// body is env's body, fetched from cluster_messages when it was too large to notify.
func (n *Node) body(ctx context.Context, env envelope) ([]byte, error) {
	if !env.Ref {
		return env.Body, nil
	}
	s, err := n.store.TakeMessage(ctx, env.ID+"/"+env.Kind)
	return []byte(s), err
}

// serve runs a handed-over request here, within the caller's deadline.
func (n *Node) serve(ctx context.Context, env envelope) answer {
	body, err := n.body(ctx, env)
	if err != nil {
		return answer{Err: toWire(fmt.Errorf("cluster: read the request: %w", err))}
	}
	var r request
	if err := json.Unmarshal(body, &r); err != nil || r.Endpoint == "" {
		return answer{Err: toWire(fmt.Errorf("%w: malformed handover request", dm.ErrInvalid))}
	}
	if !r.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.Deadline)
		defer cancel()
	}
	n.mu.Lock()
	exec := n.exec
	n.mu.Unlock()
	if r.Now {
		res, err := exec.DoNowHere(ctx, r.Endpoint, r.Req)
		return answer{Result: res, Err: toWire(err)}
	}
	res, p, err := exec.DoHere(ctx, r.Endpoint, r.Req)
	return answer{Result: res, Pending: p, Err: toWire(err)}
}

// reply sends a's answer to the request env, after the request's own deadline at the latest.
func (n *Node) reply(ctx context.Context, env envelope, a answer) {
	body, err := json.Marshal(a)
	if err != nil { // a value JSON cannot hold (NaN): say so rather than leave the caller waiting
		body, _ = json.Marshal(answer{Err: toWire(fmt.Errorf("cluster: encode the answer: %w", err))})
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := n.post(ctx, env.From, envelope{Kind: "ans", ID: env.ID, From: n.id, Body: body}); err != nil {
		n.log.Warn("handover answer not sent", "node_id", env.From, "err", err)
	}
}

// newMessageID is a random handover request id.
func newMessageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
