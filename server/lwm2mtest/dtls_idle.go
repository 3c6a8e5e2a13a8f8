package lwm2mtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	piondtls "github.com/pion/dtls/v3"
)

// DTLSSessions is a set of established, idle DTLS sessions: the devices of a fleet that
// handshook and then said nothing, for measuring what a server holds per idle session.
type DTLSSessions struct {
	mu    sync.Mutex
	conns []*piondtls.Conn
}

// OpenDTLSSessions handshakes n sessions with the server at addr, as psk(i), each from its own
// UDP socket (bound to from(i); any address and port when from is nil), with at most
// concurrency handshakes at once; progress (may be nil) hears the count after every `every`
// sessions. A failed handshake fails the call and closes the others.
//
// A large n wants from to name ports below the ephemeral range, on a few loopback addresses:
// tens of thousands of sockets on ephemeral ports leave no port free on every address at once,
// which an unbound UDP socket needs to connect (EAGAIN), for every program on the machine. A
// port from(i) names that is taken falls back to an ephemeral one.
func OpenDTLSSessions(ctx context.Context, addr string, n, concurrency int, psk func(i int) PSK, from func(i int) netip.AddrPort, every int, progress func(done int)) (*DTLSSessions, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: dtls sessions: %w", err)
	}
	s := &DTLSSessions{conns: make([]*piondtls.Conn, 0, n)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		done     atomic.Int64
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for range max(min(concurrency, n), 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				var local *net.UDPAddr
				if from != nil {
					local = net.UDPAddrFromAddrPort(from(i))
				}
				c, err := dialPSKFrom(ctx, local, raddr, psk(i))
				if errors.Is(err, syscall.EADDRINUSE) && local.Port != 0 {
					local.Port = 0
					c, err = dialPSKFrom(ctx, local, raddr, psk(i))
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("lwm2mtest: dtls session %d: %w", i, err); cancel() })
					return
				}
				s.mu.Lock()
				s.conns = append(s.conns, c)
				s.mu.Unlock()
				if d := done.Add(1); every > 0 && progress != nil && d%int64(every) == 0 {
					progress(int(d))
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		s.Close()
		return nil, firstErr
	}
	return s, nil
}

// Len is the number of sessions.
func (s *DTLSSessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close closes every session (a close_notify each) and its socket.
func (s *DTLSSessions) Close() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
