package lwm2mtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
)

// DTLS load: the pull load over CoAP over DTLS 1.2 with pre-shared keys, and a handshake load.
// Devices speak pion's DTLS client, as lwota's transport speaks pion's server; the cipher suite
// is LwM2M's mandatory TLS_PSK_WITH_AES_128_CCM_8.

// PSK is a device's pre-shared key credential.
type PSK struct {
	Identity string
	Key      []byte
}

// dialPSK handshakes with the server at raddr as psk, from a new UDP socket; closing the
// connection closes the socket.
func dialPSK(ctx context.Context, raddr *net.UDPAddr, psk PSK) (*piondtls.Conn, error) {
	return dialPSKFrom(ctx, nil, raddr, psk)
}

// dialPSKFrom is dialPSK from a socket bound to local (any address and port when nil).
func dialPSKFrom(ctx context.Context, local, raddr *net.UDPAddr, psk PSK) (*piondtls.Conn, error) {
	pc, err := net.ListenUDP("udp", local)
	if err != nil {
		return nil, err
	}
	c, err := piondtls.ClientWithOptions(pc, raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return psk.Key, nil }),
		piondtls.WithPSKIdentityHint([]byte(psk.Identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		pc.Close()
		return nil, err
	}
	if err := c.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// PullLoadDTLS is PullLoad over CoAP over DTLS (a coaps:// URI): every device first handshakes
// as psk(i) on a socket of its own; the run starts once every device has its session, so the
// handshakes are not in the rates. A failed handshake fails the run.
func PullLoadDTLS(ctx context.Context, cfg PullConfig, psk func(i int) PSK) (PullReport, error) {
	return PullLoadDTLSDial(ctx, cfg, func(ctx context.Context, raddr *net.UDPAddr, i int) (*piondtls.Conn, error) {
		return dialPSK(ctx, raddr, psk(i))
	})
}

// PullLoadDTLSDial is PullLoadDTLS with the handshake of device i left to dial (its cipher
// suite and credential: dtls_pull_suites.go), which must handshake from a new socket.
func PullLoadDTLSDial(ctx context.Context, cfg PullConfig, dial func(ctx context.Context, raddr *net.UDPAddr, i int) (*piondtls.Conn, error)) (PullReport, error) {
	cfg = cfg.withDefaults()
	raddr, pathOpts, err := pullTarget(cfg.URI, "coaps", "5684")
	if err != nil {
		return PullReport{}, err
	}
	conns := make([]pullConn, cfg.Devices)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, 16) // handshakes at once: a burst would only retransmit
	)
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := dial(hctx, raddr, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("lwm2mtest: pull: device %d: dtls handshake: %w", i, err)
				}
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return PullReport{}, firstErr
	}
	return pullOver(ctx, cfg, pathOpts, conns), nil
}

// HandshakeReport is what a handshake load run measured.
type HandshakeReport struct {
	Clients    int
	Elapsed    time.Duration
	Handshakes int64 // completed
	Errors     int64 // failed or timed out
	PerSec     float64
	FirstError string
}

// DTLSHandshakes runs clients concurrent devices against the DTLS server at addr (host:port) for
// d, each handshaking as psk(i) from a new socket, closing the session (close_notify) and
// starting over, and reports the handshakes per second.
func DTLSHandshakes(ctx context.Context, addr string, clients int, d time.Duration, psk func(i int) PSK) (HandshakeReport, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return HandshakeReport{}, fmt.Errorf("lwm2mtest: handshakes: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		ok, failed atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		first      string
	)
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := dialPSK(ctx, raddr, psk(i))
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
						return // the run ended during this handshake
					}
					failed.Add(1)
					mu.Lock()
					if first == "" {
						first = err.Error()
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				_ = c.Close()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	return HandshakeReport{Clients: clients, Elapsed: el, Handshakes: ok.Load(), Errors: failed.Load(),
		PerSec: float64(ok.Load()) / el.Seconds(), FirstError: first}, nil
}
