package transport

import (
	"net/netip"
	"time"
)

// Handshake limits of the DTLS link. With the stateless cookie (dtls_cookie.go) only a
// ClientHello bearing a valid cookie, from an address that has shown it receives, comes here.
// When pion answers ClientHellos itself (HelloVerifyPion, or a pion that cannot take over from
// a stateless cookie), it keeps the HelloVerifyRequest cookie in the state of the connection it
// answers, so a ClientHello from an address without a session costs a session slot (and pion's
// per-connection state) until its handshake ends or HandshakeTimeout passes, cookie round trip
// or not. What bounds the slots is: HandshakeRate per source address, MaxHandshakes and
// MaxSessions for everyone, and HandshakeTimeout for how long a slot stays taken.

// helloGuard decides whether a ClientHello may start a session. It is used under the link's
// mutex, by the demultiplexer.
type helloGuard struct {
	rate *sourceLimiter // nil: HandshakeRate off
	base time.Time      // origin of rate's clock
	lim  *limitCounters // the Endpoint's, once countLimits is called
}

func newHelloGuard(cfg Config, dc DTLSConfig) *helloGuard {
	return &helloGuard{
		rate: newSourceLimiter(dc.HandshakeRate, dc.HandshakeBurst, cfg.MaxSources, cfg.SourceExempt, cfg.TrustedProxies...),
		base: time.Now(),
		lim:  newLimitCounters(DTLS), // unregistered stand-ins until the Endpoint hands its own
	}
}

// countLimits implements limitCounting: refused ClientHellos count in the Endpoint's series.
func (l *dtlsLink) countLimits(c *limitCounters) { l.guard.lim = c }

// admitHello reports whether a ClientHello from from, an address without a session, may start
// one: within its source's HandshakeRate, MaxSessions and MaxHandshakes. Called with l.mu held.
func (l *dtlsLink) admitHello(from netip.AddrPort) bool {
	g := l.guard
	if g.rate != nil {
		if ok, _ := g.rate.allowFrom(from, int64(time.Since(g.base))); !ok {
			g.lim.dtlsHandshakeRate.Inc()
			return false
		}
	}
	switch {
	case len(l.byAddr) >= l.dc.MaxSessions:
		l.m.refused.Inc()
		g.lim.dtlsSessions.Inc()
		return false
	case l.handshaking >= l.dc.MaxHandshakes:
		l.m.refused.Inc()
		g.lim.dtlsHandshakes.Inc()
		return false
	}
	return true
}

// limitDefaults fills the handshake rate fields of c.
func (c DTLSConfig) limitDefaults() DTLSConfig {
	if c.HandshakeRate == 0 {
		c.HandshakeRate = DefaultDTLSConfig().HandshakeRate
	}
	if c.HandshakeBurst <= 0 {
		c.HandshakeBurst = int(max(2*c.HandshakeRate, 1))
	}
	return c
}
