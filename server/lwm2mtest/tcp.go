package lwm2mtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	coaptcp "github.com/plgd-dev/go-coap/v3/tcp"
)

// The transports a device can reach the server over (DeviceConfig.Transport).
const (
	TransportUDP = "udp" // CoAP over UDP, or over DTLS with a PSK (the default)
	TransportTCP = "tcp" // CoAP over TCP, coap+tcp (RFC 8323; LwM2M 1.1 binding T)
	TransportTLS = "tls" // CoAP over TLS, coaps+tcp, with DeviceConfig.TLS
)

// deviceConn is what the device needs from its connection to the server, over UDP, DTLS, TCP
// or TLS alike: go-coap's UDP and TCP client connections both have it.
type deviceConn interface {
	Post(ctx context.Context, path string, contentFormat message.MediaType, payload io.ReadSeeker, opts ...message.Option) (*pool.Message, error)
	Delete(ctx context.Context, path string, opts ...message.Option) (*pool.Message, error)
	LocalAddr() net.Addr
	Close() error
}

// stream reports whether the device speaks CoAP over TCP or TLS.
func (c DeviceConfig) stream() bool {
	return c.Transport == TransportTCP || c.Transport == TransportTLS
}

// dialTCP connects to the server over TCP (or TLS), exchanges CSMs and serves the server's
// requests on the connection with the device's router.
func (d *Device) dialTCP(ctx context.Context, server string) (deviceConn, error) {
	opts := []coaptcp.Option{
		options.WithContext(ctx),
		options.WithMux(d.router),
		options.WithBlockwise(false, blockwise.SZX1024, 3*time.Second),
		options.WithErrors(func(err error) { d.log.Debug("coap+tcp", "err", err) }),
		options.WithCSMExchangeTimeout(d.cfg.RequestTimeout),
	}
	if d.cfg.Transport == TransportTLS {
		if d.cfg.TLS == nil {
			return nil, errors.New("lwm2mtest: transport tls needs DeviceConfig.TLS")
		}
		opts = append(opts, options.WithTLS(d.cfg.TLS))
	}
	return coaptcp.Dial(server, opts...)
}

// streamNotifyConn lets an observation notify over a TCP connection: RFC 8323 has no message
// ids, so the one the notification code asks for is never used on the wire.
type streamNotifyConn struct{ mux.Conn }

func (streamNotifyConn) GetMessageID() int32 { return 0 }

// asNotifyConn is the connection an Observe came in on, as notifications use it.
func asNotifyConn(c mux.Conn) (notifyConn, bool) {
	if nc, ok := c.(notifyConn); ok {
		return nc, true
	}
	if c == nil {
		return nil, false
	}
	return streamNotifyConn{c}, true
}

// fetchCoAPTCP downloads a coap+tcp:// or coaps+tcp:// package URI in Block2 blocks of
// BlockSize over one connection (RFC 8323 with RFC 7959), from offset on.
func (d *Device) fetchCoAPTCP(ctx context.Context, gen uint64, u *url.URL, offset int) error {
	host := u.Host
	if u.Port() == "" {
		port := "5683"
		if u.Scheme == "coaps+tcp" {
			port = "5684"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	opts := []coaptcp.Option{
		options.WithContext(ctx),
		options.WithBlockwise(false, blockwise.SZX1024, 3*time.Second),
		options.WithErrors(func(err error) { d.log.Debug("coap+tcp pull", "err", err) }),
	}
	if u.Scheme == "coaps+tcp" {
		if d.cfg.TLS == nil {
			return fmt.Errorf("%w: coaps+tcp without a TLS configuration", errInvalidURI)
		}
		opts = append(opts, options.WithTLS(d.cfg.TLS))
	}
	cc, err := coaptcp.Dial(host, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", errLinkLost, err)
	}
	defer cc.Close()
	szx := szxOf(d.cfg.BlockSize)
	for {
		size := blockSize(szx)
		num := offset / size
		req, err := cc.NewGetRequest(ctx, u.EscapedPath())
		if err != nil {
			return fmt.Errorf("%w: %v", errInvalidURI, err)
		}
		if u.RawQuery != "" {
			for _, q := range strings.Split(u.RawQuery, "&") {
				req.AddQuery(q)
			}
		}
		tok := make([]byte, 4)
		_, _ = rand.Read(tok)
		req.SetToken(tok)
		req.SetOptionUint32(message.Block2, uint32(num)<<4|uint32(szx))
		rctx, cancel := d.requestContext(ctx)
		req.SetContext(rctx)
		resp, err := cc.Do(req)
		cancel()
		cc.ReleaseMessage(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: block %d: %v", errLinkLost, num, err)
		}
		if resp.Code() != codes.Content {
			return fmt.Errorf("%w: block %d answered %s", errLinkLost, num, codeString(resp.Code()))
		}
		body, _ := resp.ReadBody()
		more := false
		if v, err := resp.Options().GetUint32(message.Block2); err == nil {
			more = v&8 != 0
			if got := blockwise.SZX(v & 7); got < szx {
				szx = got // the server may answer smaller blocks (RFC 7959 §2.4)
			}
		}
		if err := d.fwAppend(gen, offset, body); err != nil {
			return err
		}
		offset += len(body)
		if !more || len(body) == 0 {
			return nil
		}
	}
}
