// Package events fans server happenings (registrations, notifications, update jobs, campaigns) out to live subscribers
// such as the API's server-sent event stream. Slow subscribers lose events; publishers never wait.
package events

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Event types published by the server.
const (
	TypeRegistered   = "registered"
	TypeUpdated      = "updated"
	TypeDeregistered = "deregistered"
	TypeExpired      = "expired"
	TypeNotification = "notification"
	TypeRequestDone  = "request"
)

// Event is one happening on one endpoint.
type Event struct {
	Type     string    `json:"type"`
	Endpoint string    `json:"endpoint"`
	Time     time.Time `json:"time"`
	Data     any       `json:"data,omitempty"`
}

// Bus delivers published events to every current subscriber through a bounded channel each.
type Bus struct {
	buffer  int
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	dropped atomic.Uint64
}

// NewBus returns a bus whose subscribers each buffer up to buffer events.
func NewBus(buffer int) *Bus {
	if buffer <= 0 {
		buffer = 64
	}
	return &Bus{buffer: buffer, subs: make(map[chan Event]struct{})}
}

// Publish hands e to every subscriber that has room; it never blocks.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
}

// Subscribe returns a channel of events that is closed when ctx ends.
func (b *Bus) Subscribe(ctx context.Context) <-chan Event { return b.SubscribeN(ctx, b.buffer) }

// SubscribeN is Subscribe with a buffer of n events, for a subscriber that must keep up with
// bursts (the firmware update driver hears every device of a campaign).
func (b *Bus) SubscribeN(ctx context.Context, n int) <-chan Event {
	ch := make(chan Event, max(n, 1))
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, ch)
		close(ch)
		b.mu.Unlock()
	}()
	return ch
}

// Dropped counts events lost to full subscriber buffers.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }
