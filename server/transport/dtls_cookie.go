package transport

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"
)

// Stateless HelloVerifyRequest (RFC 6347 §4.2.1).
//
// pion answers a ClientHello without a cookie itself, but only inside a connection the
// demultiplexer has already made for the source address: a flood of ClientHellos from spoofed
// addresses costs a session (pion's state, goroutines, buffers) per address until the
// handshake times out. The demultiplexer therefore answers such a ClientHello itself, before
// any per-peer state exists: the cookie is an HMAC, under a secret that rotates (the current
// and the previous one are accepted), of the client's address and port and of the parameters
// the client must repeat (version, random, session_id, cipher_suites, compression_methods).
// Only a ClientHello bearing a valid cookie creates a session, and pion, told to skip its own
// cookie round (WithInsecureSkipVerifyHello), answers it with its ServerHello.
//
// That needs one thing of pion: after a HelloVerifyRequest the client's ClientHello has
// message_seq 1, and the server's ServerHello must have the same (RFC 6347 §4.2.2). pion
// v3.1.15 in skip mode expects the ClientHello at message_seq 0 and answers at 0, and since
// message_seq is part of the Finished transcript no rewriting on the wire can bridge that.
// The change it takes is small (patch 4 of third_party/pion-dtls: the fragment buffer,
// flight0Parse and the send sequence follow the first ClientHello's message_seq). Whether the
// linked pion has it is probed once per link (pionFollowsClientHello); without it the link
// keeps pion's own, stateful cookie exchange, as before.
//
// The HelloVerifyRequest echoes the ClientHello's record sequence number and message_seq
// (RFC 6347 §4.2.1, as OpenSSL's DTLSv1_listen does); pion's epoch-0 records of the session
// that follows are numbered from the cookie-bearing ClientHello's record sequence number on,
// so a client's replay window does not drop the ServerHello as a copy of the
// HelloVerifyRequest.

// HelloVerify selects who answers a ClientHello without a valid cookie.
type HelloVerify int

const (
	// HelloVerifyAuto answers statelessly when the linked pion can take over from a
	// verified ClientHello, and leaves the cookie exchange to pion otherwise. The default.
	HelloVerifyAuto HelloVerify = iota
	// HelloVerifyStateless always answers statelessly; with a pion that cannot take over, no
	// handshake completes (for tests).
	HelloVerifyStateless
	// HelloVerifyPion leaves the cookie exchange to pion, which holds a session per source
	// address from the first ClientHello on.
	HelloVerifyPion
)

const (
	cookieSize     = 20               // bytes of HMAC-SHA256 kept; what pion's own cookies are
	cookieRotation = 30 * time.Second // a cookie is valid for 30 to 60 s
)

// Results of the stateless cookie check: the values of the result label of
// lwota_transport_dtls_hello_verify_total.
const (
	cookieSent      = "sent"      // a ClientHello without a cookie was answered with a HelloVerifyRequest
	cookieStale     = "stale"     // a forged or expired cookie: answered with a fresh HelloVerifyRequest
	cookieValid     = "valid"     // a valid cookie: the ClientHello may start a session
	cookieMalformed = "malformed" // not a ClientHello lwota can check statelessly (fragmented, truncated): dropped
)

// cookieJar makes and checks cookies. It is used by the demultiplexer's goroutine only (and
// tests), under its own mutex so nothing else is held while hashing.
type cookieJar struct {
	mu      sync.Mutex
	now     func() time.Time
	rotated time.Time
	cur     hash.Hash // HMAC-SHA256 under the current secret
	prev    hash.Hash // and the previous one
	m       *cookieMetrics
}

func newCookieJar(now func() time.Time, m *cookieMetrics) *cookieJar {
	j := &cookieJar{now: now, m: m}
	j.rotate()
	j.rotate()
	return j
}

// rotate makes a new current secret, keeping the current one as the previous. Called with
// j.mu held (or before j is shared).
func (j *cookieJar) rotate() {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	j.prev, j.cur = j.cur, hmac.New(sha256.New, secret)
	j.rotated = j.now()
}

