// Package api is lwota's REST interface: devices, device management, pending requests, observations
// and a server-sent event stream under /api/v1, translating HTTP and JSON to calls on the server core.
package api

import (
	"context"
	_ "embed"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
)

// Devices looks registrations up.
type Devices interface {
	// Device returns the registration of endpoint, or registration.ErrNotFound.
	Device(ctx context.Context, endpoint string) (*registration.Registration, error)
	// ListDevices returns the registrations matching f, ordered by endpoint.
	ListDevices(ctx context.Context, f registration.Filter) ([]*registration.Registration, error)
}

// Operator runs device-management requests.
type Operator interface {
	// Do runs req on the device now; for a device in queue mode that is asleep it queues the request and
	// returns (nil, pending, nil) with pending.State == dm.PendingQueued.
	Do(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error)
	// Pending returns a queued request by id, or dm.ErrRequestNotFound.
	Pending(ctx context.Context, id string) (*dm.Pending, error)
}

// Observations reports what the server observes on a device and the newest values it was told.
type Observations interface {
	Observations(ctx context.Context, endpoint string) ([]*observe.Observation, error)
	Latest(ctx context.Context, endpoint string) ([]*observe.Latest, error)
}

// Resolver is the object model: it types the JSON values of writes.
type Resolver interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}

// Subscriber delivers live server events; the channel closes when ctx ends.
type Subscriber interface {
	Subscribe(ctx context.Context) <-chan events.Event
}

// Config tunes the API. Zero fields take the values of DefaultConfig.
type Config struct {
	// MaxBodyBytes caps request bodies; larger ones get 413 body_too_large.
	MaxBodyBytes int64
	// MaxImportBytes caps the body of a bulk credential import (CSV or JSON).
	MaxImportBytes int64
	// KeepAlive is the interval of comment lines on the event stream, so proxies keep it open.
	KeepAlive time.Duration
	// DefaultPageSize is the device list page size when the client gives no limit.
	DefaultPageSize int
	// MaxPageSize caps the limit a client may ask for.
	MaxPageSize int
	// Now is the clock for online flags; nil means time.Now.
	Now func() time.Time
	// MaxStreams caps the open event streams of the whole API, MaxStreamsPerToken those of one
	// API token; a stream past either is 429 too_many_streams. Each stream holds a goroutine and
	// a subscription, so without a cap one token could open thousands.
	MaxStreams         int
	MaxStreamsPerToken int
	// DeviceRequestTimeout bounds a device-management request the API sends to an awake device
	// (Read, Write, Execute, Observe, ...); past it the answer is 504 device_timeout.
	DeviceRequestTimeout time.Duration
	// MaxQueuedReads is how many Reads and Discovers of writer roles may wait in one sleeping
	// device's queue (WithQueue); the rest of the queue is kept for writes. Read-only tokens
	// never queue.
	MaxQueuedReads int
}

// DefaultConfig is 1 MiB bodies (32 MiB for a credential import), a 15 s keepalive, pages of 100
// devices (at most 1000), 1000 event streams (16 per token) and 10 s device requests.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:         1 << 20,
		MaxImportBytes:       32 << 20,
		KeepAlive:            15 * time.Second,
		DefaultPageSize:      100,
		MaxPageSize:          1000,
		Now:                  time.Now,
		MaxStreams:           1000,
		MaxStreamsPerToken:   16,
		DeviceRequestTimeout: 10 * time.Second,
		MaxQueuedReads:       8,
	}
}

// Prefix is where the API lives; mount Handler there (or at "/").
const Prefix = "/api/v1"

//go:embed openapi.json
var openAPIDoc []byte

