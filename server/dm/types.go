package dm

import (
	"context"
	"errors"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

// Op is a device-management operation toward a client (LwM2M Core §6.3, §6.4).
type Op string

// The operations lwota sends to devices.
const (
	OpRead            Op = "read"
	OpDiscover        Op = "discover"
	OpWrite           Op = "write"         // replace (PUT)
	OpWritePartial    Op = "write-partial" // partial update (POST)
	OpWriteAttributes Op = "write-attributes"
	OpExecute         Op = "execute"
	OpCreate          Op = "create"
	OpDelete          Op = "delete"
	OpObserve         Op = "observe"
	OpCancelObserve   Op = "cancel-observe"

	// Composite operations of LwM2M 1.1+ (Core §6.3.1, §6.3.3, §6.4.1): several paths of one
	// device in one request. Their Path is the root; Paths (reads) or Records (writes) say what.
	OpReadComposite  Op = "read-composite"  // FETCH with a SenML path list
	OpWriteComposite Op = "write-composite" // iPATCH with SenML or LwM2M CBOR records
	// Observe-Composite and its cancel: FETCH with the path list and Observe 0 or 1.
	OpObserveComposite       Op = "observe-composite"
	OpCancelObserveComposite Op = "cancel-observe-composite"
)

// Attributes are the notification attributes of Write-Attributes (Core §5.1.2). Nil means unset;
// Clear lists attributes to remove ("pmin" sent without a value).
type Attributes struct {
	Pmin  *uint32  `json:"pmin,omitempty"`
	Pmax  *uint32  `json:"pmax,omitempty"`
	Gt    *float64 `json:"gt,omitempty"`
	Lt    *float64 `json:"lt,omitempty"`
	St    *float64 `json:"st,omitempty"`
	Epmin *uint32  `json:"epmin,omitempty"`
	Epmax *uint32  `json:"epmax,omitempty"`
	Clear []string `json:"clear,omitempty"`
}

// Request is one operation on one path of one device.
type Request struct {
	Op         Op                   `json:"op"`
	Path       lwm2m.Path           `json:"path"`
	Paths      []lwm2m.Path         `json:"paths,omitempty"`  // Read-Composite: the paths to read
	Format     *lwm2m.ContentFormat `json:"format,omitempty"` // nil lets lwota choose from what the device supports
	Records    []lwm2m.Record       `json:"records,omitempty"`
	Args       string               `json:"args,omitempty"` // Execute arguments
	Attributes *Attributes          `json:"attributes,omitempty"`
}

// Result is the device's answer.
type Result struct {
	Code     string              `json:"code"` // CoAP response code, "2.05"
	Format   lwm2m.ContentFormat `json:"format,omitempty"`
	Records  []lwm2m.Record      `json:"records,omitempty"`
	Links    string              `json:"links,omitempty"`    // Discover: the CoRE link-format payload
	Payload  []byte              `json:"payload,omitempty"`  // a body lwota could not decode, kept as it came
	Location string              `json:"location,omitempty"` // Create: the new instance path
}

// PendingState is where a request for a sleeping device stands.
type PendingState string

// States of a queued request.
const (
	PendingQueued PendingState = "queued"
	PendingSent   PendingState = "sent"
	PendingDone   PendingState = "done"
	PendingFailed PendingState = "failed"
)

// Pending is a request queued for a device in queue mode, kept until the device wakes and answers.
type Pending struct {
	ID        string       `json:"id"`
	Endpoint  string       `json:"endpoint"`
	Request   Request      `json:"request"`
	State     PendingState `json:"state"`
	Result    *Result      `json:"result,omitempty"`
	Error     string       `json:"error,omitempty"`
	Attempts  int          `json:"attempts"` // wake-ups at which sending timed out
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// ErrRequestNotFound is returned for an unknown pending request id.
var ErrRequestNotFound = errors.New("dm: request not found")

// QueueStore persists requests queued for sleeping devices. Implementations live in storage/.
type QueueStore interface {
	// SavePending inserts or updates p (by ID); it returns once durable.
	SavePending(ctx context.Context, p *Pending) error
	// PendingFor returns the endpoint's requests in state queued, oldest first.
	PendingFor(ctx context.Context, endpoint string) ([]*Pending, error)
	// GetPending returns one request by id, or ErrRequestNotFound.
	GetPending(ctx context.Context, id string) (*Pending, error)
}

// QueueCounter is the optional capability of a QueueStore to count the requests in state queued
// of every endpoint that has any, in one query (Client.LoadQueued).
type QueueCounter interface {
	QueuedCounts(ctx context.Context) (map[string]int, error)
}
