package lwm2mtest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
)

type pskOne struct{ identity, key string }

func (p pskOne) PSK(_ context.Context, identity string) ([]byte, error) {
	if identity != p.identity {
		return nil, errors.New("unknown identity")
	}
	return []byte(p.key), nil
}

// The mbedtls2-record-version profile reproduces the field failure: pion alone (go-coap's DTLS
// server) never answers its ClientHello, and lwota's transport, which normalises the record
// version, registers it.
func TestProfileMbedTLS2RecordVersion(t *testing.T) {
	key := []byte("secretkey123")
	cfg := ApplyProfileMbedTLS2RecordVersion(DeviceConfig{PSKIdentity: "id-1", PSK: key, RequestTimeout: 3 * time.Second})

	t.Run("pion alone drops it", func(t *testing.T) {
		s := newTestServerOn(t, serveRouterDTLS("id-1", key))
		c := cfg
		c.Endpoint = "urn:dev:mbedtls2-pion"
		d := NewDevice(c, nil)
		t.Cleanup(func() { _ = d.Close() })
		if err := d.Start(ctxT(t), s.addr); err == nil {
			t.Fatal("a ClientHello in a fe 00 record was answered by pion alone: the profile does not reproduce the habit")
		}
	})

	t.Run("lwota transport accepts it", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		registered := make(chan string, 1)
		h := transport.HandlerFunc(func(_ context.Context, from transport.Peer, r *transport.Message) *transport.Message {
			if r.Code == transport.POST && r.Path == "/rd" {
				select {
				case registered <- from.Identity:
				default:
				}
				m := transport.NewMessage(transport.Created)
				m.LocationPath = []string{"rd", "1"}
				return m
			}
			return transport.NewMessage(transport.Changed)
		})
		e, err := transport.NewDTLS(pc, h, transport.DefaultConfig(), transport.DTLSConfig{PSK: pskOne{"id-1", string(key)}}, nil, nil)
		if err != nil {
			t.Fatalf("NewDTLS: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		c := cfg
		c.Endpoint = "urn:dev:mbedtls2-lwota"
		d := NewDevice(c, nil)
		t.Cleanup(func() { _ = d.Close() })
		if err := d.Start(ctxT(t), pc.LocalAddr().String()); err != nil {
			t.Fatalf("start: %v", err)
		}
		if id := <-registered; id != "id-1" {
			t.Fatalf("registered as %q", id)
		}
	})
}
