package transport

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// Cluster side of the DTLS link: connection ids that name the node that issued them, and the
// inter-node relay that carries a record reaching the wrong node to its owner and the owner's
// answers back (README.md, "Connection IDs in a cluster").

// NodeRelays names the inter-node relay address of each node of a cluster. RelayAddr is asked
// for every datagram that is forwarded, on the goroutine reading the DTLS socket: it must answer
// from memory (a copy of the node table), never from a query.
type NodeRelays interface {
	RelayAddr(node uint16) (netip.AddrPort, bool)
}

// LookupRelays is a NodeRelays over a lookup of a node's forward address as "IP:port" (the
// cluster's node table: cluster.Node.Lookup); a node with no address, or one that does not
// parse, has no relay.
type LookupRelays func(node uint16) (forwardAddr string, ok bool)

// RelayAddr parses the forward address of node.
func (f LookupRelays) RelayAddr(node uint16) (netip.AddrPort, bool) {
	s, ok := f(node)
	if !ok || s == "" {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().IsUnspecified() || ap.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return ap, true
}

// StaticRelays is a NodeRelays over a fixed map: tests, and clusters whose nodes are known up
// front.
type StaticRelays map[uint16]netip.AddrPort

// RelayAddr returns the relay address of node.
func (s StaticRelays) RelayAddr(node uint16) (netip.AddrPort, bool) {
	a, ok := s[node]
	return a, ok
}

// NodeConfig makes a DTLS Endpoint one node of a cluster. The zero value is a single node:
// random connection ids and no relay.
type NodeConfig struct {
	// ID names this node (1..65535) in the first two bytes of every connection id it issues;
	// 0: a single node. Non-zero needs ConnectionID, Relay, Relays and Key.
	ID uint16
	// Relay is this node's inter-node relay socket (UDP); the Endpoint owns it from NewDTLS on.
	Relay net.PacketConn
	// Relays finds the relay address of the node a connection id names.
	Relays NodeRelays
	// Key authenticates relay envelopes (HMAC-SHA256), the same on every node: RelayKey of
	// the cluster key. At least 32 bytes.
	Key []byte
	// RelayQueue bounds the envelopes waiting to be sent; beyond, dropped and counted. Default
	// 1024.
	RelayQueue int
	// MaxRecord bounds the datagram one envelope carries; a larger one is dropped and counted.
	// Default 4096.
	MaxRecord int
}

// RelayKey derives the relay envelope key from the cluster key (HKDF-SHA256), so the key that
// seals the keyring never authenticates datagrams itself.
func RelayKey(clusterKey []byte) ([]byte, error) {
	if len(clusterKey) < 32 {
		return nil, errors.New("transport: relay key: cluster key shorter than 32 bytes")
	}
	return hkdf.Key(sha256.New, clusterKey, nil, "lwota dtls relay v1", 32)
}

func (c NodeConfig) withDefaults(connectionID bool) (NodeConfig, error) {
	if c.ID == 0 {
		return NodeConfig{}, nil // a single node: nothing of the rest is used
	}
	switch {
	case !connectionID:
		return c, errors.New("transport: dtls node id without connection ids")
	case c.Relay == nil:
		return c, errors.New("transport: dtls node id without a relay socket")
	case c.Relays == nil:
		return c, errors.New("transport: dtls node id without relay addresses")
	case len(c.Key) < 32:
		return c, errors.New("transport: dtls relay key shorter than 32 bytes")
	}
	if c.RelayQueue <= 0 {
		c.RelayQueue = 1024
	}
	if c.MaxRecord <= 0 {
		c.MaxRecord = 4096
	}
	return c, nil
}

// newCID returns a connection id of cidSize bytes: the node id (big endian) then random bytes
// on a node of a cluster, all random on a single node.
func (l *dtlsLink) newCID() []byte {
	cid := make([]byte, cidSize)
	_, _ = rand.Read(cid)
	if id := l.dc.Node.ID; id != 0 {
		binary.BigEndian.PutUint16(cid, id)
	}
	return cid
}

// cidNode returns the node a tls12_cid record's connection id names.
func cidNode(p []byte) (uint16, bool) {
	if len(p) < 13+cidSize || p[0] != 25 { // tls12_cid record (RFC 9146 §4); the id follows the sequence number
		return 0, false
	}
	return binary.BigEndian.Uint16(p[11:13]), true
}

// Relay envelope: one datagram between the relay sockets of two nodes.
//
//	"LWR" version(1)=1 kind(1) sender-node(2) family(1)=4|6 source-address(4|16) source-port(2)
//	datagram(1..MaxRecord) hmac-sha256(first 16 bytes, over all that precedes it)
//
// kind forward: the sender received datagram from source (the address it saw: the balancer's)
// and the connection id names the receiver. kind back: the sender, owner of the session, asks
// the receiver to send datagram to source from its DTLS socket.
const (
	relayMagic     = "LWR"
	relayVersion   = 1
	relayForward   = 1
	relayBack      = 2
	relayMACSize   = 16
	relayHeaderMin = 3 + 1 + 1 + 2 + 1 + 4 + 2
)

var (
	errRelayMalformed = errors.New("transport: relay envelope malformed")
	errRelayMAC       = errors.New("transport: relay envelope not authenticated")
)

type relayEnvelope struct {
	kind   byte
	sender uint16
	source netip.AddrPort
	data   []byte
}

func relayMAC(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(nil)[:relayMACSize]
}

// appendRelayEnvelope appends the authenticated encoding of e to b.
func appendRelayEnvelope(b []byte, key []byte, e relayEnvelope) []byte {
	start := len(b)
	b = append(b, relayMagic...)
	b = append(b, relayVersion, e.kind)
	b = binary.BigEndian.AppendUint16(b, e.sender)
	a := e.source.Addr().Unmap()
	if a.Is4() {
		b = append(b, 4)
	} else {
		b = append(b, 6)
	}
	b = append(b, a.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, e.source.Port())
	b = append(b, e.data...)
	return append(b, relayMAC(key, b[start:])...)
}

// decodeRelayEnvelope checks and decodes an envelope of at most maxRecord bytes of datagram.
// data aliases b.
func decodeRelayEnvelope(b []byte, key []byte, maxRecord int) (relayEnvelope, error) {
	var e relayEnvelope
	if len(b) < relayHeaderMin+1+relayMACSize || string(b[:3]) != relayMagic || b[3] != relayVersion {
		return e, errRelayMalformed
	}
	body, mac := b[:len(b)-relayMACSize], b[len(b)-relayMACSize:]
	if !hmac.Equal(mac, relayMAC(key, body)) {
		return e, errRelayMAC
	}
	e.kind, e.sender = body[4], binary.BigEndian.Uint16(body[5:7])
	if (e.kind != relayForward && e.kind != relayBack) || e.sender == 0 {
		return e, errRelayMalformed
	}
	var n int
	switch body[7] {
	case 4:
		n = 4
	case 6:
		n = 16
	default:
		return e, errRelayMalformed
	}
	rest := body[8:]
	if len(rest) < n+2+1 {
		return e, errRelayMalformed
	}
	addr, _ := netip.AddrFromSlice(rest[:n])
	if addr.Is4In6() || !addr.IsValid() {
		return e, errRelayMalformed // one encoding per address: 4-in-6 travels as family 4
	}
	e.source = netip.AddrPortFrom(addr, binary.BigEndian.Uint16(rest[n:n+2]))
	e.data = rest[n+2:]
	if len(e.data) > maxRecord {
		return e, errRelayMalformed
	}
	return e, nil
}

// A session whose device now reaches the cluster through another node has a virtual peer
// address, "via node N, from source S": pion moves the session there when a relayed record
// authenticates (RFC 9146 §6), the engine and the registration see it as the device's address,
// and writes to it go back through node N's relay. It lies in the discard-only prefix 100::/64
// (RFC 6666), so it never names a real host: bytes 8-9 the node, 10-11 zero, 12-15 the IPv4
// source, and the port is the source port. Only IPv4 sources fit; a node that sees the
// balancer over IPv6 does not forward (dropped, reason unsupported_source).
var virtualPrefix = [8]byte{0x01, 0x00}

func virtualAddr(node uint16, source netip.AddrPort) (netip.AddrPort, bool) {
	a := source.Addr().Unmap()
	if !a.Is4() || node == 0 {
		return netip.AddrPort{}, false
	}
	var b [16]byte
	copy(b[:8], virtualPrefix[:])
	binary.BigEndian.PutUint16(b[8:10], node)
	v4 := a.As4()
	copy(b[12:], v4[:])
	return netip.AddrPortFrom(netip.AddrFrom16(b), source.Port()), true
}

func fromVirtual(v netip.AddrPort) (node uint16, source netip.AddrPort, ok bool) {
	a := v.Addr()
	if !a.Is6() || a.Is4In6() {
		return 0, netip.AddrPort{}, false
	}
	b := a.As16()
	if [8]byte(b[:8]) != virtualPrefix || b[10] != 0 || b[11] != 0 {
		return 0, netip.AddrPort{}, false
	}
	node = binary.BigEndian.Uint16(b[8:10])
	if node == 0 {
		return 0, netip.AddrPort{}, false
	}
	return node, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:])), v.Port()), true
}

