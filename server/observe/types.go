package observe

import (
	"context"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

// Observation is an Observe the server holds on a device's path. The token is kept so that
// notifications still match after a restart of lwota.
type Observation struct {
	Endpoint string              `json:"endpoint"`
	Path     lwm2m.Path          `json:"path"`
	Token    []byte              `json:"token"`
	Format   lwm2m.ContentFormat `json:"format,omitempty"`
	// Paths are the paths of an Observe-Composite (LwM2M 1.1+), whose Path is the root; nil for
	// an observation of Path alone.
	Paths     []lwm2m.Path `json:"paths,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
}

// Latest is the newest value a device reported for an observed path.
type Latest struct {
	Endpoint string         `json:"endpoint"`
	Path     lwm2m.Path     `json:"path"`
	Records  []lwm2m.Record `json:"records"`
	Time     time.Time      `json:"time"`
}

// Store persists observations and the latest notified values. Implementations live in storage/.
type Store interface {
	SaveObservation(ctx context.Context, o *Observation) error
	DeleteObservation(ctx context.Context, endpoint string, path lwm2m.Path) error
	// Observations returns the endpoint's observations; endpoint "" returns all of them.
	Observations(ctx context.Context, endpoint string) ([]*Observation, error)
	SaveLatest(ctx context.Context, l *Latest) error
	LatestFor(ctx context.Context, endpoint string) ([]*Latest, error)
}
