package registration

import (
	"context"
	"errors"
	"strconv"
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
	ID             string         `json:"id"` // Location-Path id, /rd/{id}
	Endpoint       string         `json:"endpoint"`
	Version        string         `json:"lwm2m_version"` // "1.0", "1.1", "1.2"
	Lifetime       uint32         `json:"lifetime"`      // seconds
	Binding        string         `json:"binding"`       // "U", "UQ", ...
	QueueMode      bool           `json:"queue_mode"`
	SMSNumber      string         `json:"sms_number,omitempty"`
	RootPath       string         `json:"root_path"`       // alternate path, "/" when the device has none
	ContentFormats []uint16       `json:"content_formats"` // ct= of the root link: formats the device supports
	Objects        []ObjectLink   `json:"objects"`
	Addr           transport.Addr `json:"-"`
	Identity       string         `json:"identity,omitempty"` // DTLS identity the device registered with
	RegisteredAt   time.Time      `json:"registered_at"`
	UpdatedAt      time.Time      `json:"updated_at"` // last Register or Update: the lifetime counts from here
	LastSeen       time.Time      `json:"last_seen"`
	DeregisteredAt time.Time      `json:"deregistered_at,omitzero"`
	// UnreachableSince is when the device stopped answering lwota's requests (a request timed
	// out), zero while it answers. It lives in memory only and clears at the device's next
	// uplink or answer: the registration stays live until its lifetime runs out.
	UnreachableSince time.Time `json:"unreachable_since,omitzero"`
	// The device's identity as it last reported it in Object 3 (answers and notifications); kept
	// across re-registrations until the device reports another value.
	Manufacturer    string `json:"manufacturer,omitempty"`     // /3/0/0
	Model           string `json:"model,omitempty"`            // /3/0/1
	FirmwareVersion string `json:"firmware_version,omitempty"` // /3/0/3
	DeviceType      string `json:"device_type,omitempty"`      // /3/0/17
	// Labels are the operator's key/value pairs of the endpoint. They live apart from the
	// registration (LabelStore) and are only filled in by GetRegistration and ListRegistrations:
	// SaveRegistration ignores them and the registry's live registrations carry none.
	Labels map[string]string `json:"labels,omitempty"`
}

// HasDeviceInfo reports whether the device has reported all four Object 3 identity values.
func (r *Registration) HasDeviceInfo() bool {
	return r.Manufacturer != "" && r.Model != "" && r.FirmwareVersion != "" && r.DeviceType != ""
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
	Online          *bool   // with Now: registered and not expired
	ObjectID        *uint16 // object present in the object list
	FirmwareVersion string  // exact match, or the right side of FirmwareOp
	// FirmwareOp compares the device's firmware version with FirmwareVersion: "" or "=" is the
	// exact text, "!=" any other text (devices without a version excluded), "<", "<=", ">" and
	// ">=" compare VersionKey order and never match a version without a key.
	FirmwareOp   string
	Manufacturer string // exact match
	Model        string // exact match
	DeviceType   string // exact match
	// Labels the endpoint must carry, every one with exactly this value.
	Labels map[string]string
	After  string    // cursor: endpoints strictly greater than this
	Limit  int       // 0 means no limit
	Now    time.Time // the clock for Online
	// Sort orders the list by a column, then by endpoint; Desc reverses both. With a Sort, the
	// cursor is the last row's (AfterSort, After): AfterSort is SortValue of that registration.
	Sort      SortKey
	Desc      bool
	AfterSort string
	// Brief returns only what choosing devices looks at (a campaign's selector, an image's
	// target, Online): endpoint, ID, lifetime, queue mode, the registration, update and
	// deregistration times, firmware version, manufacturer, model, device type and labels. The
	// rest (content formats, object list, address, identity, binding, LwM2M version, SMS number,
	// root path, last seen) comes back empty, so that a campaign over 10,000 devices neither
	// copies nor decodes their object lists. The filter's ObjectID still applies.
	Brief bool
}

// SortKey is a column the device list sorts by.
type SortKey string

// Device list sort keys.
const (
	SortEndpoint SortKey = "endpoint"
	SortFirmware SortKey = "firmware"  // VersionKey order; versions without a key first
	SortModel    SortKey = "model"     // text
	SortLastSeen SortKey = "last_seen" // time
)

// SortKeys lists the valid SortKey values.
var SortKeys = []SortKey{SortEndpoint, SortFirmware, SortModel, SortLastSeen}

