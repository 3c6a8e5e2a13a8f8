package lwm2mtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RegLoad is a minimal registration load: n devices, each on its own UDP socket, that send a
// Register (and then rounds of Updates) as hand-encoded CoAP datagrams and wait for the answer,
// nothing else. It costs the client a few µs per request where a full Device costs tens, so
// a server's registration throughput is measured rather than the simulator's. The devices
// answer no request from the server: run the server without its Object 3 read.
type RegLoad struct {
	conns []*net.UDPConn
	// server and locals are set by NewRegLoadFrom: device i holds no socket, it binds locals(i)
	// for each exchange and closes it after, so a fleet larger than the open-file limit fits.
	server *net.UDPAddr
	locals func(i int) netip.AddrPort
	eps    []string
	locs   []string // Location-Path of each registration, "/rd/x"
	// mids are the devices' message ids: a server answers a repeated (peer, message id) from
	// its cache, so ids are per device, never per worker.
	mids []uint16
	// Links is the Register payload; nil sends DefaultRegLoadLinks.
	Links []byte
	// KeepGoing makes Register and Update go on past a device that failed (they return how
	// many succeeded and the first error) instead of stopping at it.
	KeepGoing bool
	// Spread spreads the starts of each Update round evenly over this long (device i of n
	// starts at i/n of it), as a fleet whose devices keep their own lifetimes does, instead of
	// as fast as the workers go (0).
	Spread time.Duration

	lifetime int          // of the last Register, for re-registrations
	reregs   atomic.Int64 // Updates answered 4.04 that a Register replaced
}

// DefaultRegLoadLinks is the object list RegLoad's devices register with.
var DefaultRegLoadLinks = []byte(`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</4/0>,</5>;ver=1.1,</5/0>`)

// NewRegLoad opens n sockets towards server, named by naming (DefaultNaming when nil).
func NewRegLoad(server string, n int, naming func(int) string) (*RegLoad, error) {
	return NewRegLoadAt(server, netip.Addr{}, n, naming)
}

// NewRegLoadAt is NewRegLoad with sockets bound to the source address local (the kernel picks
// the ports; zero: any address). Loads run one after another from distinct loopback addresses
// never reuse a source (address, port) a server still holds for an earlier device.
func NewRegLoadAt(server string, local netip.Addr, n int, naming func(int) string) (*RegLoad, error) {
	if naming == nil {
		naming = DefaultNaming
	}
	addr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: regload: %w", err)
	}
	var laddr *net.UDPAddr
	if local.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	l := &RegLoad{conns: make([]*net.UDPConn, n), eps: make([]string, n), locs: make([]string, n), mids: make([]uint16, n)}
	for i := range n {
		if l.conns[i], err = net.DialUDP("udp", laddr, addr); err != nil {
			l.Close()
			return nil, fmt.Errorf("lwm2mtest: regload: socket %d: %w", i, err)
		}
		l.eps[i] = naming(i)
	}
	return l, nil
}

// NewRegLoadFrom prepares n devices towards server that keep no socket open between exchanges:
// device i sends every request from locals(i) (a fixed source address and port, so the server
// sees one peer per device), binding it for the exchange only. With locals spread over several
// loopback addresses (127.0.0.2, 127.0.0.3, ...) this emulates a fleet of hundreds of thousands
// of devices from one process, whatever its open-file limit. naming is DefaultNaming when nil.
func NewRegLoadFrom(server string, n int, naming func(int) string, locals func(i int) netip.AddrPort) (*RegLoad, error) {
	if naming == nil {
		naming = DefaultNaming
	}
	addr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: regload: %w", err)
	}
	l := &RegLoad{server: addr, locals: locals, conns: make([]*net.UDPConn, n), eps: make([]string, n), locs: make([]string, n), mids: make([]uint16, n)}
	for i := range n {
		l.eps[i] = naming(i)
	}
	return l, nil
}

