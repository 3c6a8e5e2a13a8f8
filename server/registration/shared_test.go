package registration_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

// drainer refuses Registers while on.
type drainer struct{ on bool }

func (d *drainer) AdmitRegister() (time.Duration, string, bool) {
	if d.on {
		return 30 * time.Second, "draining", false
	}
	return 0, "", true
}

// TestDrainingRefusesRegister: a refused Register is 5.03 with Max-Age and stores nothing; an
// Update of a registration made before the drain is still served.
func TestDrainingRefusesRegister(t *testing.T) {
	f := newFixture(t)
	d := &drainer{}
	f.reg.SetAdmission(d)
	resp := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-1", "lt=60"))
	if resp.Code != transport.Created {
		t.Fatalf("register before the drain answered %s", resp.Code)
	}
	id := resp.LocationPath[1]
	d.on = true
	resp = f.do(peer(40001, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-2", "lt=60"))
	if resp.Code != transport.ServiceUnavailable || resp.MaxAge != 30 {
		t.Fatalf("register while draining answered %s Max-Age %d, want 5.03 Max-Age 30", resp.Code, resp.MaxAge)
	}
	if _, err := f.store.GetRegistration(context.Background(), "dev-2"); err == nil {
		t.Error("a refused Register was stored")
	}
	if resp := f.do(peer(40000, ""), request(transport.POST, "/rd/"+id, "")); resp.Code != transport.Changed {
		t.Errorf("update while draining answered %s", resp.Code)
	}
}

// TestSharedUpdateTakesStoredRegistration: with a shared store, an Update of a registration
// another registry took is served from the stored row (not 4.04, which would make the device
// register again); without Shared it is 4.04 as before.
func TestSharedUpdateTakesStoredRegistration(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "shared", false: "alone"}[shared]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "reg.db")
			st, err := sqlstore.Open(context.Background(), path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			cfg := registration.DefaultConfig()
			cfg.Shared = shared
			a := registration.New(st, nil, cfg, nil, nil, nil)
			b := registration.New(st, nil, cfg, nil, nil, nil)
			resp := a.ServeCoAP(context.Background(), peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-1", "lt=60"))
			if resp.Code != transport.Created {
				t.Fatalf("register at a answered %s", resp.Code)
			}
			id := resp.LocationPath[1]
			resp = b.ServeCoAP(context.Background(), peer(40002, ""), request(transport.POST, "/rd/"+id, ""))
			want := transport.Changed
			if !shared {
				want = transport.NotFound
			}
			if resp.Code != want {
				t.Fatalf("update at b answered %s, want %s", resp.Code, want)
			}
			if !shared {
				return
			}
			live, ok := b.Get("dev-1")
			if !ok || live.ID != id || live.Addr != peer(40002, "").Addr {
				t.Errorf("b's registration = %+v, %v", live, ok)
			}
			// A peer with another identity may not take it over.
			if resp := b.ServeCoAP(context.Background(), peer(40003, "psk-x"), request(transport.POST, "/rd/"+id, "")); resp.Code != transport.Forbidden {
				t.Errorf("update under another identity answered %s", resp.Code)
			}
		})
	}
}
