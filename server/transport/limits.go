package transport

import (
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// The limits the transport enforces on what peers send, by their name in the limit label of
// lwota_transport_limit_exceeded_total. The README's table says what the peer gets for each.
const (
	limitDatagramSize            = "datagram_size"              // Config.MaxMessageSize
	limitSourceRate              = "source_rate"                // Config.SourceRate
	limitBodySize                = "body_size"                  // Config.MaxBodySize (Block1)
	limitBlockTransfers          = "block_transfers"            // Config.MaxPendingBlock1
	limitBlockTransfersPerDevice = "block_transfers_per_device" // Config.MaxBlock1PerPeer
	limitBlockTransfersPerIP     = "block_transfers_per_ip"     // Config.MaxBlock1PerIP
	limitBlockBytes              = "block_bytes"                // Config.MaxBlock1Bytes
	limitDTLSSessions            = "dtls_sessions"              // DTLSConfig.MaxSessions
	limitDTLSHandshakes          = "dtls_handshakes"            // DTLSConfig.MaxHandshakes
	limitDTLSHandshakeRate       = "dtls_handshake_rate"        // DTLSConfig.HandshakeRate
)

// limitCounters count refusals by limit. They exist without a Registerer too.
type limitCounters struct {
	datagramSize, sourceRate, bodySize              prometheus.Counter
	blockTransfers, blockPerDevice, blockBytes      prometheus.Counter
	blockPerIP                                      prometheus.Counter
	dtlsSessions, dtlsHandshakes, dtlsHandshakeRate prometheus.Counter
	vec                                             *prometheus.CounterVec
}

func newLimitCounters(network Network) *limitCounters {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "lwota", Subsystem: "transport", Name: "limit_exceeded_total",
		Help:        "Datagrams, block-wise transfers and DTLS handshakes refused because a peer went past a limit, by limit.",
		ConstLabels: prometheus.Labels{"network": string(network)},
	}, []string{"limit"})
	c := &limitCounters{
		datagramSize:   vec.WithLabelValues(limitDatagramSize),
		sourceRate:     vec.WithLabelValues(limitSourceRate),
		bodySize:       vec.WithLabelValues(limitBodySize),
		blockTransfers: vec.WithLabelValues(limitBlockTransfers),
		blockPerDevice: vec.WithLabelValues(limitBlockTransfersPerDevice),
		blockPerIP:     vec.WithLabelValues(limitBlockTransfersPerIP),
		blockBytes:     vec.WithLabelValues(limitBlockBytes),
		vec:            vec,
	}
	if network == DTLS { // only a DTLS Endpoint has these series
		c.dtlsSessions = vec.WithLabelValues(limitDTLSSessions)
		c.dtlsHandshakes = vec.WithLabelValues(limitDTLSHandshakes)
		c.dtlsHandshakeRate = vec.WithLabelValues(limitDTLSHandshakeRate)
	} else {
		c.dtlsSessions = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"}) // never registered nor counted
		c.dtlsHandshakes, c.dtlsHandshakeRate = c.dtlsSessions, c.dtlsSessions
	}
	return c
}

// Why a datagram is answered with an error instead of being handled (packet.refuse).
const (
	refuseNone     uint8 = iota
	refuseRate           // SourceRate: 5.03 with Max-Age
	refuseOversize       // MaxMessageSize: 4.13 asking for Block1
)

// admit applies the source rate limit and the datagram size limit to a datagram of n bytes from
// from, as read. It reports whether to queue it and, if so, whether the worker must refuse it
// (refuse, maxAge) rather than handle it; n is then cut to what the worker may decode.
func (e *Endpoint) admit(n int, from netip.AddrPort) (queue bool, refuse uint8, maxAge uint32, keep int) {
	if e.sources != nil {
		if ok, answer := e.sources.allowFrom(from, e.now()); !ok {
			e.m.limits.sourceRate.Inc()
			if !answer {
				return false, 0, 0, 0
			}
			refuse, maxAge = refuseRate, e.sources.retryAfterFrom(from)
		}
	}
	if n > e.cfg.MaxMessageSize {
		e.m.dropOversize.Inc()
		if refuse == 0 {
			e.m.limits.datagramSize.Inc()
			refuse = refuseOversize
		}
		n = e.cfg.MaxMessageSize // the head of the datagram: enough to answer its request
	}
	return true, refuse, maxAge, n
}

// refuse answers the request in data, if it is one, with the error of a limit it went past:
// 5.03 Service Unavailable with Max-Age for the source rate, 4.13 Request Entity Too Large for
// an oversize datagram, with Block1 naming the block size lwota takes and Size1 the largest
// body (RFC 7959 §2.9.3), so a client can send the body in blocks. Anything else (responses,
// empty messages, heads that do not decode) is dropped.
func (e *Endpoint) refuse(data []byte, ap netip.AddrPort, why uint8, maxAge uint32) {
	f, err := decode(data)
	if err != nil {
		return // counted already, as refused by its limit
	}
	if f.msg == nil || !f.msg.Code.IsRequest() || (f.typ != typeCON && f.typ != typeNON) {
		return
	}
	var resp *Message
	switch why {
	case refuseRate:
		resp = NewMessage(ServiceUnavailable)
		resp.MaxAge = maxAge
		resp.Payload = []byte(fmt.Sprintf("too many datagrams from this address; retry after %d s", maxAge))
	case refuseOversize:
		resp = NewMessage(RequestEntityTooLarge)
		resp.Block1 = Block{Set: true, SZX: e.prefSZX}
		resp.Size1 = int64(e.cfg.MaxBodySize)
		resp.Payload = []byte(fmt.Sprintf("datagram larger than %d bytes; send the body in Block1 blocks", e.cfg.MaxMessageSize))
	default:
		return
	}
	if b := e.render(ap, f, resp); b != nil {
		e.write(b, ap)
	}
}

// limitCounting is a link that refuses input itself (the DTLS link: handshakes) and counts it
// in the Endpoint's limit series.
type limitCounting interface {
	countLimits(*limitCounters)
}
