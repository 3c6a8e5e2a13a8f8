package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/lwota/lwota/campaigns"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lwota/lwota/api"
	"github.com/lwota/lwota/api/console"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/delivery"
	"github.com/lwota/lwota/firmware/transfer"
	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/cluster"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/credentials/keyring"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/server/transport/tcp"
	"github.com/lwota/lwota/server/webhooks"
	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/sqlstore"
)

// serveConfig is everything `lwota serve` reads from flags and LWOTA_* variables.
type serveConfig struct {
	CoAPAddr  string
	CoAPSAddr string
	// CoAP over TCP and TLS (RFC 8323): listener addresses (empty: off) and the TLS
	// listener's certificate, key and optional device CA bundle (PEM files).
	CoAPTCPAddr, CoAPSTCPAddr             string
	CoAPSTCPCert, CoAPSTCPKey, CoAPSTCPCA string
	AllowNoSec                            bool
	// CredentialKey is the hex AES-256 key sealing device PSKs; empty: DATA_DIR/credential.key.
	CredentialKey string
	HTTPAddr      string
	DataDir       string
	Database      string
	ObjectsDir    string
	LogFormat     string
	LogLevel      string
	// GCHeadroom is the least the heap may grow between two collections (gcheadroom.go); 0: off.
	GCHeadroom  uint64
	AwakeWindow time.Duration
	MaxQueued   int
	Core        server.Config

	S3 blobstore.S3Config
	// wrapBlobs, when set, wraps the blob store: tests inject its failures (no flag sets it).
	wrapBlobs     func(firmware.Blobs) firmware.Blobs
	MaxImageSize  int64
	AllowUnsigned bool
	PublicURL     string

	// AdminToken is the secret of an admin API token to create (or keep) at start-up; empty: an
	// admin token is made and printed once when the database has no token at all.
	AdminToken           string
	MetricsTokenRequired bool

	// Firmware updates.
	CoAPURL      string // base of coap:// Package URIs; empty: PublicURL's host and the CoAP port
	CoAPSURL     string // base of coaps:// Package URIs; empty: PublicURL's host and the CoAPS port
	HTTPPull     bool   // offer HTTP(S) pulls (PublicURL's scheme) to devices that support them
	UpdatePoll   time.Duration
	UpdateConfig fwupdate.Config

	// Campaigns.
	CampaignTick time.Duration // how often the campaign scheduler looks at active campaigns
	NodeName     string        // this node's name in the leases electing the one node driving campaigns (and webhooks)
	Cluster      bool          // several nodes share the database: each drives the jobs of its own devices
	// ClusterKey (64 hex) seals the keyring in the database that replaces the DATA_DIR keys;
	// ClusterImportKeys moves the DATA_DIR keys into an empty keyring; ClusterKeyPoll is how
	// often a node looks for a rotation made on another.
	ClusterKey        string
	ClusterImportKeys bool
	ClusterKeyPoll    time.Duration

	// Webhooks: the dispatcher's tuning (Node is NodeName).
	Webhooks webhooks.Config

	// Device certificates (DTLS with X.509): the CA bundle devices' certificates chain to, the
	// server's certificate and key (PEM files), and the field naming the device (cn or san).
	DTLSCA, DTLSCert, DTLSKey, DTLSCertName string
	// REST API hardening: TLS certificate and key (PEM files; both or neither), the origins
	// allowed cross-origin calls (comma-separated; empty: CORS off), and how long a request body
	// may stall.
	HTTPTLSCert, HTTPTLSKey string
	CORSOrigins             string
	HTTPBodyTimeout         time.Duration
	// API limits: open event streams in all and per token, and how long an API call waits for
	// an awake device's answer.
	MaxEventStreams         int
	MaxEventStreamsPerToken int
	DeviceRequestTimeout    time.Duration
	MaxQueuedReads          int
	// UploadSweep: how often the leftovers of crashed uploads (S3 multipart uploads, partial
	// files in DATA_DIR/images) are removed, and how old they must be.
	UploadSweep blobstore.SweepConfig

	// Bootstrap Server (server/bootstrap): its listeners (both empty: off) and bounds.
	Bootstrap bootstrap.ServerConfig

	// httpListener, when set, is served instead of listening on HTTPAddr: tests open it first,
	// so that PublicURL can name its port.
	httpListener net.Listener
}

