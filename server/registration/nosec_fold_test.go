package registration_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

// credentialAuthorizer is lwota's NoSec rule over a store's credentials, as server.Server
// applies it: a NoSec peer may act for an endpoint without a credential. It counts its reads
// (AuthorizeRegister calls) and, with fold, says the store checks the same thing in its touch.
type credentialAuthorizer struct {
	creds interface {
		HasCredential(ctx context.Context, endpoint string) (bool, error)
	}
	fold  bool
	reads atomic.Int64
}

func (a *credentialAuthorizer) AuthorizeRegister(ctx context.Context, from transport.Peer, endpoint string) error {
	a.reads.Add(1)
	if from.Identity != "" {
		return nil
	}
	has, err := a.creds.HasCredential(ctx, endpoint)
	if err != nil {
		return err
	}
	if has {
		return fmt.Errorf("%w: %s has a PSK credential", registration.ErrSecuredEndpoint, endpoint)
	}
	return nil
}

func (a *credentialAuthorizer) FoldsNoSecCheck(from transport.Peer, _ registration.NoSecToucher) bool {
	return a.fold && from.Identity == ""
}

// auditLog keeps the audit entries the registry writes.
type auditLog struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (l *auditLog) Record(_ context.Context, e audit.Entry) error {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
	return nil
}

func (l *auditLog) ops() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.entries {
		out = append(out, e.Action+" "+e.Detail["op"])
	}
	return out
}

// credentialOnTouch is the store with a credential committed for the endpoint just before each
// touch: a provisioning that lands between an Update's credential check and its write.
type credentialOnTouch struct {
	*sqlstore.Store
	on atomic.Bool
}

func (s *credentialOnTouch) provisionOnTouch(ctx context.Context, endpoint string) error {
	if !s.on.Load() {
		return nil
	}
	return s.provision(ctx, endpoint)
}

func (s *credentialOnTouch) provision(ctx context.Context, endpoint string) error {
	return s.SaveCredential(ctx, &credentials.Sealed{Endpoint: endpoint, Identity: "id-" + endpoint, Nonce: []byte{1}, SealedKey: []byte{2}})
}

func (s *credentialOnTouch) TouchRegistration(ctx context.Context, r *registration.Registration) error {
	if err := s.provisionOnTouch(ctx, r.Endpoint); err != nil {
		return err
	}
	return s.Store.TouchRegistration(ctx, r)
}

func (s *credentialOnTouch) TouchRegistrationNoSec(ctx context.Context, r *registration.Registration) error {
	if err := s.provisionOnTouch(ctx, r.Endpoint); err != nil {
		return err
	}
	return s.Store.TouchRegistrationNoSec(ctx, r)
}

// plainStore hides every optional capability of the store but Toucher: a store that cannot
// check credentials in its touch.
type plainStore struct {
	registration.Store
	registration.Toucher
}

// TestNoSecUpdateFoldsCredentialCheck checks a NoSec Update through a store that checks the
// endpoint's credential in its touch (NoSecToucher) with an Authorizer that folds its check
// into it: the Update reads nothing before its write (no AuthorizeRegister), a credential
// committed before the touch (even after the Update started) refuses it 4.03, audited, with
// neither the store nor the registry changed, and an Update that rewrites the whole row asks the
// Authorizer again. With a store or an Authorizer that cannot fold, every Update asks.
func TestNoSecUpdateFoldsCredentialCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plain  bool // the store is no NoSecToucher
		fold   bool // the authorizer folds
		folded bool // Updates read nothing
	}{
		{"folding store and authorizer", false, true, true},
		{"store without the capability", true, true, false},
		{"authorizer that does not fold", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			st := &credentialOnTouch{Store: f.store}
			var store registration.Store = st
			if tc.plain {
				store = plainStore{st, st}
			}
			rec := &recorder{}
			reg := registration.New(store, rec, registration.DefaultConfig(), nil, nil, f.clock.Now)
			authz := &credentialAuthorizer{creds: f.store, fold: tc.fold}
			reg.SetAuthorizer(authz)
			log := &auditLog{}
			reg.SetAudit(log)
			dev := peer(40000, "")
			resp := reg.ServeCoAP(ctx, dev, request(transport.POST, "/rd", "</1/0>,</3/0>", "ep=dev-1", "lt=60"))
			if resp.Code != transport.Created {
				t.Fatalf("register answered %s", resp.Code)
			}
			id := resp.LocationPath[1]
			if got := authz.reads.Load(); got != 1 {
				t.Errorf("Register asked the authorizer %d times, want 1", got)
			}
			for range 3 {
				f.clock.Add(10 * time.Second)
				if resp := reg.ServeCoAP(ctx, dev, request(transport.POST, "/rd/"+id, "")); resp.Code != transport.Changed {
					t.Fatalf("update answered %s %s", resp.Code, resp.Payload)
				}
			}
			wantReads := int64(4)
			if tc.folded {
				wantReads = 1
			}
			if got := authz.reads.Load(); got != wantReads {
				t.Errorf("after three Updates the authorizer was asked %d times, want %d", got, wantReads)
			}

			// A credential is provisioned for the endpoint before the next touch.
			before, _ := reg.Get("dev-1")
			stored, err := f.store.GetRegistration(ctx, "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			if tc.folded {
				st.on.Store(true) // between the Update's start and its touch: the touch must see it
			} else if err := st.provision(ctx, "dev-1"); err != nil { // a separate check sees it only before
				t.Fatal(err)
			}
			f.clock.Add(10 * time.Second)
			updates := slices.Clone(rec.list())
			for _, req := range []*transport.Message{
				request(transport.POST, "/rd/"+id, ""),          // a touch
				request(transport.POST, "/rd/"+id, "", "lt=90"), // a whole row
			} {
				resp := reg.ServeCoAP(ctx, peer(40001, ""), req)
				if resp.Code != transport.Forbidden {
					t.Fatalf("NoSec update %v of an endpoint with a credential answered %s %s, want 4.03", req.Query, resp.Code, resp.Payload)
				}
			}
			after, ok := reg.Get("dev-1")
			if !ok || !after.UpdatedAt.Equal(before.UpdatedAt) || after.Addr != before.Addr || after.Lifetime != before.Lifetime {
				t.Errorf("live registration after the refusals = %+v, want %+v", after, before)
			}
			now, err := f.store.GetRegistration(ctx, "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			if !now.UpdatedAt.Equal(stored.UpdatedAt) || now.Addr != stored.Addr || now.Lifetime != stored.Lifetime {
				t.Errorf("stored registration after the refusals = %+v, want %+v", now, stored)
			}
			if got := rec.list(); len(got) != len(updates) {
				t.Errorf("listener heard %v after the refusals", got[len(updates):])
			}
			if got := log.ops(); !slices.Equal(got, []string{registration.AuditNoSecRefused + " update"}) {
				t.Errorf("audited %q, want one NoSec refusal of an update", got)
			}
		})
	}
}
