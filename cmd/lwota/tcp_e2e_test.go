package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
)

// Devices over coap+tcp and coaps+tcp (RFC 8323, LwM2M binding T) end to end through lwota
// serve: they register over their connection, are read down it, and are updated by a pull over
// TCP or TLS (the Package URI scheme chosen from /5/0/8 values 4 and 5) and by a push in Block1
// blocks over the connection. The coaps+tcp device proves itself with a certificate from a CA
// made for the test; lwota's own certificate comes from the same CA.
func TestUpdateOverTCPAndTLS(t *testing.T) {
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.Server()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms",
		"--coap-tcp-addr", "127.0.0.1:0", "--coaps-tcp-addr", "127.0.0.1:0",
		"--coaps-tcp-cert", write("srv.pem", srv.CertPEM), "--coaps-tcp-key", write("srv.key", srv.KeyPEM),
		"--coaps-tcp-ca", write("ca.pem", pki.CAPEM))
	body := fwImage("4.0.0", 48<<10)
	img := uploadImage(t, ts, "4.0.0", body)

	tests := []struct {
		name      string
		transport string
		protocols []int
		delivery  string // the simulator's /5/0/9
		method    string
		want      string // the job's delivery
	}{
		{"tcp pull", lwm2mtest.TransportTCP, []int{lwm2mtest.ProtoCoAP, lwm2mtest.ProtoCoAPTCP}, lwm2mtest.DeliveryPull, fwupdate.MethodPull, fwupdate.DeliveryCoAPTCP},
		{"tls pull", lwm2mtest.TransportTLS, []int{lwm2mtest.ProtoCoAPTLS}, lwm2mtest.DeliveryPull, fwupdate.MethodPull, fwupdate.DeliveryCoAPTLS},
		{"tcp push", lwm2mtest.TransportTCP, nil, lwm2mtest.DeliveryPush, fwupdate.MethodPush, fwupdate.DeliveryPush},
		{"tls push", lwm2mtest.TransportTLS, nil, lwm2mtest.DeliveryPush, fwupdate.MethodPush, fwupdate.DeliveryPush},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := "stream-" + string(rune('a'+i))
			cfg := fleetConfig(tc.delivery)
			cfg.Endpoint, cfg.Binding, cfg.Transport = ep, "", tc.transport
			cfg.Protocols = tc.protocols
			addr := ts.svc.core.CoAPTCPAddr()
			network := transport.TCP
			if tc.transport == lwm2mtest.TransportTLS {
				cert, err := pki.Device(ep)
				if err != nil {
					t.Fatal(err)
				}
				cfg.TLS = pki.ClientTLS(&cert)
				addr = ts.svc.core.CoAPSTCPAddr()
				network = transport.TLS
			}
			dev := lwm2mtest.NewDevice(cfg, nil)
			t.Cleanup(func() { _ = dev.Close() })
			if err := dev.Start(context.Background(), addr.String()); err != nil {
				t.Fatal(err)
			}
			reg, err := ts.svc.core.Device(context.Background(), ep)
			if err != nil || reg.Addr.Network != network || reg.Binding != "T" {
				t.Fatalf("registration %+v, %v; want one over %s with binding T", reg, err, network)
			}
			if network == transport.TLS && reg.Identity != transport.X509IdentityPrefix+ep {
				t.Fatalf("identity %q, want the certificate's name", reg.Identity)
			}
			res, _, err := ts.svc.core.Do(context.Background(), ep, dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 3)})
			if err != nil || len(res.Records) != 1 || res.Records[0].Value.Str != "1.0.0" {
				t.Fatalf("read /3/0/3: %+v, %v", res, err)
			}
			jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, tc.method, quickPolicy())
			j := waitJobs(t, ts, jobs, 2*time.Minute)[ep]
			if j.State != fwupdate.StateSucceeded || j.Delivery != tc.want {
				t.Fatalf("job %s (%s) delivered by %q, want succeeded by %q", j.State, j.Reason, j.Delivery, tc.want)
			}
			if v, _ := dev.Value(lwm2m.NewPath(3, 0, 3)); v.Str != "4.0.0" {
				t.Fatalf("device reports %q", v.Str)
			}
			if st := dev.Stats(); st.ImagesReceived != 1 {
				t.Fatalf("device received %d images, want 1", st.ImagesReceived)
			}
		})
	}
}
