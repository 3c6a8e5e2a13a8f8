package lwm2mtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The raw UDP echo is the floor any CoAP exchange is compared with: clients sockets, each
// sending a 20-byte datagram to a plain UDP echo server on loopback and waiting for its 1 KiB
// answer (a Block2 request and its block, without CoAP). Server and clients are apart so that
// lwota bench pull can run the clients in a child process, as it runs its pull devices, and
// compare the two with the same process shape (cmd/lwota/bench_pull_clients.go).

// echoAnswer is the size of the echo server's answer: one 1 KiB block.
const echoAnswer = 1024

// EchoServer answers every datagram on a loopback UDP socket with 1 KiB, from one goroutine.
type EchoServer struct {
	conn *net.UDPConn
	done chan struct{}
}

// ListenEcho starts an EchoServer on a free loopback port; Close stops it.
func ListenEcho() (*EchoServer, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: echo: %w", err)
	}
	// The receive buffer lwota's transport asks for (transport.Config.ReadBuffer): with the
	// system's default, 1,000 clients overflowed it, and the echo then measured its 200 ms
	// timeouts rather than the round trip.
	_ = conn.SetReadBuffer(4 << 20)
	s := &EchoServer{conn: conn, done: make(chan struct{})}
	go s.serve()
	return s, nil
}

func (s *EchoServer) serve() {
	defer close(s.done)
	buf := make([]byte, 2048)
	resp := make([]byte, echoAnswer)
	for {
		_, addr, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = s.conn.WriteToUDPAddrPort(resp, addr)
	}
}

// Addr is the server's host:port.
func (s *EchoServer) Addr() string { return s.conn.LocalAddr().String() }

// Close stops the server and waits for its goroutine.
func (s *EchoServer) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// EchoConfig is one run of echo clients against an EchoServer.
type EchoConfig struct {
	Addr     string        // the EchoServer's host:port
	Clients  int           // concurrent clients, each on its own socket (default 16)
	Duration time.Duration // how long they run, from Started's return (default 10 s)
	// Started, when set, is called once the clients' sockets are open, before the first round
	// trip; Ended as they stop, before the sockets close. As PullConfig's.
	Started func()
	Ended   func()
}

// EchoLoad runs cfg's clients and returns round trips per second. A round trip lost (no
// answer within 200 ms) is sent again and not counted.
func EchoLoad(ctx context.Context, cfg EchoConfig) (float64, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 16
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return 0, fmt.Errorf("lwm2mtest: echo: %w", err)
	}
	if addr.Port == 0 {
		return 0, errors.New("lwm2mtest: echo: no server port")
	}
	conns := make([]*net.UDPConn, cfg.Clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		if conns[i], err = net.DialUDP("udp", nil, addr); err != nil {
			return 0, fmt.Errorf("lwm2mtest: echo: socket %d: %w", i, err)
		}
	}
	if cfg.Started != nil {
		cfg.Started()
	}
	// The run's time starts after Started, which may wait (a child process of lwota bench pull
	// waits there for its parent's go).
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	end, _ := ctx.Deadline()
	var (
		count atomic.Int64
		wg    sync.WaitGroup
	)
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			req := make([]byte, 20)
			buf := make([]byte, 2048)
			n := int64(0)
			for ctx.Err() == nil {
				_ = c.SetReadDeadline(earliest(time.Now().Add(200*time.Millisecond), end))
				if _, err := c.Write(req); err != nil {
					break
				}
				if _, err := c.Read(buf); err != nil {
					continue // lost, or the end: send again or stop
				}
				n++
			}
			count.Add(n)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if cfg.Ended != nil {
		cfg.Ended()
	}
	return float64(count.Load()) / elapsed.Seconds(), nil
}

// UDPEcho runs an EchoServer and clients echo clients against it in this process for d, and
// returns round trips per second.
func UDPEcho(ctx context.Context, clients int, d time.Duration) (float64, error) {
	srv, err := ListenEcho()
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	return EchoLoad(ctx, EchoConfig{Addr: srv.Addr(), Clients: clients, Duration: d})
}
