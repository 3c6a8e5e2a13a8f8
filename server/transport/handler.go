// Package transport moves CoAP messages between lwota and devices over UDP and DTLS.
// It is the only package that speaks go-coap; everything above it sees Message, Peer and Handler.
package transport

import "context"

// Handler answers a request from a peer. It returns the response to send; the transport
// fills in message type, message id and token. A nil response sends an empty ACK for a
// confirmable request and nothing for a non-confirmable one.
type Handler interface {
	ServeCoAP(ctx context.Context, from Peer, req *Message) *Message
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, from Peer, req *Message) *Message

// ServeCoAP calls f.
func (f HandlerFunc) ServeCoAP(ctx context.Context, from Peer, req *Message) *Message {
	return f(ctx, from, req)
}