// Reasons a relayed record is dropped.
const (
	relayDropUnknownNode       = "unknown_node"       // the connection id names a node without a relay address
	relayDropUnsupportedSource = "unsupported_source" // an IPv6 source, which a virtual address cannot carry
	relayDropOversize          = "oversize"           // a datagram over MaxRecord
	relayDropQueueFull         = "queue_full"         // RelayQueue envelopes already waiting
	relayDropSendFailed        = "send_failed"        // the relay socket refused the envelope
	relayDropMalformed         = "malformed"          // not an envelope
	relayDropBadMAC            = "bad_mac"            // not authenticated by the cluster's relay key
	relayDropNotOwner          = "not_owner"          // forwarded here, but the connection id names another node
	relayDropUnknownCID        = "unknown_cid"        // forwarded here, but no session has that connection id
)

// dtlsRelay forwards records whose connection id names another node, and serves this node's
// relay socket. One goroutine sends the queued envelopes, one reads the relay socket.
type dtlsRelay struct {
	l   *dtlsLink
	cfg NodeConfig
	out chan relayJob
	m   *relayMetrics
}

type relayJob struct {
	to netip.AddrPort
	b  []byte
}

type relayMetrics struct {
	out, in, back prometheus.Counter
	dropped       *prometheus.CounterVec
}