// SpreadLocals returns a locals function for NewRegLoadFrom: device i sends from address
// first+i/perAddr (first, first.Next(), ...) and port basePort+i%perAddr.
func SpreadLocals(first netip.Addr, perAddr int, basePort uint16) func(int) netip.AddrPort {
	return func(i int) netip.AddrPort {
		a := first
		for range i / perAddr {
			a = a.Next()
		}
		return netip.AddrPortFrom(a, basePort+uint16(i%perAddr))
	}
}

// conn returns device i's socket and what to call when the exchange is over.
func (l *RegLoad) conn(i int) (*net.UDPConn, func(), error) {
	if l.locals == nil {
		return l.conns[i], func() {}, nil
	}
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(l.locals(i)), l.server)
	if err != nil {
		return nil, nil, fmt.Errorf("socket of %s from %s: %w", l.eps[i], l.locals(i), err)
	}
	return c, func() { c.Close() }, nil
}

// Len is the number of devices.
func (l *RegLoad) Len() int { return len(l.eps) }

// Close closes the sockets (no De-register).
func (l *RegLoad) Close() {
	for _, c := range l.conns {
		if c != nil {
			c.Close()
		}
	}
}

// Register registers every device with at most concurrency in flight, lifetime lt seconds.
func (l *RegLoad) Register(ctx context.Context, concurrency int, lt int) (int, error) {
	return l.RegisterProgress(ctx, concurrency, lt, 0, nil)
}

// RegisterProgress is Register calling progress with the number registered so far after every
// `every` registrations (every <= 0: never).
func (l *RegLoad) RegisterProgress(ctx context.Context, concurrency int, lt int, every int, progress func(done int)) (int, error) {
	l.lifetime = lt
	return l.each(ctx, concurrency, 1, 0, every, progress, func(i int, x *exchange) error {
		c, release, err := l.conn(i)
		if err != nil {
			return err
		}
		defer release()
		return l.register(ctx, i, x, c)
	})
}

// register sends device i's Register over c and keeps its location.
func (l *RegLoad) register(ctx context.Context, i int, x *exchange, c *net.UDPConn) error {
	links := l.Links
	if links == nil {
		links = DefaultRegLoadLinks
	}
	q := []string{"ep=" + l.eps[i], "lt=" + strconv.Itoa(l.lifetime), "lwm2m=1.1", "b=U"}
	l.mids[i]++
	loc, err := x.do(ctx, c, l.mids[i], []string{"rd"}, q, links, 0x41) // 2.01
	if err != nil {
		return fmt.Errorf("register %s: %w", l.eps[i], err)
	}
	l.locs[i] = loc
	return nil
}

// Reregistered is how many Updates were answered 4.04 Not Found (the server forgot the
// registration: restarted without it, or its lifetime ran out) and replaced by a Register, as a
// real client does (LwM2M 1.1 core §6.2.2): since the RegLoad was made, all rounds.
func (l *RegLoad) Reregistered() int { return int(l.reregs.Load()) }

// Update sends rounds registration Updates (no parameters: the lifetime restarts) from every
// registered device, with at most concurrency in flight. A round ends before the next starts:
// with fewer devices than twice the workers, a device's next Update could otherwise start while
// its last is in flight (one message id counter, one source port per device).
func (l *RegLoad) Update(ctx context.Context, concurrency, rounds int) (int, error) {
	total := 0
	var first error
	for range rounds {
		n, err := l.updateRound(ctx, concurrency)
		total += n
		if err != nil && first == nil {
			first = err
		}
		if err != nil && (!l.KeepGoing || ctx.Err() != nil) {
			break
		}
	}
	return total, first
}

