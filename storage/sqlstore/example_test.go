package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "lwota-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "lwota.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, ep := range []string{"urn:imei:1", "urn:imei:2", "sensor-7"} {
		err := store.SaveRegistration(ctx, &registration.Registration{
			ID: "id-" + ep, Endpoint: ep, Lifetime: 300, UpdatedAt: now,
			Objects: []registration.ObjectLink{{Path: lwm2m.NewPath(5, 0)}},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	online, five := true, uint16(5)
	regs, err := store.ListRegistrations(ctx, registration.Filter{
		EndpointPrefix: "urn:imei:", Online: &online, Now: now.Add(time.Minute), ObjectID: &five,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range regs {
		fmt.Println(r.Endpoint, "expires", r.ExpiresAt().Format(time.TimeOnly))
	}
	// Output:
	// urn:imei:1 expires 12:05:00
	// urn:imei:2 expires 12:05:00
}
