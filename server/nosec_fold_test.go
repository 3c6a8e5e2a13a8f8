package server_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

// countingCreds counts the credential reads of the NoSec check on the way to the Manager.
type countingCreds struct {
	*credentials.Manager
	reads atomic.Int64
}

func (c *countingCreds) HasCredential(ctx context.Context, endpoint string) (bool, error) {
	c.reads.Add(1)
	return c.Manager.HasCredential(ctx, endpoint)
}

// TestNoSecUpdateReadsNoCredential checks the NoSec credential check of an Update: with the
// credentials kept in the registrations' store, the store's touch makes it (no read before the
// write), and a credential put after the device registered refuses its next Update 4.03 and
// leaves the stored and the live registration as they were. With the credentials kept in another
// store, every Update reads them, as before, and is refused all the same.
func TestNoSecUpdateReadsNoCredential(t *testing.T) {
	for _, tc := range []struct {
		name      string
		elsewhere bool // the server's credentials live in a store of their own
	}{{"credentials in the registrations' store", false}, {"credentials elsewhere", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var counted *countingCreds
			h := startHarnessCreds(t, nil, func(m *credentials.Manager) server.Credentials {
				if tc.elsewhere {
					other, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "creds.db"), nil)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { other.Close() })
					key := make([]byte, credentials.ServerKeyLen)
					_, _ = rand.Read(key)
					if m, err = credentials.New(other, key, nil); err != nil {
						t.Fatal(err)
					}
				}
				counted = &countingCreds{Manager: m}
				return counted
			})
			ctx := context.Background()
			dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "folded", RequestTimeout: 30 * time.Second}, nil)
			t.Cleanup(func() { _ = dev.Close() })
			if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
				t.Fatal(err)
			}
			registered := counted.reads.Load()
			for range 3 {
				if err := dev.Update(ctx); err != nil {
					t.Fatalf("NoSec update: %v", err)
				}
			}
			reads, want := counted.reads.Load()-registered, int64(0)
			if tc.elsewhere {
				want = 3
			}
			if reads != want {
				t.Errorf("three NoSec Updates read the credentials %d times, want %d", reads, want)
			}
			before, err := h.store.GetRegistration(ctx, "folded")
			if err != nil {
				t.Fatal(err)
			}
			live, _ := h.srv.Registry().Get("folded")
			if err := counted.Put(ctx, "folded", "id-folded", []byte("secretkey789")); err != nil {
				t.Fatal(err)
			}
			var rej *lwm2mtest.RejectedError
			if err := dev.Update(ctx); !errors.As(err, &rej) || rej.Code != "4.03" {
				t.Fatalf("NoSec update after the credential: %v, want 4.03", err)
			}
			after, err := h.store.GetRegistration(ctx, "folded")
			if err != nil {
				t.Fatal(err)
			}
			if !after.UpdatedAt.Equal(before.UpdatedAt) || !after.LastSeen.Equal(before.LastSeen) || after.Addr != before.Addr {
				t.Errorf("stored registration after the refusal: %+v, want %+v", after, before)
			}
			if now, _ := h.srv.Registry().Get("folded"); now == nil || !now.UpdatedAt.Equal(live.UpdatedAt) {
				t.Errorf("live registration after the refusal: %+v, want updated at %v", now, live.UpdatedAt)
			}
			if got := h.counter(t, "lwota_registration_nosec_refused_total", map[string]string{"op": "update"}); got != 1 {
				t.Errorf("refused updates counted: %v, want 1", got)
			}
		})
	}
}
