package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// QueuedCounts counts only requests in state queued, per endpoint.
func TestQueuedCounts(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t, b.dsn(t))
			now := time.Now()
			for i, p := range []struct {
				ep    string
				state dm.PendingState
			}{{"a", dm.PendingQueued}, {"a", dm.PendingQueued}, {"b", dm.PendingQueued}, {"b", dm.PendingDone}, {"c", dm.PendingFailed}} {
				err := s.SavePending(ctx, &dm.Pending{ID: string(rune('p' + i)), Endpoint: p.ep, State: p.state,
					Request: dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 0)}, CreatedAt: now, UpdatedAt: now})
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.QueuedCounts(ctx)
			if want := map[string]int{"a": 2, "b": 1}; err != nil || !maps.Equal(got, want) {
				t.Fatalf("QueuedCounts = %v, %v; want %v", got, err, want)
			}
		})
	}
}

// sealedFor is a credential row for endpoint (the key bytes are never opened here).
func sealedFor(endpoint string) *credentials.Sealed {
	now := time.Now()
	return &credentials.Sealed{Endpoint: endpoint, Identity: "id-" + endpoint, Nonce: make([]byte, 12),
		SealedKey: []byte("sealed-key-bytes"), KeyID: 1, CreatedAt: now, UpdatedAt: now}
}

// HasCredential and StoredInfo answer from the database, also when many ask at once (on
// PostgreSQL many lookups share one query): each caller gets its own endpoint's answer, a
// credential or attribute written just before is seen, one removed is gone.
func TestConcurrentLookups(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t, b.dsn(t))
			const n = 300
			ep := func(i int) string { return fmt.Sprintf("urn:dev:%03d", i) }
			for i := 0; i < n; i += 3 { // every third endpoint has a credential
				if err := s.SaveCredential(ctx, sealedFor(ep(i))); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < n; i += 2 { // every second one a registration with its model
				r := benchRegistration(ep(i))
				r.Model, r.Manufacturer, r.DeviceType = "model-"+ep(i), "acme", "meter"
				if err := s.SaveRegistration(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4*n)
			for round := range 2 { // the same endpoint asked twice in a batch
				for i := range n {
					wg.Go(func() {
						has, err := s.HasCredential(ctx, ep(i))
						if err != nil || has != (i%3 == 0) {
							errs <- fmt.Errorf("round %d: HasCredential(%s) = %v, %v", round, ep(i), has, err)
						}
						info, err := s.StoredInfo(ctx, ep(i))
						switch {
						case i%2 != 0 && !errors.Is(err, registration.ErrNotFound):
							errs <- fmt.Errorf("StoredInfo(%s) of no registration = %+v, %v; want ErrNotFound", ep(i), info, err)
						case i%2 == 0 && (err != nil || info.Endpoint != ep(i) || info.Model != "model-"+ep(i) ||
							info.Manufacturer != "acme" || info.DeviceType != "meter" || info.FirmwareVersion != "1.4.2"):
							errs <- fmt.Errorf("StoredInfo(%s) = %+v, %v", ep(i), info, err)
						}
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			// Coherent with the writes: a credential added or removed is seen at the next lookup.
			if err := s.SaveCredential(ctx, sealedFor(ep(1))); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteCredential(ctx, ep(0)); err != nil {
				t.Fatal(err)
			}
			if has, err := s.HasCredential(ctx, ep(1)); err != nil || !has {
				t.Errorf("after its credential was saved, HasCredential(%s) = %v, %v", ep(1), has, err)
			}
			if has, err := s.HasCredential(ctx, ep(0)); err != nil || has {
				t.Errorf("after its credential was deleted, HasCredential(%s) = %v, %v", ep(0), has, err)
			}
			canceled, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.HasCredential(canceled, ep(3)); !errors.Is(err, context.Canceled) {
				t.Errorf("HasCredential with an ended context = %v", err)
			}
		})
	}
}

// After Close the lookups fail with ErrClosed rather than hang.
func TestLookupsAfterClose(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s, err := sqlstore.Open(context.Background(), b.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.HasCredential(context.Background(), "x"); err == nil {
				t.Error("HasCredential after Close succeeded")
			}
			if _, err := s.StoredInfo(context.Background(), "x"); err == nil {
				t.Error("StoredInfo after Close succeeded")
			}
		})
	}
}