// cookie writes the cookie of hello from from under h into dst.
func cookie(h hash.Hash, from netip.AddrPort, hello *clientHelloFields, dst *[sha256.Size]byte) {
	var a [18]byte
	ip := from.Addr().As16()
	copy(a[:16], ip[:])
	binary.BigEndian.PutUint16(a[16:], from.Port())
	h.Reset()
	h.Write(a[:])
	h.Write(hello.params)
	h.Sum(dst[:0])
}

// check classifies the ClientHello datagram p from from: cookieValid with the ClientHello's
// record sequence number (from which the session's epoch-0 records are numbered), or another
// result with the HelloVerifyRequest datagram to answer (nil for cookieMalformed: dropped).
func (j *cookieJar) check(p []byte, from netip.AddrPort) (result string, answer []byte, seqBase uint64) {
	hello, err := parseClientHello(p)
	if err != nil {
		j.m.count(cookieMalformed)
		return cookieMalformed, nil, 0
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.now().Sub(j.rotated) >= cookieRotation {
		j.rotate()
	}
	var mac [sha256.Size]byte
	if len(hello.cookie) == cookieSize {
		for _, h := range []hash.Hash{j.cur, j.prev} {
			cookie(h, from, &hello, &mac)
			if hmac.Equal(mac[:cookieSize], hello.cookie) {
				j.m.count(cookieValid)
				return cookieValid, nil, recordSeq48(hello.recordSeq)
			}
		}
	}
	result = cookieSent
	if len(hello.cookie) > 0 {
		result = cookieStale
	}
	cookie(j.cur, from, &hello, &mac)
	j.m.count(result)
	return result, helloVerifyRequest(hello, mac[:cookieSize]), 0
}

// clientHelloFields are the parts of a ClientHello the cookie covers or echoes.
type clientHelloFields struct {
	recordSeq  [6]byte // record sequence number, echoed in the HelloVerifyRequest
	messageSeq uint16  // handshake message_seq, echoed too
	params     []byte  // client_version, random, session_id, cipher_suites, compression_methods (with their length bytes)
	cookie     []byte
}

var errClientHello = errors.New("transport: dtls: not a ClientHello that can be checked statelessly")

// parseClientHello reads the first record of datagram p: an epoch-0 handshake record holding
// a whole (unfragmented) ClientHello (RFC 6347 §4.2.1, §4.2.2). A fragmented ClientHello cannot
// be checked without keeping state and is refused, as OpenSSL's DTLSv1_listen does. The
// returned slices alias p.
func parseClientHello(p []byte) (clientHelloFields, error) {
	var f clientHelloFields
	if len(p) < recordHeader+12 || p[0] != handshakeType || p[1] != dtlsMajor || p[3] != 0 || p[4] != 0 {
		return f, errClientHello
	}
	recLen := int(binary.BigEndian.Uint16(p[11:13]))
	if recordHeader+recLen > len(p) {
		return f, errClientHello
	}
	hs := p[recordHeader : recordHeader+recLen]
	if len(hs) < 12 || hs[0] != clientHello1 {
		return f, errClientHello
	}
	length := uint32(hs[1])<<16 | uint32(hs[2])<<8 | uint32(hs[3])
	fragOff := uint32(hs[6])<<16 | uint32(hs[7])<<8 | uint32(hs[8])
	fragLen := uint32(hs[9])<<16 | uint32(hs[10])<<8 | uint32(hs[11])
	if fragOff != 0 || fragLen != length || int(length) > len(hs)-12 {
		return f, errClientHello
	}
	copy(f.recordSeq[:], p[5:11])
	f.messageSeq = binary.BigEndian.Uint16(hs[4:6])
	body := hs[12 : 12+length]
	// client_version (2), random (32), session_id <0..32>
	i := 2 + 32
	if len(body) < i+1 {
		return f, errClientHello
	}
	sid := int(body[i])
	if sid > 32 || len(body) < i+1+sid+1 {
		return f, errClientHello
	}
	i += 1 + sid
	beforeCookie := i
	// cookie <0..2^8-1>
	cl := int(body[i])
	if len(body) < i+1+cl+2 {
		return f, errClientHello
	}
	f.cookie = body[i+1 : i+1+cl]
	i += 1 + cl
	afterCookie := i
	// cipher_suites <2..2^16-2>
	cs := int(binary.BigEndian.Uint16(body[i:]))
	if cs < 2 || cs%2 != 0 || len(body) < i+2+cs+1 {
		return f, errClientHello
	}
	i += 2 + cs
	// compression_methods <1..2^8-1>
	cm := int(body[i])
	if cm < 1 || len(body) < i+1+cm {
		return f, errClientHello
	}
	i += 1 + cm
	// The cookie covers everything but itself and the extensions.
	f.params = slices.Concat(body[:beforeCookie], body[afterCookie:i])
	return f, nil
}

// helloVerifyRequest builds the datagram answering hello: one epoch-0 record with the
// ClientHello's record sequence number, holding a HelloVerifyRequest with the ClientHello's
// message_seq, server_version DTLS 1.0 (RFC 6347 §4.2.1: whatever version will be negotiated)
// and the cookie.
func helloVerifyRequest(hello clientHelloFields, c []byte) []byte {
	body := 3 + len(c)
	hs := 12 + body
	b := make([]byte, 0, recordHeader+hs)
	b = append(b, handshakeType, dtlsMajor, dtlsMinor10, 0, 0)
	b = append(b, hello.recordSeq[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(hs))
	b = append(b, 3, 0, byte(body>>8), byte(body)) // hello_verify_request, length
	b = binary.BigEndian.AppendUint16(b, hello.messageSeq)
	b = append(b, 0, 0, 0, 0, byte(body>>8), byte(body)) // fragment_offset 0, fragment_length
	b = append(b, dtlsMajor, dtlsMinor10, byte(len(c)))
	return append(b, c...)
}

// recordSeq48 is a record sequence number as an integer.
func recordSeq48(s [6]byte) uint64 {
	return uint64(s[0])<<40 | uint64(s[1])<<32 | uint64(s[2])<<24 | uint64(s[3])<<16 | uint64(s[4])<<8 | uint64(s[5])
}

// shiftEpoch0Seq returns datagram p (pion's output) with the sequence number of every epoch-0
// record raised by base, copying p only when it holds one. pion numbers the records of a
// session from 0; after a stateless HelloVerifyRequest that echoed the client's sequence
// number, the client would drop a ServerHello with the same number as a replay (OpenSSL sets
// its write sequence the same way after DTLSv1_listen). Epoch-0 record headers are neither
// MAC-protected nor in the transcript.
func shiftEpoch0Seq(p []byte, base uint64) []byte {
	if base == 0 {
		return p
	}
	var out []byte
	for off := 0; off+recordHeader <= len(p); {
		r := p[off:]
		if r[0] == 25 { // tls12_cid: never epoch 0, and its header is longer; stop walking
			break
		}
		length := int(binary.BigEndian.Uint16(r[11:13]))
		if r[3] == 0 && r[4] == 0 {
			if out == nil {
				out = slices.Clone(p)
			}
			var s [8]byte
			copy(s[2:], r[5:11])
			seq := binary.BigEndian.Uint64(s[:]) + base
			binary.BigEndian.PutUint64(s[:], seq)
			copy(out[off+5:off+11], s[2:])
		}
		off += recordHeader + length
	}
	if out == nil {
		return p
	}
	return out
}

// cookieMetrics count the stateless cookie checks by result.
type cookieMetrics struct {
	byResult *prometheus.CounterVec
	results  map[string]prometheus.Counter
}

func newCookieMetrics(reg prometheus.Registerer) (*cookieMetrics, error) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lwota", Subsystem: "transport",
		Name:        "dtls_hello_verify_total",
		Help:        "ClientHellos checked statelessly by result: sent (no cookie: HelloVerifyRequest sent), stale (forged or expired cookie: a fresh one sent), valid (may start a session), malformed (dropped).",
		ConstLabels: prometheus.Labels{"network": string(DTLS)}}, []string{"result"})
	m := &cookieMetrics{byResult: v, results: map[string]prometheus.Counter{}}
	for _, r := range []string{cookieSent, cookieStale, cookieValid, cookieMalformed} {
		m.results[r] = v.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(v); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *cookieMetrics) count(result string) { m.results[result].Inc() }

