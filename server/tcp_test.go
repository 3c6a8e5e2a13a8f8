package server_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/server/transport/tcp"
)

// A coap+tcp device (RFC 8323, binding T) registers over its connection, is read down the same
// connection, and once the connection is gone lwota queues for it as for a sleeping device.
func TestTCPRegisterReadAndQueue(t *testing.T) {
	h := startHarness(t, func(c *server.Config) { c.CoAPTCPAddr = "127.0.0.1:0" })
	ctx := context.Background()
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "tcp-dev", Transport: lwm2mtest.TransportTCP,
		FirmwareVersion: "3.1.4", RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.CoAPTCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	reg, ok := h.srv.Registry().Get("tcp-dev")
	if !ok || reg.Addr.Network != transport.TCP || reg.Binding != "T" {
		t.Fatalf("registration %+v", reg)
	}
	if reg.Addr.AddrPort.String() != dev.LocalAddr().String() {
		t.Fatalf("registered from %s, the device's connection is %s", reg.Addr.AddrPort, dev.LocalAddr())
	}
	res, _, err := h.srv.Do(ctx, "tcp-dev", dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 3)})
	if err != nil || len(res.Records) != 1 || res.Records[0].Value.Str != "3.1.4" {
		t.Fatalf("read over tcp: %+v %v", res, err)
	}
	res, _, err = h.srv.Do(ctx, "tcp-dev", dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: firmwareStatus})
	if err != nil || len(res.Records) != 3 {
		t.Fatalf("read-composite over tcp: %+v %v", res, err)
	}
	// Writes too, and an answer larger than one frame the device takes is no trouble.
	long := string(bytes.Repeat([]byte("z"), 3000))
	if _, _, err := h.srv.Do(ctx, "tcp-dev", dm.Request{Op: dm.OpWrite, Path: lwm2m.NewPath(3, 0, 14),
		Records: []lwm2m.Record{{Path: lwm2m.NewPath(3, 0, 14), Value: lwm2m.String(long)}}}); err != nil {
		t.Fatalf("write over tcp: %v", err)
	}
	if v, _ := dev.Value(lwm2m.NewPath(3, 0, 14)); v.Str != long {
		t.Fatalf("device /3/0/14 has %d bytes, want %d", len(v.Str), len(long))
	}

	// The connection closes: the device is unreachable, and a request waits in its queue.
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection to close", 30*time.Second, func() bool {
		_, err := h.srv.DoNow(ctx, "tcp-dev", dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 0)})
		return err != nil
	})
	_, pending, err := h.srv.Do(ctx, "tcp-dev", dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 0)})
	if err != nil || pending == nil || pending.State != dm.PendingQueued {
		t.Fatalf("request for a device without a connection: pending %+v, %v; want it queued", pending, err)
	}

	// It connects again and registers: the queued request goes down the new connection.
	dev2 := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "tcp-dev", Transport: lwm2mtest.TransportTCP,
		RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev2.Close() })
	if err := dev2.Start(ctx, h.srv.CoAPTCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queued request to be sent", 30*time.Second, func() bool {
		p, err := h.srv.Pending(ctx, pending.ID)
		return err == nil && p.State == dm.PendingDone
	})
}

// coaps+tcp registrations: with device CAs, a device registers only as the name its certificate
// carries; without, devices are anonymous and follow the NoSec rule.
func TestTLSRegistrationIdentity(t *testing.T) {
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := pki.Server()
	if err != nil {
		t.Fatal(err)
	}
	alice, err := pki.Device("alice")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		withCAs    bool
		allowNoSec bool
		endpoint   string
		cert       *lwm2mtest.Issued
		ok         bool
		identity   string
	}{
		{"certificate names the endpoint", true, false, "alice", &alice, true, "x509:alice"},
		{"certificate of another endpoint", true, true, "mallory", &alice, false, ""},
		{"anonymous with NoSec allowed", false, true, "anon", nil, true, ""},
		{"anonymous with NoSec refused", false, false, "anon", nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, func(c *server.Config) {
				c.CoAPSTCPAddr, c.AllowNoSec = "127.0.0.1:0", tc.allowNoSec
				c.TLS = &tcp.TLSConfig{Certificate: srvCert.TLS}
				if tc.withCAs {
					c.TLS.ClientCAs = pki.Pool
				}
			})
			dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: tc.endpoint, Transport: lwm2mtest.TransportTLS,
				TLS: pki.ClientTLS(tc.cert), RequestTimeout: 30 * time.Second}, nil)
			t.Cleanup(func() { _ = dev.Close() })
			err := dev.Start(context.Background(), h.srv.CoAPSTCPAddr().String())
			if !tc.ok {
				var rej *lwm2mtest.RejectedError
				if !errors.As(err, &rej) || rej.Code != "4.03" {
					t.Fatalf("start: %v, want the server's 4.03", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reg, _ := h.srv.Registry().Get(tc.endpoint)
			if reg == nil || reg.Addr.Network != transport.TLS || reg.Identity != tc.identity {
				t.Fatalf("registration %+v, want over tls with identity %q", reg, tc.identity)
			}
		})
	}
}