// SortValue is what a registration sorts by under k, as Filter.AfterSort takes it.
func SortValue(r *Registration, k SortKey) string {
	switch k {
	case SortFirmware:
		key, _ := VersionKey(r.FirmwareVersion)
		return key
	case SortModel:
		return r.Model
	case SortLastSeen:
		if r.LastSeen.IsZero() {
			return "0"
		}
		return strconv.FormatInt(r.LastSeen.UnixNano(), 10)
	}
	return r.Endpoint
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

// Toucher is the optional capability of a Store to store an Update that changed nothing but
// the registration's times and source address (a device renewing its lifetime: the steady-state
// load of a fleet) without rewriting the whole row.
type Toucher interface {
	// TouchRegistration stores r.UpdatedAt, r.LastSeen, the expiry they give and r.Addr on the
	// stored row of r.Endpoint whose id is r.ID, and returns once durable; ErrNotFound when
	// there is no such row.
	TouchRegistration(ctx context.Context, r *Registration) error
}

// NoSecToucher is the optional capability of a Store to make a NoSec (plain CoAP) Update's
// credential check itself, in the write of its touch: the row changes only when the endpoint has
// no DTLS credential in this store, so the check is atomic with the write (a credential committed
// before the touch is always seen) and the Update reads nothing before it. The registry uses it,
// instead of asking its Authorizer, only when the Authorizer says the store's credentials are the
// ones it checks (NoSecFolder).
type NoSecToucher interface {
	// TouchRegistrationNoSec stores what TouchRegistration stores, only when r.Endpoint has no
	// credential, and returns once durable. It fails with an error matching ErrSecuredEndpoint
	// when the endpoint has a credential, or ErrNotFound when no row of r.Endpoint holds r.ID;
	// either way it changed nothing.
	TouchRegistrationNoSec(ctx context.Context, r *Registration) error
}

// InfoSaver is the optional capability of a Store to store only the device attributes of a
// registration (RecordDeviceInfo, after the read of /3/0 that follows a Register): four columns
// instead of the whole row, its object list encoded again and the webhook outbox.
type InfoSaver interface {
	// SaveDeviceInfo stores r.Manufacturer, r.Model, r.FirmwareVersion and r.DeviceType on the
	// stored row of r.Endpoint whose id is r.ID, nothing else, and returns once durable;
	// ErrNotFound when there is no such row.
	SaveDeviceInfo(ctx context.Context, r *Registration) error
}

// InfoStore is the optional capability of a Store to read only the device attributes
// (Manufacturer, Model, FirmwareVersion, DeviceType) of an endpoint's stored registration:
// a Register of an endpoint that is not live carries them over, and GetRegistration would read
// and decode the whole row and its labels for four strings.
type InfoStore interface {
	// StoredInfo returns a Registration holding only the stored device attributes of
	// endpoint's registration, de-registered or not, or ErrNotFound.
	StoredInfo(ctx context.Context, endpoint string) (*Registration, error)
}

// InfoKeeper is the optional capability of a Store to store the Register of an endpoint that is
// not live while keeping the device attributes of its stored registration, in one write: the
// Register then reads nothing before its save (InfoStore's lookup is a round trip to a database
// server, a third of a Register's on PostgreSQL), and the attributes carried over are the row's
// at the save, not at a read before it.
type InfoKeeper interface {
	// SaveRegistrationKeepingInfo stores r as SaveRegistration does, except for Manufacturer,
	// Model, FirmwareVersion and DeviceType: when endpoint has a stored registration
	// (de-registered or not) its values stay and are set on r, else r's are stored. The webhook
	// event of the Register carries the values stored. It returns once durable; r is changed
	// only then.
	SaveRegistrationKeepingInfo(ctx context.Context, r *Registration) error
}

// Counter is the optional capability of a Store to count the registrations a Filter matches
// (its cursor, limit and sort aside): the total of a paged device list.
type Counter interface {
	CountRegistrations(ctx context.Context, f Filter) (int, error)
}

// LabelStore keeps the operator's labels of each endpoint, apart from its registration, so that
// a device can be labelled before it first registers (factory provisioning). A store that
// implements it fills Registration.Labels in GetRegistration and ListRegistrations.
type LabelStore interface {
	// SetLabels replaces every label of endpoint with labels (nil or empty removes them all); it
	// fails with ErrInvalidLabels when ValidateLabels does.
	SetLabels(ctx context.Context, endpoint string, labels map[string]string) error
	// Labels returns the labels of endpoint: an empty map when it has none, registered or not.
	Labels(ctx context.Context, endpoint string) (map[string]string, error)
}