// probeHelloVerify turns the stateless cookie on when the linked pion can take over from a
// verified ClientHello (HelloVerifyAuto). Until it has decided (well under a millisecond with
// such a pion; a few seconds without, as pion then waits for a message it never gets), pion
// answers ClientHellos itself, as it does when it cannot.
func (l *dtlsLink) probeHelloVerify() {
	defer l.wg.Done()
	defer close(l.probed)
	if pionFollowsClientHello(l.ctx) {
		l.cookies.Store(newCookieJar(time.Now, l.cookieM))
	} else if l.ctx.Err() == nil {
		l.log.Info("transport: dtls: the linked pion/dtls cannot take over from a stateless HelloVerifyRequest; pion answers ClientHellos in a session per address")
	}
}

// pionFollowsClientHello reports whether the linked pion, as a server skipping its own cookie
// exchange, answers a ClientHello with message_seq 1 with a ServerHello with message_seq 1
// (what a stateless HelloVerifyRequest needs; RFC 6347 §4.2.2). It runs one server flight over
// an in-memory socket: no network, a few hundred microseconds.
func pionFollowsClientHello(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A cookie-bearing ClientHello, message_seq 1, offering TLS_PSK_WITH_AES_128_CCM_8.
	body := []byte{dtlsMajor, dtlsMinor12}
	body = append(body, make([]byte, 32)...)    // random
	body = append(body, 0)                      // session_id
	body = append(body, 4, 1, 2, 3, 4)          // cookie
	body = append(body, 0, 2, 0xc0, 0xa8, 1, 0) // one cipher suite, null compression
	n := len(body)
	hs := append([]byte{clientHello1, 0, byte(n >> 8), byte(n), 0, 1, 0, 0, 0, 0, byte(n >> 8), byte(n)}, body...)
	rec := append([]byte{handshakeType, dtlsMajor, dtlsMinor12, 0, 0, 0, 0, 0, 0, 0, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)

	pc := &probeConn{in: rec, out: make(chan []byte, 4), closed: make(chan struct{})}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	conn, err := dtls.ServerWithOptions(pc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9},
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("probe"), nil }),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
		dtls.WithInsecureSkipVerifyHello(true),
		dtls.WithLoggerFactory(lf))
	if err != nil {
		return false
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.HandshakeContext(ctx) }()
	defer func() { cancel(); _ = conn.Close(); pc.Close(); <-done }()
	select {
	case b := <-pc.out:
		// The first record: a ServerHello (type 2) whose message_seq is 1.
		return len(b) >= recordHeader+12 && b[0] == handshakeType && b[recordHeader] == 2 &&
			binary.BigEndian.Uint16(b[recordHeader+4:]) == 1
	case <-ctx.Done():
		return false
	}
}

// probeConn is the in-memory socket of pionFollowsClientHello: it reads in once, then blocks.
type probeConn struct {
	in        []byte
	once      sync.Once
	out       chan []byte
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *probeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	var n int
	first := false
	c.once.Do(func() { n, first = copy(b, c.in), true })
	if first {
		return n, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, nil
	}
	<-c.closed
	return 0, nil, net.ErrClosed
}

func (c *probeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case c.out <- slices.Clone(b):
	default:
	}
	return len(b), nil
}

func (c *probeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *probeConn) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5684} }
func (c *probeConn) SetDeadline(time.Time) error      { return nil }
func (c *probeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *probeConn) SetWriteDeadline(time.Time) error { return nil }