func (l *RegLoad) updateRound(ctx context.Context, concurrency int) (int, error) {
	return l.each(ctx, concurrency, 1, l.Spread, 0, nil, func(i int, x *exchange) error {
		if l.locs[i] == "" {
			return fmt.Errorf("update %s: not registered", l.eps[i])
		}
		l.mids[i]++
		c, release, err := l.conn(i)
		if err != nil {
			return err
		}
		defer release()
		_, err = x.do(ctx, c, l.mids[i], splitPath(l.locs[i]), nil, nil, 0x44) // 2.04
		var ce *codeError
		if errors.As(err, &ce) && ce.code == 0x84 { // 4.04: the server does not know it any more
			if err := l.register(ctx, i, x, c); err != nil {
				return fmt.Errorf("update %s answered 4.04, then %w", l.eps[i], err)
			}
			l.reregs.Add(1)
			return nil
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", l.eps[i], err)
		}
		return nil
	})
}

// each runs op for every device, rounds times, on concurrency workers, the starts of a round
// spread over spread (0: at once); it stops at the first error.
func (l *RegLoad) each(ctx context.Context, concurrency, rounds int, spread time.Duration, every int, progress func(int), op func(i int, x *exchange) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		done     atomic.Int64
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for w := range max(min(concurrency, len(l.conns)), 1) { // more workers than devices would share a device
		wg.Go(func() {
			x := &exchange{token: uint32(w) << 24, buf: make([]byte, 1500)}
			for i := range next {
				if err := op(i, x); err != nil {
					once.Do(func() {
						firstErr = err
						if !l.KeepGoing {
							cancel()
						}
					})
					continue
				}
				if n := done.Add(1); every > 0 && progress != nil && n%int64(every) == 0 {
					progress(int(n))
				}
			}
		})
	}
	pace := time.NewTimer(0)
	defer pace.Stop()
feed:
	for range rounds {
		begin := time.Now()
		for i := range l.conns {
			if spread > 0 {
				// Due times from the round's start: a late start does not shift the later ones.
				pace.Reset(time.Until(begin.Add(spread * time.Duration(i) / time.Duration(len(l.conns)))))
				select {
				case <-pace.C:
				case <-ctx.Done():
					break feed
				}
			}
			select {
			case next <- i:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return int(done.Load()), firstErr
}

func splitPath(p string) []string {
	var out []string
	for len(p) > 0 {
		if p[0] == '/' {
			p = p[1:]
			continue
		}
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		p = p[i:]
	}
	return out
}

// exchange is one worker's request state: the request in flight and a receive buffer. A
// device is used by one worker at a time (rounds are fed device after device, and a round's
// devices are all taken before the next round's first).
type exchange struct {
	mid   uint16
	token uint32
	buf   []byte
	req   []byte
}

// errRegLoadCode is a response with another code than the one expected (a *codeError).
var errRegLoadCode = errors.New("unexpected response code")

// codeError is a response with code instead of the one expected.
type codeError struct{ code byte }

func (e *codeError) Error() string {
	return fmt.Sprintf("%v: %d.%02d", errRegLoadCode, e.code>>5, e.code&0x1f)
}

func (e *codeError) Is(target error) bool { return target == errRegLoadCode }

// do sends a confirmable POST and waits for its piggybacked (or separate) response, sending
// again after 2, 4 and 8 s (RFC 7252's ACK_TIMEOUT, simplified). It returns the Location-Path.
func (x *exchange) do(ctx context.Context, c *net.UDPConn, mid uint16, path, query []string, payload []byte, want byte) (string, error) {
	x.mid = mid
	x.token++
	x.req = encodePost(x.req[:0], x.mid, x.token, path, query, payload)
	wait := 2 * time.Second
	for attempt := 0; attempt < 4; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if _, err := c.Write(x.req); err != nil {
			return "", err
		}
		deadline := time.Now().Add(wait)
		wait *= 2
		for {
			_ = c.SetReadDeadline(deadline)
			n, err := c.Read(x.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // send again
				}
				return "", err
			}
			code, loc, ok := x.match(c, x.buf[:n])
			if !ok {
				continue
			}
			if code != want {
				return "", &codeError{code: code}
			}
			return loc, nil
		}
	}
	return "", errors.New("no answer after 4 transmissions")
}

// match reports whether m answers the request in flight: an ACK with our message id carrying a
// response, or a separate CON/NON response with our token (ACKed here).
func (x *exchange) match(c *net.UDPConn, m []byte) (code byte, loc string, ok bool) {
	if len(m) < 4 || m[0]>>6 != 1 {
		return 0, "", false
	}
	typ, tkl := (m[0]>>4)&3, int(m[0]&0x0f)
	code = m[1]
	mid := binary.BigEndian.Uint16(m[2:4])
	if len(m) < 4+tkl {
		return 0, "", false
	}
	var tok [4]byte
	binary.BigEndian.PutUint32(tok[:], x.token)
	sameToken := tkl == 4 && string(m[4:8]) == string(tok[:])
	switch {
	case typ == 2 && mid == x.mid && code == 0: // empty ACK: the response comes separately
		return 0, "", false
	case typ == 2 && mid == x.mid && sameToken:
	case (typ == 0 || typ == 1) && sameToken && code>>5 >= 2:
		if typ == 0 {
			ack := []byte{0x60, 0, m[2], m[3]}
			_, _ = c.Write(ack)
		}
	default:
		return 0, "", false
	}
	return code, locationPath(m[4+tkl:]), true
}

// locationPath reads the Location-Path options (8) of a message's options and payload.
func locationPath(b []byte) string {
	var loc []byte
	num := 0
	for len(b) > 0 && b[0] != 0xff {
		delta, length := int(b[0]>>4), int(b[0]&0x0f)
		b = b[1:]
		var ok bool
		if delta, b, ok = extended(delta, b); !ok {
			return string(loc)
		}
		if length, b, ok = extended(length, b); !ok || len(b) < length {
			return string(loc)
		}
		num += delta
		if num == 8 {
			loc = append(append(loc, '/'), b[:length]...)
		}
		b = b[length:]
	}
	return string(loc)
}

func extended(v int, b []byte) (int, []byte, bool) {
	switch v {
	case 13:
		if len(b) < 1 {
			return 0, b, false
		}
		return int(b[0]) + 13, b[1:], true
	case 14:
		if len(b) < 2 {
			return 0, b, false
		}
		return int(binary.BigEndian.Uint16(b)) + 269, b[2:], true
	case 15:
		return 0, b, false
	}
	return v, b, true
}

// encodePost appends a confirmable POST with a 4-byte token, Uri-Path, Content-Format 40 when
// there is a payload, and Uri-Query options.
func encodePost(b []byte, mid uint16, token uint32, path, query []string, payload []byte) []byte {
	b = append(b, 0x44, 0x02, byte(mid>>8), byte(mid)) // CON, TKL 4, POST
	b = binary.BigEndian.AppendUint32(b, token)
	last := 0
	opt := func(num int, v []byte) {
		b = appendOption(b, num-last, len(v))
		b = append(b, v...)
		last = num
	}
	for _, p := range path {
		opt(11, []byte(p))
	}
	if len(payload) > 0 {
		opt(12, []byte{40})
	}
	for _, q := range query {
		opt(15, []byte(q))
	}
	if len(payload) > 0 {
		b = append(b, 0xff)
		b = append(b, payload...)
	}
	return b
}

func appendOption(b []byte, delta, length int) []byte {
	nib := func(v int) (byte, []byte) {
		switch {
		case v < 13:
			return byte(v), nil
		case v < 269:
			return 13, []byte{byte(v - 13)}
		default:
			return 14, []byte{byte((v - 269) >> 8), byte(v - 269)}
		}
	}
	d, dx := nib(delta)
	l, lx := nib(length)
	b = append(b, d<<4|l)
	b = append(b, dx...)
	return append(b, lx...)
}