func parseServeFlags(args []string, stderr io.Writer, getenv func(string) string) (serveConfig, error) {
	c := serveConfig{Core: server.DefaultConfig()}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.CoAPAddr, "coap-addr", ":5683", "UDP address for CoAP (devices)")
	fs.StringVar(&c.CoAPSAddr, "coaps-addr", ":5684", "UDP address for CoAP over DTLS with PSK or certificates (devices); empty disables DTLS")
	fs.StringVar(&c.DTLSCA, "dtls-ca", "", "PEM file of the CA certificates device certificates must chain to; with --dtls-cert and --dtls-key it enables DTLS with X.509 certificates")
	fs.StringVar(&c.DTLSCert, "dtls-cert", "", "PEM file of lwota's DTLS certificate chain (ECDSA)")
	fs.StringVar(&c.DTLSKey, "dtls-key", "", "PEM file of the private key of --dtls-cert")
	fs.StringVar(&c.DTLSCertName, "dtls-cert-name", "cn", "the device certificate field a device's endpoint name must equal: cn (subject common name) or san (first URI, else DNS, subject alternative name)")
	fs.StringVar(&c.CoAPTCPAddr, "coap-tcp-addr", "", "TCP address for CoAP over TCP (coap+tcp, RFC 8323) devices, e.g. :5683; empty disables it")
	fs.StringVar(&c.CoAPSTCPAddr, "coaps-tcp-addr", "", "TCP address for CoAP over TLS (coaps+tcp) devices, e.g. :5684; needs --coaps-tcp-cert and --coaps-tcp-key; empty disables it")
	fs.StringVar(&c.CoAPSTCPCert, "coaps-tcp-cert", "", "PEM file of lwota's TLS certificate chain for --coaps-tcp-addr")
	fs.StringVar(&c.CoAPSTCPKey, "coaps-tcp-key", "", "PEM file of the private key of --coaps-tcp-cert")
	fs.StringVar(&c.CoAPSTCPCA, "coaps-tcp-ca", "", "PEM file of the CA certificates coaps+tcp device certificates must chain to; set, a device certificate is required and names the endpoint (--dtls-cert-name); empty, devices are anonymous and held to --allow-nosec")
	fs.BoolVar(&c.Core.DTLS.ConnectionID, "dtls-connection-id", true, "issue DTLS connection ids (RFC 9146), so a device whose NAT mapping changes keeps its session")
	fs.StringVar(&c.Core.NodeRelayAddr, "node-relay-addr", "", "with --cluster: IP:port (UDP) of this node's inter-node DTLS relay, where other nodes forward records whose connection id names this node (its forward_addr); reachable by the other nodes only")
	c.Bootstrap = bootstrap.DefaultServerConfig()
	fs.StringVar(&c.Bootstrap.CoAPAddr, "bootstrap-addr", "", "UDP address of the LwM2M Bootstrap Server over plain CoAP (NoSec bootstrap, refused unless --allow-nosec); empty: off")
	fs.StringVar(&c.Bootstrap.CoAPSAddr, "bootstraps-addr", "", "UDP address of the LwM2M Bootstrap Server over DTLS with bootstrap PSKs (usually :5784); empty: off")
	fs.DurationVar(&c.Bootstrap.RequestTimeout, "bootstrap-request-timeout", c.Bootstrap.RequestTimeout, "how long the Bootstrap Server waits for the device's answer to each request")
	fs.DurationVar(&c.Bootstrap.SessionTimeout, "bootstrap-session-timeout", c.Bootstrap.SessionTimeout, "how long one bootstrap may take, Bootstrap-Request to Bootstrap-Finish")
	fs.BoolVar(&c.AllowNoSec, "allow-nosec", false, "let devices register over plain CoAP, without DTLS (NoSec): development only")
	fs.StringVar(&c.CredentialKey, "credential-key", "", "hex 32-byte key sealing device PSKs at rest (default: generated once in DATA_DIR/credential.key)")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "TCP address for the REST API, /metrics and health checks")
	fs.StringVar(&c.HTTPTLSCert, "http-tls-cert", "", "PEM file of the HTTPS certificate chain; with --http-tls-key the HTTP listener speaks only HTTPS")
	fs.StringVar(&c.HTTPTLSKey, "http-tls-key", "", "PEM file of the private key of --http-tls-cert")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated origins (https://console.example.com) allowed to call the API from a browser; empty: no CORS headers at all")
	fs.DurationVar(&c.HTTPBodyTimeout, "http-body-timeout", time.Minute, "a request body that sends nothing for this long is cut off (uploads may be slow, not stalled)")
	apiDef := api.DefaultConfig()
	fs.IntVar(&c.MaxEventStreams, "max-event-streams", apiDef.MaxStreams, "event streams (GET /api/v1/events) open at once; more are 429 too_many_streams")
	fs.IntVar(&c.MaxEventStreamsPerToken, "max-event-streams-per-token", apiDef.MaxStreamsPerToken, "event streams one API token may hold open at once")
	fs.IntVar(&c.MaxQueuedReads, "max-queued-reads", apiDef.MaxQueuedReads, "of --max-queued, how many may be Reads or Discovers (of writer roles; read-only tokens never queue): the rest is kept for writes")
	fs.DurationVar(&c.DeviceRequestTimeout, "device-request-timeout", apiDef.DeviceRequestTimeout, "how long an API call waits for an awake device's answer before 504 device_timeout")
	sweepDef := blobstore.DefaultSweepConfig()
	fs.DurationVar(&c.UploadSweep.Interval, "upload-sweep-interval", sweepDef.Interval, "how often leftovers of crashed image uploads (S3 multipart uploads, partial files) are removed")
	fs.DurationVar(&c.UploadSweep.Age, "upload-sweep-age", sweepDef.Age, "how old a leftover upload must be to be removed: longer than any upload still running, on any node")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded SQLite database and local images")
	fs.StringVar(&c.Database, "database", "", "SQLite file path or postgres:// URL (default: DATA_DIR/lwota.db)")
	fs.StringVar(&c.ObjectsDir, "objects-dir", "", "directory of OMA DDF XML files with extra object definitions")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	c.GCHeadroom = defaultGCHeadroom
	fs.Var(byteSizeFlag{&c.GCHeadroom}, "gc-headroom", "the heap may grow at least this much between two garbage collections (GOGC=100 otherwise): fewer collections while the live heap is small, none of it at fleet size; 0: off; ignored when GOGC is set, GOMEMLIMIT still applies")
	fs.DurationVar(&c.AwakeWindow, "awake-window", c.Core.DM.AwakeWindow, "how long a queue-mode device listens after it last talked (MAX_TRANSMIT_WAIT)")
	fs.IntVar(&c.MaxQueued, "max-queued", c.Core.DM.MaxQueued, "requests that may wait for one sleeping device")
	fs.StringVar(&c.S3.Bucket, "s3-bucket", "", "keep images in this S3 bucket (credentials from the AWS SDK's default chain); empty: DATA_DIR/images")
	fs.StringVar(&c.S3.Endpoint, "s3-endpoint", "", "S3 API URL for MinIO, Ceph RGW, versitygw, ... (empty: AWS)")
	fs.StringVar(&c.S3.Region, "s3-region", "", "S3 region (default: the SDK's, else us-east-1)")
	fs.StringVar(&c.S3.Prefix, "s3-prefix", "", "key prefix inside the bucket")
	fs.BoolVar(&c.S3.PathStyle, "s3-path-style", false, "path-style bucket addressing (most self-hosted S3 servers need it)")
	fs.BoolVar(&c.S3.CreateBucket, "s3-create-bucket", true, "create the bucket when it is missing")
	fs.Int64Var(&c.MaxImageSize, "max-image-size", firmware.DefaultMaxImageSize, "largest firmware image accepted, in bytes")
	fs.BoolVar(&c.AllowUnsigned, "allow-unsigned", false, "accept images without a signature, marked unsigned: development only")
	fs.StringVar(&c.CoAPURL, "coap-url", "", "base of coap:// firmware download URIs devices are given (default: coap://PUBLIC_URL_HOST:COAP_PORT)")
	fs.StringVar(&c.CoAPSURL, "coaps-url", "", "base of coaps:// firmware download URIs for DTLS devices (default: coaps://PUBLIC_URL_HOST:COAPS_PORT)")
	fs.BoolVar(&c.HTTPPull, "http-pull", false, "let devices that support HTTP(S) download firmware from PUBLIC_URL/fw/..., redirected to the image store")
	fs.DurationVar(&c.Core.Transport.ACKTimeout, "coap-ack-timeout", c.Core.Transport.ACKTimeout, "first retransmission timeout of lwota's confirmable CoAP messages (RFC 7252 ACK_TIMEOUT); lower it only for links known to be fast")
	fs.IntVar(&c.Core.Transport.Workers, "coap-workers", c.Core.Transport.Workers, "goroutines handling CoAP and CoAPS requests; a Register or Update holds one until its group commit is durable, so this bounds the writes one commit gathers")
	fs.Float64Var(&c.Core.Transport.SourceRate, "coap-source-rate", c.Core.Transport.SourceRate, "datagrams per second one source IP address may send (CoAP and CoAPS), bursts of twice that; 0: no limit")
	fs.Var(prefixFlag{&c.Core.Transport.SourceExempt}, "coap-source-rate-exempt", "comma-separated addresses or prefixes --coap-source-rate does not apply to (NAT gateways of large fleets); empty or none: none")
	fs.Var(prefixFlag{&c.Core.Transport.TrustedProxies}, "trusted-proxies", "comma-separated addresses or prefixes of load balancers in front of lwota (nginx): UDP rate and Block1 limits count each balancer port as one device, and the HTTP listener takes the client address from X-Forwarded-For / X-Real-IP only from these; empty: none")
	fs.Float64Var(&c.Core.DTLS.HandshakeRate, "dtls-handshake-rate", c.Core.DTLS.HandshakeRate, "DTLS handshakes per second one source IP address may start, bursts of twice that; 0: no limit")
	fs.IntVar(&c.Core.DTLS.MaxSessions, "dtls-max-sessions", c.Core.DTLS.MaxSessions, "DTLS sessions held at once, established and handshaking")
	fs.IntVar(&c.Core.DTLS.MaxHandshakes, "dtls-max-handshakes", c.Core.DTLS.MaxHandshakes, "DTLS handshakes in progress at once")
	fs.DurationVar(&c.Core.DTLS.HibernateAfter, "dtls-hibernate-after", c.Core.DTLS.HibernateAfter, "an idle DTLS session sleeps after this long without a datagram: its keys stay (about 3 KB), its connection and goroutines go, and its next datagram or a request to the device resumes it without a handshake; negative: never")
	fs.DurationVar(&c.UpdatePoll, "update-poll", 30*time.Second, "how often an update step reads the device's firmware state when no notification came")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL devices and tools reach the HTTP listener at, for signed image URLs (default: http://HTTP_ADDR)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "secret of an admin API token (32+ characters), created at start-up unless it exists (default: print a new one on first start)")
	fs.BoolVar(&c.MetricsTokenRequired, "metrics-token-required", false, "/metrics asks for an API token too (any role)")
	fs.DurationVar(&c.CampaignTick, "campaign-tick", time.Second, "how often the node driving campaigns looks at every active campaign")
	fs.BoolVar(&c.Cluster, "cluster", false, "several lwota nodes share this PostgreSQL database: each node drives the update jobs of the devices that talk to it, one node drives campaigns")
	fs.StringVar(&c.ClusterKey, "cluster-key", "", "64 hex characters, the same on every node: seals the download-token and credential keys kept in the database (required by --cluster; replaces DATA_DIR/download-token.key and credential.key)")
	fs.BoolVar(&c.ClusterImportKeys, "cluster-import-keys", false, "with --cluster-key: move this node's DATA_DIR/download-token.key and credential.key (or --credential-key) into the database when it has no keys yet, so existing tokens and PSKs stay valid")
	fs.DurationVar(&c.ClusterKeyPoll, "cluster-key-poll", 5*time.Second, "how often a node with --cluster-key reloads the keys, picking up a rotation made on another node")
	fs.StringVar(&c.NodeName, "node-name", "", "this node's name in the lease that elects the one node driving campaigns (default: the host name and process id)")
	whDef := webhooks.DefaultConfig()
	fs.IntVar(&c.Webhooks.Workers, "webhook-workers", whDef.Workers, "webhook requests in flight at once, over all subscriptions")
	fs.IntVar(&c.Webhooks.PerSubscription, "webhook-workers-per-subscription", whDef.PerSubscription, "webhook requests in flight at once to one subscription")
	fs.DurationVar(&c.Webhooks.Timeout, "webhook-timeout", whDef.Timeout, "how long one webhook request may take, answer included")
	fs.DurationVar(&c.Webhooks.Backoff.Base, "webhook-backoff", whDef.Backoff.Base, "wait after a webhook delivery's first failed attempt; it doubles with each failure (with jitter) up to --webhook-backoff-max")
	fs.DurationVar(&c.Webhooks.Backoff.Max, "webhook-backoff-max", whDef.Backoff.Max, "longest wait between two attempts of a webhook delivery")
	fs.IntVar(&c.Webhooks.MaxAttempts, "webhook-max-attempts", whDef.MaxAttempts, "failed attempts after which a webhook delivery is dead (listed with ?state=dead)")
	fs.DurationVar(&c.Webhooks.MaxAge, "webhook-max-age", whDef.MaxAge, "a webhook delivery not delivered this long after it was queued is dead")
	fs.Func("max-lifetime", "longest registration lifetime (lt) a device may ask for; longer is refused with 4.00; 0: no limit (default 720h)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d.Seconds() > float64(^uint32(0)) {
			return fmt.Errorf("want a duration from 0 to 4294967295s, such as 720h")
		}
		c.Core.Registration.MaxLifetime = uint32(d / time.Second)
		return nil
	})
	fs.BoolVar(&c.Core.ReadDeviceInfo, "read-device-info", c.Core.ReadDeviceInfo, "read each device's manufacturer, model, firmware version and device type (/3/0) in the background after it registers")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve: unexpected arguments %v", fs.Args())
	}
	if c.Database == "" {
		c.Database = filepath.Join(c.DataDir, "lwota.db")
	}
	if c.UploadSweep.Interval <= 0 || c.UploadSweep.Age <= 0 {
		return c, fmt.Errorf("serve: --upload-sweep-interval and --upload-sweep-age must be above 0")
	}
	if c.MaxEventStreams < 1 || c.MaxEventStreamsPerToken < 1 || c.MaxQueuedReads < 1 || c.DeviceRequestTimeout <= 0 {
		return c, fmt.Errorf("serve: --max-event-streams, --max-event-streams-per-token and --max-queued-reads must be at least 1, --device-request-timeout above 0")
	}
	if err := c.checkTLS(); err != nil {
		return c, err
	}
	if w := c.Webhooks; w.Workers < 1 || w.PerSubscription < 1 || w.MaxAttempts < 1 || w.Timeout <= 0 || w.Backoff.Base <= 0 ||
		w.Backoff.Max < w.Backoff.Base || w.MaxAge <= 0 {
		return c, fmt.Errorf("serve: --webhook-workers, --webhook-workers-per-subscription and --webhook-max-attempts must be at least 1; --webhook-timeout, --webhook-backoff and --webhook-max-age above 0; --webhook-backoff-max at least --webhook-backoff")
	}
	if c.Core.Transport.Workers < 1 {
		return c, fmt.Errorf("serve: --coap-workers must be at least 1")
	}
	if c.Cluster && !strings.HasPrefix(c.Database, "postgres") {
		return c, fmt.Errorf("serve: --cluster needs a postgres:// database that every node shares")
	}
	if err := c.checkClusterKey(); err != nil {
		return c, err
	}
	if err := c.checkNodeRelay(); err != nil {
		return c, err
	}
	if c.NodeName == "" {
		host, _ := os.Hostname()
		c.NodeName = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	c.Webhooks.Node = c.NodeName
	c.Core.CoAPAddr = c.CoAPAddr
	c.Core.CoAPSAddr = c.CoAPSAddr
	c.Core.CoAPTCPAddr, c.Core.CoAPSTCPAddr = c.CoAPTCPAddr, c.CoAPSTCPAddr
	c.Core.AllowNoSec = c.AllowNoSec
	c.Bootstrap.AllowNoSec = c.AllowNoSec
	if c.Bootstrap.RequestTimeout <= 0 || c.Bootstrap.SessionTimeout <= 0 {
		return c, fmt.Errorf("serve: --bootstrap-request-timeout and --bootstrap-session-timeout must be above 0")
	}
	if c.Core.Transport.SourceRate == 0 {
		c.Core.Transport.SourceRate = -1 // the transport's "no limit"; its 0 means the default
	}
	if c.Core.DTLS.HandshakeRate == 0 {
		c.Core.DTLS.HandshakeRate = -1
	}
	c.Core.DM.AwakeWindow = c.AwakeWindow
	c.Core.DM.MaxQueued = c.MaxQueued
	// A Put holds at most Concurrency x PartSize of buffers: 10 MiB keeps the server's memory far
	// below the 64 MiB images it streams, at S3's smallest part size.
	c.S3.PartSize, c.S3.Concurrency = blobstore.MinPartSize, 2
	if c.PublicURL == "" {
		c.PublicURL = c.httpScheme() + "://" + c.HTTPAddr
		if strings.HasPrefix(c.HTTPAddr, ":") {
			c.PublicURL = c.httpScheme() + "://127.0.0.1" + c.HTTPAddr
		}
	}
	c.UpdateConfig = fwupdate.DefaultConfig()
	c.UpdateConfig.PollInterval = c.UpdatePoll
	c.UpdateConfig.AwakeWindow = c.AwakeWindow
	c.UpdateConfig.Cluster = c.Cluster
	// One node alone queues its devices' requests: it counts them at start and never looks up
	// the queue of a device that has none (dm.Config.SoleQueue).
	c.Core.DM.SoleQueue = !c.Cluster
	if c.HTTPPull {
		scheme, _, _ := strings.Cut(c.PublicURL, "://")
		c.UpdateConfig.Offered = append([]string{scheme}, c.UpdateConfig.Offered...)
	}
	if c.CoAPSTCPAddr != "" {
		c.UpdateConfig.Offered = append(c.UpdateConfig.Offered, fwupdate.DeliveryCoAPTLS)
	}
	if c.CoAPTCPAddr != "" {
		c.UpdateConfig.Offered = append(c.UpdateConfig.Offered, fwupdate.DeliveryCoAPTCP)
	}
	return c, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr, os.Getenv)
	if err != nil {
		return asUsage(err)
	}
	logger, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	if startGCHeadroom(ctx, cfg.GCHeadroom, os.Getenv) {
		logger.Debug("GC headroom on", "headroom", formatByteSize(cfg.GCHeadroom))
	}
	svc, err := newService(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// service is one lwota process: the LwM2M core, the REST API and their shared store.
type service struct {
	cfg     serveConfig
	log     *slog.Logger
	store   *sqlstore.Store
	core    *server.Server
	http    *http.Server
	httpLn  net.Listener
	metrics *prometheus.Registry
	updates *fwupdate.Driver
	rollout *campaigns.Manager
	boot    *bootstrap.Server // nil: no bootstrap listener
	hooks   *webhooks.Dispatcher
	bus     *events.Bus
	blobs   firmware.Blobs
	secrets *nodeSecrets
	node    *cluster.Node // nil without --cluster
	ready   chan struct{}
}

// deliveryBases are the URIs devices download firmware from: the configured ones, else the
// public URL's host with the ports lwota listens on.
func (s *service) deliveryBases() delivery.Config {
	host := "127.0.0.1"
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	c := delivery.Config{CoAPURL: s.cfg.CoAPURL, CoAPSURL: s.cfg.CoAPSURL, HTTPURL: strings.TrimSuffix(s.cfg.PublicURL, "/")}
	if a, ok := s.core.Addr().(*net.UDPAddr); ok && c.CoAPURL == "" {
		c.CoAPURL = "coap://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	if a, ok := s.core.CoAPSAddr().(*net.UDPAddr); ok && c.CoAPSURL == "" {
		c.CoAPSURL = "coaps://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	if a, ok := s.core.CoAPTCPAddr().(*net.TCPAddr); ok {
		c.CoAPTCPURL = "coap+tcp://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	if a, ok := s.core.CoAPSTCPAddr().(*net.TCPAddr); ok {
		c.CoAPSTCPURL = "coaps+tcp://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	return c
}

func newService(ctx context.Context, cfg serveConfig, logger *slog.Logger) (*service, error) {
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "images"), 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	store, err := sqlstore.Open(ctx, cfg.Database, logger.With("component", "storage"))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	model := lwm2m.NewModel()
	if cfg.ObjectsDir != "" {
		n, err := model.LoadDDFDir(cfg.ObjectsDir)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("load object definitions: %w", err)
		}
		logger.Info("object definitions loaded", "dir", cfg.ObjectsDir, "objects", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bus := events.NewBus(256)
	if cfg.DTLSCA != "" {
		x, err := transport.LoadX509Config(cfg.DTLSCA, cfg.DTLSCert, cfg.DTLSKey, transport.CertName(cfg.DTLSCertName))
		if err != nil {
			store.Close()
			return nil, err
		}
		cfg.Core.DTLS.X509 = x
		logger.Info("DTLS device certificates on", "ca", cfg.DTLSCA, "name", x.Name)
	}
	if cfg.Core.TLS, err = cfg.coapsTCPConfig(); err != nil {
		store.Close()
		return nil, err
	}
	// One bound for a device call made for the API: the API answers 504 and the core marks the device
	// unreachable at the same moment.
	cfg.Core.DeviceRequestTimeout = cfg.DeviceRequestTimeout
	var node *cluster.Node
	if cfg.Cluster {
		// The node joins before the core takes a registration: the store writes its id as the
		// owner of every device that registers or updates here, in the registration's transaction.
		// Its relay address goes into cluster_nodes.forward_addr, where the other nodes look it up.
		node = cluster.New(cluster.Config{Name: cfg.NodeName, APIURL: cfg.PublicURL, ForwardAddr: cfg.Core.NodeRelayAddr}, store, store,
			logger.With("component", "cluster"), reg, nil)
		if err := node.Join(ctx); err != nil {
			store.Close()
			return nil, err
		}
		if cfg.Core.NodeRelayAddr != "" {
			// The node id is known only now, and the core's DTLS endpoint is built from cfg.Core
			// below: its connection ids name this node, and records naming another node go to
			// that node's forward_addr, read from the node table the heartbeat keeps fresh.
			// The relay key was derived from the cluster key with the flags (checkNodeRelay).
			cfg.Core.DTLS.Node.ID = node.ID()
			cfg.Core.DTLS.Node.Relays = transport.LookupRelays(node.Lookup)
			logger.Info("DTLS connection ids name this node", "node_id", node.ID(), "relay", cfg.Core.NodeRelayAddr)
		}
		// Every node reaches a device from the balancer's address: each sends its message ids
		// from a range of its own, or a device that moved here could answer our requests from
		// its duplicate cache with another node's answers.
		cfg.Core.Transport.NodeID = node.ID()
		store.OwnDevices(node.ID(), node.Grace())
		cfg.Core.Registration.Shared = true // an Update of a device registered at another node
	}
	core := server.New(cfg.Core, store, model, bus, logger, reg)
	if node != nil {
		core.SetCluster(node)
		node.SetExecutor(core)
	}
	secrets, err := openSecrets(ctx, cfg, store, logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	creds, tokens := secrets.creds, secrets.tokens
	core.SetCredentials(creds)
	if cfg.AllowNoSec {
		logger.Warn("devices may register over plain CoAP without DTLS (--allow-nosec): for development only")
	}

	blobs, blobHandler, err := openBlobs(ctx, cfg, logger.With("component", "blobs"))
	if err != nil {
		store.Close()
		return nil, err
	}
	if cfg.wrapBlobs != nil {
		blobs = cfg.wrapBlobs(blobs)
	}
	catalog := firmware.NewCatalog(store, blobs, store, firmware.Config{MaxImageSize: cfg.MaxImageSize, AllowUnsigned: cfg.AllowUnsigned},
		logger.With("component", "firmware"), reg, nil)
	if cfg.AllowUnsigned {
		logger.Warn("unsigned images are accepted (--allow-unsigned): for development only")
	}

	grants := delivery.NewGrants(store, core, catalog)
	xfer := transfer.New(transfer.DefaultConfig(), tokens, grants, blobs, logger.With("component", "transfer"), reg)
	core.Handle(transfer.PathPrefix, xfer)
	s := &service{cfg: cfg, log: logger, store: store, core: core, metrics: reg, blobs: blobs, secrets: secrets, ready: make(chan struct{})}
	pkgs := delivery.NewPackages(s.deliveryBases, catalog, xfer)
	apiTokens, auditLog, err := setupAuth(ctx, cfg, store, logger.With("component", "auth"))
	if err != nil {
		store.Close()
		return nil, err
	}
	core.SetAudit(auditLog)
	s.updates = fwupdate.New(cfg.UpdateConfig, core, store, pkgs, auditLog, logger.With("component", "fwupdate"), reg, nil).
		WithEvents(bus) // job transitions on the API's event stream
	grants.Follow(s.updates) // pull progress: every block served reaches the job's driver
	if node != nil {
		node.SetReleaser(s.updates) // a device that moved to another node: its job goes there
		s.node = node
	}

	s.rollout = campaigns.New(campaigns.Config{Tick: cfg.CampaignTick, Node: cfg.NodeName}, store, s.updates, core, catalog,
		auditLog, logger.With("component", "campaigns"), reg, nil).WithEvents(bus).
		WithExactSelector(store) // a selector that translates exactly selects in SQL, from the registrations core lists
	// Bootstrap PSKs are sealed like device PSKs, with the node's or the cluster's sealing keys.
	bootCreds, err := secrets.newManager(store.BootstrapCredentials(), "bootstrap-credentials")
	if err != nil {
		store.Close()
		return nil, err
	}
	if cfg.Bootstrap.CoAPAddr != "" || cfg.Bootstrap.CoAPSAddr != "" {
		bcfg := cfg.Bootstrap
		bcfg.Transport, bcfg.DTLS = cfg.Core.Transport, cfg.Core.DTLS
		bcfg.DTLS.Node = transport.NodeConfig{} // the relay serves the core's DTLS socket only
		s.boot = bootstrap.New(bcfg, store, bootCreds, creds, auditLog, logger.With("component", "bootstrap"), reg)
	}
	// The store queues webhook deliveries with the events themselves; the dispatcher sends them.
	s.hooks = webhooks.New(cfg.Webhooks, store, logger.With("component", "webhooks"), reg)
	s.bus = bus
	apiCfg := api.DefaultConfig()
	apiCfg.MaxStreams, apiCfg.MaxStreamsPerToken = cfg.MaxEventStreams, cfg.MaxEventStreamsPerToken
	apiCfg.DeviceRequestTimeout = cfg.DeviceRequestTimeout
	apiCfg.MaxQueuedReads = cfg.MaxQueuedReads
	a := api.New(apiCfg, core, core, core, model, core, logger.With("component", "api")).
		WithImages(catalog, cfg.MaxImageSize).
		WithCredentials(creds).
		WithUpdates(s.updates).
		WithCampaigns(s.rollout).
		WithBootstrap(bootstrap.NewAdmin(store, bootCreds, creds), bootCreds).
		WithWebhooks(s.hooks).
		WithAuth(apiTokens, auditLog).
		WithFleet(store).
		WithQueue(store).
		WithMetrics(reg)
	if secrets.ring != nil {
		a.WithClusterKeys(secrets)
	}
	if node != nil {
		a.WithClusterNodes(node)
	}
	mux := http.NewServeMux()
	mux.Handle(transfer.PathPrefix, delivery.NewHTTPHandler(tokens, grants, 0, logger.With("component", "http-pull")))
	if blobHandler != nil {
		mux.Handle("/blobs/", blobHandler)
	}
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if cfg.MetricsTokenRequired {
		metrics = requireToken(apiTokens, metrics)
	}
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/readyz", s.readyz)
	ui, err := console.Handler()
	if err != nil {
		store.Close()
		return nil, err
	}
	mux.Handle(console.Prefix, ui) // the web console: static files with a Content-Security-Policy of 'self' only
	mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
	mux.Handle("/", a.Handler())
	tlsConfig, err := cfg.httpTLSConfig()
	if err != nil {
		store.Close()
		return nil, err
	}
	// No ReadTimeout or WriteTimeout: they would cut 64 MiB uploads and downloads and the
	// server-sent event stream. Headers have ReadHeaderTimeout; bodies withBodyTimeout.
	s.http = &http.Server{
		Handler:           withForwardedFor(withCORS(withBodyTimeout(mux, cfg.HTTPBodyTimeout), splitOrigins(cfg.CORSOrigins)), cfg.Core.Transport.TrustedProxies),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// readyTimeout bounds each readiness check, so a hung database cannot hang the probe.
const readyTimeout = 3 * time.Second

// readyz answers 200 once lwota has started and while its database answers and its image store
// takes a write and a read; 503 naming each failing check otherwise, so a load balancer stops
// sending work that could only fail.
func (s *service) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	select {
	case <-s.ready:
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"starting"}`)
		return
	}
	type check struct {
		name string
		run  func(context.Context) error
	}
	checks := []check{{"database", s.store.Ping}}
	if c, ok := s.blobs.(interface{ Check(context.Context) error }); ok {
		checks = append(checks, check{"blob_store", c.Check})
	}
	failed := map[string]string{}
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		err := c.run(ctx)
		cancel()
		if err != nil {
			failed[c.name] = err.Error()
			s.log.Warn("readiness check failed", "check", c.name, "err", err)
		}
	}
	if len(failed) == 0 {
		_, _ = io.WriteString(w, `{"status":"ready"}`)
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "failed": failed})
}

// Run serves CoAP and HTTP until ctx ends, then shuts both down gracefully.
func (s *service) Run(ctx context.Context) error {
	defer s.store.Close()
	ln, err := s.cfg.httpListener, error(nil)
	if ln == nil {
		ln, err = net.Listen("tcp", s.cfg.HTTPAddr)
	}
	if err != nil {
		return fmt.Errorf("listen http %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn = ln
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs <- s.core.Run(ctx)
		cancel()
	}()
	go func() {
		defer wg.Done()
		if err := s.serveHTTP(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http: %w", err)
			cancel()
		}
	}()
	if s.boot != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.boot.Run(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	select {
	case <-s.core.Ready():
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.updates.Run(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
		if sw, ok := s.blobs.(blobstore.Sweeper); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				blobstore.Sweep(ctx, sw, s.cfg.UploadSweep, s.log.With("component", "blobs"))
			}()
		}
		if r := s.secrets.ring; r != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.Watch(ctx, s.cfg.ClusterKeyPoll, s.secrets.sets, func(set keyring.Set) {
					if err := s.secrets.apply(set); err != nil {
						s.log.Error("cluster keys not applied", "purpose", set.Purpose, "err", err)
					}
				})
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.rollout.Run(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := s.hooks.Run(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
		go func() {
			defer wg.Done()
			wakeWebhooks(ctx, s.bus, s.hooks)
		}()
		coaps := "off"
		if a := s.core.CoAPSAddr(); a != nil {
			coaps = a.String()
		}
		if s.boot != nil {
			select {
			case <-s.boot.Ready():
			case <-ctx.Done():
			}
		}
		select { // an update asked for as soon as lwota says it is ready must find the driver running
		case <-s.updates.Ready():
		case <-ctx.Done():
		}
		if s.node != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.node.Run(ctx); err != nil {
					errs <- err
					cancel()
				}
			}()
			select { // handovers to this node are heard before it says it is ready
			case <-s.node.Ready():
			case <-ctx.Done():
			}
		}
		s.log.Info("lwota ready", "coap", s.core.Addr().String(), "coaps", coaps, "http", ln.Addr().String(), "database", redactDSN(s.cfg.Database))
		close(s.ready)
	case <-ctx.Done():
	}
	<-ctx.Done()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = s.http.Shutdown(shutdownCtx)
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	s.log.Info("lwota stopped")
	return first
}

// openBlobs opens S3 when a bucket is configured, else the local image directory with lwota's
// own signed download URLs (served at /blobs/ by the HTTP listener).
func openBlobs(ctx context.Context, cfg serveConfig, logger *slog.Logger) (firmware.Blobs, http.Handler, error) {
	if cfg.S3.Bucket != "" {
		s3, err := blobstore.OpenS3(ctx, cfg.S3, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("image store: %w", err)
		}
		logger.Info("images in S3", "bucket", cfg.S3.Bucket, "endpoint", cfg.S3.Endpoint, "prefix", cfg.S3.Prefix)
		return s3, nil, nil
	}
	secret, err := urlSecret(filepath.Join(cfg.DataDir, "url-signing.key"))
	if err != nil {
		return nil, nil, err
	}
	signer, err := blobstore.NewURLSigner(cfg.PublicURL, secret, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("image store: %w", err)
	}
	dir, err := blobstore.OpenDir(filepath.Join(cfg.DataDir, "images"), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("image store: %w", err)
	}
	return dir, dir.Handler(), nil
}

// urlSecret loads the key that signs local download URLs, creating it on first start so URLs
// handed out stay valid across restarts.
func urlSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) < 16 {
			return nil, fmt.Errorf("url signing key %s: not 16+ bytes of hex", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("url signing key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("url signing key: %w", err)
	}
	return key, nil
}

// credentialKey is --credential-key, else the key kept in DATA_DIR/credential.key, created on
// first start: PSKs sealed under it must stay readable across restarts.
func credentialKey(cfg serveConfig) ([]byte, error) {
	if cfg.CredentialKey != "" {
		key, err := hex.DecodeString(strings.TrimSpace(cfg.CredentialKey))
		if err != nil || len(key) != credentials.ServerKeyLen {
			return nil, fmt.Errorf("credential key: want %d bytes of hex", credentials.ServerKeyLen)
		}
		return key, nil
	}
	path := filepath.Join(cfg.DataDir, "credential.key")
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) != credentials.ServerKeyLen {
			return nil, fmt.Errorf("credential key %s: not %d bytes of hex", path, credentials.ServerKeyLen)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	key := make([]byte, credentials.ServerKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	return key, nil
}

// redactDSN keeps passwords out of logs.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return dsn
}

// maxHeaderBytes bounds a request's header block (net/http's default is 1 MiB); API tokens and
// labels fit in far less.
const maxHeaderBytes = 64 << 10

// httpScheme is https when the REST API has a certificate.
func (c serveConfig) httpScheme() string {
	if c.HTTPTLSCert != "" {
		return "https"
	}
	return "http"
}

// checkTLS refuses half-given certificate pairs before anything starts.
func (c serveConfig) checkTLS() error {
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		return errors.New("serve: give both --http-tls-cert and --http-tls-key, or neither")
	}
	dtls := []string{c.DTLSCA, c.DTLSCert, c.DTLSKey}
	if n := len(slices.DeleteFunc(dtls, func(s string) bool { return s == "" })); n != 0 && n != 3 {
		return errors.New("serve: --dtls-ca, --dtls-cert and --dtls-key go together")
	}
	if c.DTLSCA != "" && c.CoAPSAddr == "" {
		return errors.New("serve: --dtls-ca needs DTLS: --coaps-addr is empty")
	}
	if c.CoAPSTCPAddr != "" && (c.CoAPSTCPCert == "" || c.CoAPSTCPKey == "") {
		return errors.New("serve: --coaps-tcp-addr needs --coaps-tcp-cert and --coaps-tcp-key")
	}
	return nil
}

// coapsTCPConfig loads the coaps+tcp listener's certificate and device CAs; nil without it.
func (c serveConfig) coapsTCPConfig() (*tcp.TLSConfig, error) {
	if c.CoAPSTCPAddr == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CoAPSTCPCert, c.CoAPSTCPKey)
	if err != nil {
		return nil, fmt.Errorf("serve: coaps+tcp certificate: %w", err)
	}
	tc := &tcp.TLSConfig{Certificate: cert, Name: transport.CertName(c.DTLSCertName)}
	if c.CoAPSTCPCA != "" {
		pem, err := os.ReadFile(c.CoAPSTCPCA)
		if err != nil {
			return nil, fmt.Errorf("serve: coaps+tcp ca: %w", err)
		}
		tc.ClientCAs = x509.NewCertPool()
		if !tc.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("serve: coaps+tcp ca %s: no PEM certificate", c.CoAPSTCPCA)
		}
	}
	return tc, nil
}

// checkClusterKey refuses a cluster with node-local secrets: every node must mint and verify
// download tokens and open sealed PSKs with the same keys, kept in the database under the
// cluster key.
func (c serveConfig) checkClusterKey() error {
	if c.ClusterKey == "" {
		if c.Cluster {
			return errors.New("serve: --cluster needs --cluster-key (or LWOTA_CLUSTER_KEY): 64 hex characters, the same on every node, e.g. from `openssl rand -hex 32`; node-local keys would make tokens and PSKs work on one node only")
		}
		if c.ClusterImportKeys {
			return errors.New("serve: --cluster-import-keys needs --cluster-key")
		}
		return nil
	}
	if _, err := keyring.ParseClusterKey(c.ClusterKey); err != nil {
		return fmt.Errorf("serve: --cluster-key: %w", err)
	}
	if c.CredentialKey != "" && !c.ClusterImportKeys {
		return errors.New("serve: --credential-key is a node-local key: with --cluster-key the credential key is kept in the database (use --cluster-import-keys once to move it there)")
	}
	if c.ClusterKeyPoll <= 0 {
		return errors.New("serve: --cluster-key-poll must be above 0")
	}
	return nil
}

// httpTLSConfig loads the REST API's certificate; nil without one.
func (c serveConfig) httpTLSConfig() (*tls.Config, error) {
	if c.HTTPTLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.HTTPTLSCert, c.HTTPTLSKey)
	if err != nil {
		return nil, fmt.Errorf("http tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serveHTTP serves the REST API on ln: HTTPS only when a certificate is configured (a plain
// HTTP request to it gets net/http's 400), else plain HTTP.
func (s *service) serveHTTP(ln net.Listener) error {
	if s.http.TLSConfig != nil {
		return s.http.ServeTLS(ln, "", "")
	}
	return s.http.Serve(ln)
}

// withBodyTimeout cuts off a request whose body stalls: each read of the body must bring data
// within d. The deadline moves with every read, so a slow 64 MiB upload goes through, and it is
// lifted once the body is read, so a handler that then waits (a device request, a queued write)
// or streams (server-sent events, which have no body) is never cut by it. Requests without a
// body are left alone: net/http already bounds the headers (ReadHeaderTimeout).
func withBodyTimeout(next http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(d)) != nil {
			next.ServeHTTP(w, r) // a writer without deadlines (tests): nothing to bound
			return
		}
		// A shallow copy: net/http keeps the original request, and looks at its own body type
		// after the handler to drain or drop what is left of it.
		r2 := r.WithContext(r.Context())
		r2.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: d}
		next.ServeHTTP(w, r2)
	})
}

// deadlineBody pushes the read deadline forward on each read and lifts it at the body's end. After
// a timeout the deadline stays, so that net/http's own draining of the rest fails at once too and
// the connection is closed after the answer.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	d    time.Duration
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case b.done:
	case errors.Is(err, io.EOF):
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		b.done = true
	case n > 0:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	}
	return n, err
}

// splitOrigins parses --cors-origins.
func splitOrigins(list string) []string {
	var out []string
	for _, o := range strings.Split(list, ",") {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// corsRequestHeaders are the headers a browser may send cross-origin: the API's own.
var corsRequestHeaders = []string{"Authorization", "Content-Type", api.HeaderRequestID, api.HeaderName, api.HeaderVersion,
	api.HeaderManufacturer, api.HeaderModel, api.HeaderDeviceType, api.HeaderLabels, api.HeaderTargetLabels,
	api.HeaderReleaseNotes, api.HeaderKeyID, api.HeaderSHA256, api.HeaderSignature}

// withCORS lets the listed origins call the API from a browser: their requests get
// Access-Control-Allow-Origin, their preflights (OPTIONS with Access-Control-Request-Method) are
// answered 204 here. Every other origin, and every request when the list is empty (the
// default), gets no Access-Control-* header at all, so browsers keep the same-origin policy.
// Credentials travel in the Authorization header, never in cookies, so Allow-Credentials is
// never sent.
func withCORS(next http.Handler, origins []string) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		if origin == "" || !slices.Contains(origins, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", strings.Join(corsRequestHeaders, ", "))
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", api.HeaderRequestID+", Location")
		next.ServeHTTP(w, r)
	})
}

// wakeWebhooks wakes the dispatcher at each event of a kind webhooks deliver, so a delivery
// leaves as soon as its event is stored rather than at the next poll. Events the bus drops cost
// nothing but that latency: the outbox, not the bus, is what gets delivered.
func wakeWebhooks(ctx context.Context, bus *events.Bus, d *webhooks.Dispatcher) {
	for ev := range bus.Subscribe(ctx) {
		switch ev.Type { // a registration's Updates and expiry queue nothing
		case events.TypeUpdateJob, events.TypeCampaign, events.TypeRegistered, events.TypeDeregistered:
			d.Wake()
		}
	}
}