// API serves the REST routes. Build it with New and mount Handler.
type API struct {
	cfg     Config
	devices Devices
	op      Operator
	obs     Observations
	types   Resolver
	sub     Subscriber
	logger  *slog.Logger

	images         Images                 // nil: no catalog, the image and key routes answer 404
	limits         *prometheus.CounterVec // refusals by limit (WithMetrics); nil: not counted
	maxUpload      int64
	creds          Credentials // nil: the credential routes answer 404
	updates        Updates     // nil: the update routes answer 404
	campaigns      Campaigns   // nil: the campaign routes answer 404
	bootstrap      Bootstrap   // nil: the /bootstrap routes answer 404
	bootstrapCreds Credentials // bootstrap PSKs; nil: their routes answer 404
	tokens         Tokens      // nil: every route answers 401 (WithAuth)
	webhooks       Webhooks    // nil: the webhook routes answer 404
	audit          AuditLog    // nil: nothing is recorded, GET /audit answers 404
	fleet          Fleet       // nil: GET /fleet answers 404 (WithFleet)
	echo           *echo.Echo
	queue          QueueReader // nil: reads of writer roles queue up to the device's whole queue
	streams        streamCounter
	openGauge      prometheus.Gauge // open event streams (WithMetrics); nil: not measured

	routesOnce sync.Once       // routes is built on first use, after every route is added
	routes     map[string]bool // "METHOD /path" of every route echo serves

	// clusterKeys: nil, the cluster key routes answer 404.
	clusterKeys ClusterKeys
	// clusterNodes: nil, the cluster node routes answer 404.
	clusterNodes ClusterNodes
}

// New wires the API to the server core. A nil logger discards logs.
func New(cfg Config, d Devices, op Operator, obs Observations, types Resolver, sub Subscriber, logger *slog.Logger) *API {
	def := DefaultConfig()
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = def.MaxImportBytes
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = def.KeepAlive
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = def.MaxPageSize
	}
	if cfg.DefaultPageSize <= 0 {
		cfg.DefaultPageSize = def.DefaultPageSize
	}
	cfg.DefaultPageSize = min(cfg.DefaultPageSize, cfg.MaxPageSize)
	if cfg.Now == nil {
		cfg.Now = def.Now
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = def.MaxStreams
	}
	if cfg.MaxStreamsPerToken <= 0 {
		cfg.MaxStreamsPerToken = def.MaxStreamsPerToken
	}
	if cfg.MaxQueuedReads <= 0 {
		cfg.MaxQueuedReads = def.MaxQueuedReads
	}
	if cfg.DeviceRequestTimeout <= 0 {
		cfg.DeviceRequestTimeout = def.DeviceRequestTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, devices: d, op: op, obs: obs, types: types, sub: sub, logger: logger, maxUpload: DefaultMaxImageBytes}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard) // errors are returned and logged once, by logRequests
	e.HTTPErrorHandler = a.writeError
	// recordAudit is outside logRequests so that it sees the status of error answers too;
	// authenticate runs after routing (echo's Use), so it knows the route pattern.
	e.Use(requestID, a.recordAudit, a.logRequests, a.countLimits, recoverPanics, a.authenticate, a.limitBodies)

	e.GET(Prefix+"/openapi.json", a.openAPI)
	e.GET(Prefix+"/devices", a.listDevices)
	e.GET(Prefix+"/devices/:endpoint", a.getDevice)
	e.GET(Prefix+"/devices/:endpoint/observations", a.getObservations)
	for _, m := range objectMethods() {
		e.Add(m, Prefix+"/devices/:endpoint/objects/*", a.objects)
	}
	e.GET(Prefix+"/requests/:id", a.getRequest)
	e.GET(Prefix+"/events", a.streamEvents)
	a.imageRoutes(e) // images.go: served once WithImages is called
	a.keyRoutes(e)
	a.credentialRoutes(e)  // credentials.go: served once WithCredentials is called
	a.labelRoutes(e)       // labels.go: served when the Devices also implement Labels
	a.updateRoutes(e)      // updates.go: served once WithUpdates is called
	a.campaignRoutes(e)    // campaigns.go: served once WithCampaigns is called
	a.bootstrapRoutes(e)   // bootstrap.go: served once WithBootstrap is called
	a.webhookRoutes(e)     // webhooks.go: served once WithWebhooks is called
	a.compositeRoutes(e)   // composite.go: Read-Composite and Write-Composite
	a.tokenRoutes(e)       // tokens.go: tokens and the audit log (WithAuth)
	a.fleetRoutes(e)       // fleet.go: served once WithFleet is called
	a.clusterKeyRoutes(e)  // cluster_keys.go: served once WithClusterKeys is called
	a.clusterNodeRoutes(e) // cluster_nodes.go: served once WithClusterNodes is called
	a.echo = e
	return a
}

// Handler returns the HTTP handler of every route under Prefix.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Route on the escaped path so that an endpoint name holding "%2F" stays one segment;
		// handlers unescape the parameters themselves (see pathParam).
		r.URL.RawPath = r.URL.EscapedPath()
		a.echo.ServeHTTP(w, r)
	})
}

func (a *API) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}