func newRelayMetrics(reg prometheus.Registerer) (*relayMetrics, error) {
	fwd := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lwota", Subsystem: "cluster", Name: "forwarded_records_total",
		Help: "DTLS datagrams relayed between nodes: out (to the owner of their connection id), in (from another node into a session here), back (sent to a device on the owner's behalf)."},
		[]string{"direction"})
	m := &relayMetrics{
		out: fwd.WithLabelValues("out"), in: fwd.WithLabelValues("in"), back: fwd.WithLabelValues("back"),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lwota", Subsystem: "cluster", Name: "forwarded_records_dropped_total",
			Help: "DTLS datagrams the inter-node relay dropped, by reason."}, []string{"reason"}),
	}
	for _, r := range []string{relayDropUnknownNode, relayDropUnsupportedSource, relayDropOversize, relayDropQueueFull,
		relayDropSendFailed, relayDropMalformed, relayDropBadMAC, relayDropNotOwner, relayDropUnknownCID} {
		m.dropped.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{fwd, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// newDTLSRelay returns the relay of l, nil on a single node.
func newDTLSRelay(l *dtlsLink, reg prometheus.Registerer) (*dtlsRelay, error) {
	if l.dc.Node.ID == 0 {
		return nil, nil
	}
	m, err := newRelayMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("transport: relay metrics: %w", err)
	}
	return &dtlsRelay{l: l, cfg: l.dc.Node, out: make(chan relayJob, l.dc.Node.RelayQueue), m: m}, nil
}

// start runs the sender and the reader; they end with the link's context and the relay socket.
func (r *dtlsRelay) start() {
	r.l.wg.Add(2)
	go r.send()
	go r.read()
}

// close closes the relay socket, ending read.
func (r *dtlsRelay) close() { _ = r.cfg.Relay.Close() }

// forward takes a datagram from the DTLS socket whose connection id names another node and
// queues it for that node; it reports whether it took the datagram (forwarded or dropped).
func (r *dtlsRelay) forward(p []byte, from netip.AddrPort) bool {
	node, ok := cidNode(p)
	if !ok || node == r.cfg.ID || node == 0 {
		return false
	}
	to, ok := r.cfg.Relays.RelayAddr(node)
	switch {
	case !ok:
		r.drop(relayDropUnknownNode)
	case !from.Addr().Unmap().Is4():
		r.drop(relayDropUnsupportedSource)
	case len(p) > r.cfg.MaxRecord:
		r.drop(relayDropOversize)
	default:
		r.enqueue(to, relayEnvelope{kind: relayForward, sender: r.cfg.ID, source: from, data: p})
	}
	return true
}

// writeBack sends a record pion writes to a virtual address through the node that address
// names; it reports whether to was virtual.
func (r *dtlsRelay) writeBack(p []byte, to netip.AddrPort) bool {
	node, source, ok := fromVirtual(to)
	if !ok {
		return false
	}
	relay, ok := r.cfg.Relays.RelayAddr(node)
	switch {
	case !ok:
		r.drop(relayDropUnknownNode)
	case len(p) > r.cfg.MaxRecord:
		r.drop(relayDropOversize)
	default:
		r.enqueue(relay, relayEnvelope{kind: relayBack, sender: r.cfg.ID, source: source, data: p})
	}
	return true
}

func (r *dtlsRelay) enqueue(to netip.AddrPort, e relayEnvelope) {
	b := appendRelayEnvelope(make([]byte, 0, relayHeaderMin+12+len(e.data)+relayMACSize), r.cfg.Key, e)
	select {
	case r.out <- relayJob{to: to, b: b}:
		if e.kind == relayForward {
			r.m.out.Inc()
		}
	default:
		r.drop(relayDropQueueFull)
	}
}

func (r *dtlsRelay) drop(reason string) { r.m.dropped.WithLabelValues(reason).Inc() }

func (r *dtlsRelay) send() {
	defer r.l.wg.Done()
	for {
		select {
		case <-r.l.ctx.Done():
			return
		case j := <-r.out:
			if _, err := r.cfg.Relay.WriteTo(j.b, net.UDPAddrFromAddrPort(j.to)); err != nil {
				r.drop(relayDropSendFailed)
			}
		}
	}
}

func (r *dtlsRelay) read() {
	defer r.l.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, _, err := r.cfg.Relay.ReadFrom(buf)
		if err != nil {
			if r.l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error (ICMP unreachable from a node that went away)
		}
		r.receive(buf[:n])
	}
}

