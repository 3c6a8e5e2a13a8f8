package registration

import (
	"context"
	"errors"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// ObjectLink is one entry of a Register object list: "</3/0>" or "</5>;ver=1.1".
type ObjectLink struct {
	Path    lwm2m.Path `json:"path"`
	Version string     `json:"version,omitempty"`
}

// Registration is what lwota knows of one endpoint: kept compact because a server holds one per
// device, and persisted on every Register, Update and De-register.
type Registration struct {
	ID              string            `json:"id"` // Location-Path id, /rd/{id}
	Endpoint        string            `json:"endpoint"`
	Version         string            `json:"lwm2m_version"` // "1.0", "1.1", "1.2"
	Lifetime        uint32            `json:"lifetime"`      // seconds
	Binding         string            `json:"binding"`       // "U", "UQ", ...
	QueueMode       bool              `json:"queue_mode"`
	SMSNumber       string            `json:"sms_number,omitempty"`
	RootPath        string            `json:"root_path"`       // alternate path, "/" when the device has none
	ContentFormats  []uint16          `json:"content_formats"` // ct= of the root link: formats the device supports
	Objects         []ObjectLink      `json:"objects"`
	Addr            transport.Addr    `json:"-"`
	Identity        string            `json:"identity,omitempty"` // DTLS identity the device registered with
	RegisteredAt    time.Time         `json:"registered_at"`
	UpdatedAt       time.Time         `json:"updated_at"` // last Register or Update: the lifetime counts from here
	LastSeen        time.Time         `json:"last_seen"`
	DeregisteredAt  time.Time         `json:"deregistered_at,omitzero"`
	FirmwareVersion string            `json:"firmware_version,omitempty"` // last /3/0/3 seen
	Attrs           map[string]string `json:"-"`                          // reserved for later issues; nil today
}

// ExpiresAt is when the registration lapses without an Update.
func (r *Registration) ExpiresAt() time.Time {
	return r.UpdatedAt.Add(time.Duration(r.Lifetime) * time.Second)
}

// Online reports whether the device is registered and its lifetime has not run out at now.
func (r *Registration) Online(now time.Time) bool {
	return r.DeregisteredAt.IsZero() && now.Before(r.ExpiresAt())
}

// HasObject reports whether the object list names object id (with or without instances).
func (r *Registration) HasObject(id uint16) bool {
	for _, o := range r.Objects {
		if o.Path.Len() >= 1 && o.Path.ObjectID() == id {
			return true
		}
	}
	return false
}

// ObjectVersion is the ver= the device declared for object id, "" when it declared none.
func (r *Registration) ObjectVersion(id uint16) string {
	for _, o := range r.Objects {
		if o.Path.Len() >= 1 && o.Path.ObjectID() == id && o.Version != "" {
			return o.Version
		}
	}
	return ""
}

// SupportsFormat reports whether the device declared content format f (ct= on the root link).
func (r *Registration) SupportsFormat(f lwm2m.ContentFormat) bool {
	for _, c := range r.ContentFormats {
		if c == uint16(f) {
			return true
		}
	}
	return false
}

// ErrNotFound is returned by stores and the registry for an unknown endpoint.
var ErrNotFound = errors.New("registration: not found")

// Filter selects registrations for listing. Zero fields match everything.
type Filter struct {
	EndpointPrefix  string
	Online          *bool     // with Now: registered and not expired
	ObjectID        *uint16   // object present in the object list
	FirmwareVersion string    // exact match
	After           string    // cursor: endpoints strictly greater than this
	Limit           int       // 0 means no limit
	Now             time.Time // the clock for Online
}

// Store persists registrations. Implementations live in storage/.
type Store interface {
	// SaveRegistration inserts or replaces the registration of r.Endpoint; it returns once durable.
	SaveRegistration(ctx context.Context, r *Registration) error
	// LoadRegistrations returns every registration that is not de-registered, for a restart.
	LoadRegistrations(ctx context.Context) ([]*Registration, error)
	// GetRegistration returns the stored registration of an endpoint, de-registered or not, or ErrNotFound.
	GetRegistration(ctx context.Context, endpoint string) (*Registration, error)
	// ListRegistrations returns registrations matching f, ordered by endpoint.
	ListRegistrations(ctx context.Context, f Filter) ([]*Registration, error)
}
