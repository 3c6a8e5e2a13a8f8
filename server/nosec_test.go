package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/registration"
)

// NoSec impersonation (issue 12, item 8): with AllowNoSec, a plain-CoAP client from another
// port tries to register, update and de-register as a device that is registered over DTLS with
// its PSK. Every try is answered 4.03, the DTLS registration stays as it was, and the refusals
// are counted and audited. An endpoint that has a credential but is not registered is refused
// over NoSec too, while an endpoint without one still registers over NoSec.
func TestNoSecCannotActForSecuredEndpoint(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	if err := h.creds.Put(ctx, "dtls-dev", "id-dtls-dev", []byte("secretkey123")); err != nil {
		t.Fatal(err)
	}
	if err := h.creds.Put(ctx, "provisioned", "id-provisioned", []byte("secretkey456")); err != nil {
		t.Fatal(err)
	}
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "dtls-dev", PSKIdentity: "id-dtls-dev", PSK: []byte("secretkey123"),
		RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.CoAPSAddr().String()); err != nil {
		t.Fatal(err)
	}
	before, ok := h.srv.Registry().Get("dtls-dev")
	if !ok || before.Identity != "id-dtls-dev" {
		t.Fatalf("DTLS registration: %+v", before)
	}

	impostor := plainClient(t, h.srv.Addr())
	links := []byte("</1/0>,</3/0>,</5/0>")
	tests := []struct {
		name string
		op   string
		do   func() codes.Code
	}{
		{"register as the DTLS device", "register", func() codes.Code {
			c, _ := post(t, impostor, "/rd", message.AppLinkFormat, links, "ep=dtls-dev", "lt=60", "lwm2m=1.1")
			return c
		}},
		{"update the DTLS registration", "update", func() codes.Code {
			c, _ := post(t, impostor, "/rd/"+before.ID, message.AppLinkFormat, nil, "lt=60")
			return c
		}},
		{"de-register the DTLS registration", "deregister", func() codes.Code { return del(t, impostor, "/rd/"+before.ID) }},
		{"register as a provisioned device that is not registered", "register", func() codes.Code {
			c, _ := post(t, impostor, "/rd", message.AppLinkFormat, links, "ep=provisioned", "lt=60", "lwm2m=1.1")
			return c
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := h.counter(t, "lwota_registration_nosec_refused_total", map[string]string{"op": tc.op})
			if code := tc.do(); code != codes.Forbidden {
				t.Fatalf("answered %s, want 4.03", code)
			}
			if got := h.counter(t, "lwota_registration_nosec_refused_total", map[string]string{"op": tc.op}); got != n+1 {
				t.Errorf("lwota_registration_nosec_refused_total{op=%q} = %v, want %v", tc.op, got, n+1)
			}
			after, ok := h.srv.Registry().Get("dtls-dev")
			if !ok || after.ID != before.ID || after.Identity != before.Identity || after.Addr != before.Addr || after.Lifetime != before.Lifetime {
				t.Fatalf("DTLS registration after the refusal: %+v (before %+v)", after, before)
			}
			if _, ok := h.srv.Registry().Get("provisioned"); ok {
				t.Fatal("the provisioned endpoint registered over NoSec")
			}
		})
	}
	// Audited: one entry per endpoint per minute, naming the operation and the source.
	es := h.auditEntries(t, registration.AuditNoSecRefused)
	byActor := map[string]int{}
	for _, e := range es {
		byActor[e.Actor]++
		if e.Outcome != "denied" || e.RemoteAddr == "" || e.Detail["op"] == "" {
			t.Errorf("audit entry %+v", e)
		}
	}
	if byActor["device:dtls-dev"] != 1 || byActor["device:provisioned"] != 1 {
		t.Fatalf("audit entries by actor: %v, want one each for dtls-dev and provisioned", byActor)
	}
	// The DTLS device itself still works (Send is bound to its DTLS session, not to the
	// endpoint name), and a NoSec device without a credential registers.
	if err := dev.Update(ctx); err != nil {
		t.Fatalf("DTLS device update: %v", err)
	}
	if err := dev.Send(ctx, lwm2m.NewPath(3, 0, 3)); err != nil {
		t.Fatalf("DTLS device Send: %v", err)
	}
	if c, diag := post(t, impostor, "/dp", message.MediaType(lwm2m.FormatSenMLJSON), []byte(`[{"n":"/5/0/3","v":2}]`)); c != codes.NotFound {
		t.Fatalf("NoSec Send for nobody: %s %q, want 4.04", c, diag)
	}
	if c, diag := post(t, impostor, "/rd", message.AppLinkFormat, links, "ep=plain-dev", "lt=60", "lwm2m=1.1"); c != codes.Created {
		t.Fatalf("NoSec registration of an endpoint without a credential: %s %q", c, diag)
	}
}

// A device registered over NoSec before its endpoint got a PSK credential cannot update or
// de-register over NoSec any more: from then on it must come over DTLS.
func TestNoSecRegistrationLosesItsEndpointToACredential(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "migrating", RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := dev.Update(ctx); err != nil {
		t.Fatalf("NoSec update before the credential: %v", err)
	}
	if err := h.creds.Put(ctx, "migrating", "id-migrating", []byte("secretkey789")); err != nil {
		t.Fatal(err)
	}
	var rej *lwm2mtest.RejectedError
	if err := dev.Update(ctx); !errors.As(err, &rej) || rej.Code != "4.03" {
		t.Fatalf("NoSec update after the credential: %v, want 4.03", err)
	}
	if err := dev.Deregister(ctx); !errors.As(err, &rej) || rej.Code != "4.03" {
		t.Fatalf("NoSec de-register after the credential: %v, want 4.03", err)
	}
	if got := h.counter(t, "lwota_registration_nosec_refused_total", map[string]string{"op": "update"}); got != 1 {
		t.Errorf("refused updates counted: %v, want 1", got)
	}
}