// receive handles one envelope from another node's relay.
func (r *dtlsRelay) receive(b []byte) {
	e, err := decodeRelayEnvelope(b, r.cfg.Key, r.cfg.MaxRecord)
	switch {
	case errors.Is(err, errRelayMAC):
		r.drop(relayDropBadMAC)
		return
	case err != nil:
		r.drop(relayDropMalformed)
		return
	}
	switch e.kind {
	case relayBack: // to a device, from our own socket: the balancer's session with it is ours
		if _, err := r.l.pc.WriteTo(e.data, net.UDPAddrFromAddrPort(e.source)); err != nil {
			r.drop(relayDropSendFailed)
			return
		}
		r.m.back.Inc()
	case relayForward:
		node, ok := cidNode(e.data)
		if !ok || node != r.cfg.ID {
			r.drop(relayDropNotOwner)
			return
		}
		from, ok := virtualAddr(e.sender, e.source)
		if !ok {
			r.drop(relayDropUnsupportedSource)
			return
		}
		if !r.l.hasCID(e.data[11 : 11+cidSize]) {
			r.drop(relayDropUnknownCID)
			return
		}
		r.m.in.Inc()
		r.l.dispatch(e.data, from) // copies what it keeps
	}
}

// hasCID reports a session with connection id cid.
func (l *dtlsLink) hasCID(cid []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byCID[string(cid)] != nil
}
