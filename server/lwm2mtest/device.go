package lwm2mtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwota/lwota/server/lwm2m"
)

// Errors callers branch on.
var (
	// ErrNotRegistered: Update or Deregister before a successful registration.
	ErrNotRegistered = errors.New("lwm2mtest: device not registered")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("lwm2mtest: device closed")
)

// RejectedError is a non-success answer of the server to Register, Update or De-register.
type RejectedError struct {
	Op   string // "register", "update", "deregister"
	Code string // "4.03"
	// MaxAge is the answer's Max-Age in seconds (0: none): a draining cluster node's 5.03 says
	// when to register again.
	MaxAge uint32
}

func (e *RejectedError) Error() string { return e.Op + ": server answered " + e.Code }

// DeviceConfig describes one emulated device. Zero fields take the defaults noted.
type DeviceConfig struct {
	Endpoint     string        // required
	Lifetime     time.Duration // registration lifetime; default 300 s
	Binding      string        // "U" (default) or "UQ" (queue mode)
	LwM2MVersion string        // "1.0", "1.1" (default), "1.2"
	// LocalAddr is the source address of the device's UDP socket (the kernel picks the port);
	// zero: any. Fleets emulated from several loopback addresses keep their (address, port)
	// pairs apart: a server never sees one device's source reused by another.
	LocalAddr netip.Addr
	// LocalPort is the source port of the device's first socket (Start); 0: the kernel picks.
	// A kernel hands freed ports out again, so a device may get the port another device used
	// a moment ago: a server that still sends that device's requests there reaches this one.
	LocalPort int

	Manufacturer    string // /3/0/0, default "lwota"
	Model           string // /3/0/1, default "lwm2mtest"
	SerialNumber    string // /3/0/2, default the endpoint
	FirmwareVersion string // /3/0/3, default "1.0.0"
	DeviceType      string // /3/0/17, default "simulator"

	// ContentFormats the device declares (ct= on the root link) and encodes. Default: TLV and
	// text for 1.0; SenML CBOR, SenML JSON, TLV and text for 1.1 and 1.2.
	ContentFormats []lwm2m.ContentFormat
	// DefaultFormat answers a Read or Observe without Accept. Default: TLV for 1.0, SenML CBOR
	// for 1.1+; when that is not in ContentFormats, the first of ContentFormats.
	DefaultFormat lwm2m.ContentFormat
	// Object5Version is rendered as ver= on the Object 5 link: "1.0", "1.1", "1.2"; "" omits it.
	Object5Version string

	// QueueWindow is how long a queue-mode device listens after each uplink; default 93 s.
	QueueWindow time.Duration
	// RequestTimeout bounds each uplink exchange; default 93 s (CoAP MAX_TRANSMIT_WAIT).
	RequestTimeout time.Duration
	// RegisterRetry is how long an unregistered device (its Register after a reboot failed)
	// waits before it registers again, as real clients retry (Core §6.2.1.1); default 5 s.
	RegisterRetry time.Duration
	// NonConfirmableNotifications sends notifications as NON instead of CON.
	NonConfirmableNotifications bool

	// Object 5 (Firmware Update); see fwupdate.go.

	// Delivery is /5/0/9: DeliveryPull, DeliveryPush or DeliveryBoth (default).
	Delivery string
	// Protocols is /5/0/8; default CoAP and HTTP 1.1 (0, 2). The device implements CoAP
	// (0), HTTP (2) and HTTPS (3); a URI of another listed scheme fails with Update Result 9.
	Protocols []int
	// BlockSize is the block size a CoAP pull asks for (16..1024, a power of two) and the
	// chunk an HTTP pull is read in; default 1024. A CoAP server may answer smaller blocks.
	BlockSize int
	// BlockTimeout is the first retransmission timeout of a block request, doubled for each
	// of BlockRetries retransmissions; defaults 2 s and 4 (RFC 7252 ACK_TIMEOUT,
	// MAX_RETRANSMIT).
	BlockTimeout time.Duration
	BlockRetries int
	// HTTPClient fetches http(s) URIs; default a client with a 5 minute timeout.
	HTTPClient *http.Client
	// MaxPackageSize is the largest package the device takes (Update Result 3 over it, and
	// 4.13 with Size1 on a push); default 16 MiB.
	MaxPackageSize int
	// PushShowsDownloading makes a Block1 push pass through State 1; by default the device
	// goes from 0 straight to 2, as many real clients do.
	PushShowsDownloading bool
	// StuckDownloading keeps Object 5 in State 1 (Downloading), Update Result 0, forever, as a
	// client whose download task died may: every reset (Cancel, empty Package URI or Package)
	// and every transfer is answered as usual and changes nothing (profile "stuck-downloading").
	StuckDownloading bool
	// UpdateDelay is how long the device stays Updating after Execute /5/0/2 before it
	// reboots with the new firmware; default 1 s.
	UpdateDelay time.Duration
	// UpdatedVersion gives /3/0/3 and /5/0/7 after a successful update of pkg; default
	// DefaultUpdatedVersion.
	UpdatedVersion func(pkg []byte) string
	// Faults to inject from the start; Device.SetFaults changes them at run time.
	Faults Faults
	// GoneAfterRegister makes the device go silent once registered (ProfileGoneAway).
	GoneAfterRegister bool

	// Transport is how the device reaches the server: TransportUDP (default), TransportTCP
	// (coap+tcp) or TransportTLS (coaps+tcp, with TLS); see tcp.go. Over TCP and TLS the
	// binding defaults to "T", and coap+tcp / coaps+tcp Package URIs are fetched over TCP.
	Transport string
	// TLS is the device's TLS client configuration (roots, and its certificate when the server
	// asks for one): for TransportTLS and coaps+tcp:// packages.
	TLS *tls.Config

	// PSKIdentity and PSK make the device speak CoAP over DTLS 1.2 with this pre-shared key
	// (TLS_PSK_WITH_AES_128_CCM_8): to the server (Start takes its CoAPS address), and for
	// coaps:// packages. Empty: plain CoAP, and a coaps:// Package URI fails with Update Result 9.
	PSKIdentity string
	PSK         []byte
	// ConnectionID makes the device's DTLS sessions use the connection id the server offers
	// (RFC 9146), asking for none itself, as constrained clients do; see profiles_nat.go.
	ConnectionID bool
	// CIDPaddingGranularity, above 1 with ConnectionID, pads the inner plaintext of the records
	// the device wraps for the id to a multiple of that many bytes, as mbed TLS does
	// (ProfileCIDPadded; pion pads only the handshake's, profiles_pionrec.go); 0: no padding.
	CIDPaddingGranularity int
	// RebindAfterBlocks moves a coaps:// pull's socket to a new local port after that many
	// blocks, keeping the DTLS session, as a NAT that rebinds (ProfileNATRebinding); 0: never.
	RebindAfterBlocks int
	// X509 makes the device speak DTLS with a certificate instead (Security Mode 2), as a
	// Bootstrap Server's certificate account gives it; see dtls_x509.go.
	X509 *DeviceX509
	// ClientHelloRecordVersion, when not zero, is the record-layer version the device's DTLS
	// ClientHello records carry (the ClientHello body still says DTLS 1.2), e.g. 0xfe00 as mbed
	// TLS 2.x sends with its default minimum version; see ProfileMbedTLS2RecordVersion.
	ClientHelloRecordVersion uint16

	// Habits of real clients; see profiles_send.go (ApplyProfile).

	// FirmwareBySend reports every change of /5/0/3 State and /5/0/5 Update Result with the
	// Send operation (POST /dp), besides any notifications.
	FirmwareBySend bool
	// RefuseFirmwareObserve answers Observe on Object 5 with 4.05, so that State and Update
	// Result reach the server only by Send or Read.
	RefuseFirmwareObserve bool
	// NoComposite answers Read-Composite and Write-Composite (FETCH, iPATCH) with 4.05, as a
	// 1.1 client without them does (ProfileNoComposite).
	NoComposite bool
	// EmptyDeviceType makes /3/0/17 Device Type the empty string instead of DeviceType.
	EmptyDeviceType bool

	// OnBootstrapTrigger runs (in its own goroutine, after the 2.04) when the server executes
	// /1/x/9 Bootstrap-Request Trigger; nil: the Execute is answered and does nothing. A
	// BootstrapDevice sets it to bootstrap again (bootstrap_device.go).
	OnBootstrapTrigger func()
	// BootstrapDiscoverNotFound answers Bootstrap-Discover with 4.04 (ProfileBootstrapNoDiscover),
	// BootstrapRefuseFinish answers Bootstrap-Finish with 4.06 and this diagnostic
	// (ProfileBootstrapRefuseFinish); both only matter to a BootstrapDevice.
	BootstrapDiscoverNotFound bool
	BootstrapRefuseFinish     string
}

func (c DeviceConfig) withDefaults() DeviceConfig {
	if c.Lifetime <= 0 {
		c.Lifetime = 300 * time.Second
	}
	if c.Binding == "" {
		c.Binding = "U"
		if c.stream() {
			c.Binding = "T"
		}
	}
	if c.LwM2MVersion == "" {
		c.LwM2MVersion = "1.1"
	}
	if c.Manufacturer == "" {
		c.Manufacturer = "lwota"
	}
	if c.Model == "" {
		c.Model = "lwm2mtest"
	}
	if c.SerialNumber == "" {
		c.SerialNumber = c.Endpoint
	}
	if c.FirmwareVersion == "" {
		c.FirmwareVersion = "1.0.0"
	}
	if c.DeviceType == "" {
		c.DeviceType = "simulator"
	}
	if len(c.ContentFormats) == 0 {
		if c.LwM2MVersion == "1.0" {
			c.ContentFormats = []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatText}
		} else {
			c.ContentFormats = []lwm2m.ContentFormat{lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatTLV, lwm2m.FormatText}
		}
	}
	c.ContentFormats = append([]lwm2m.ContentFormat(nil), c.ContentFormats...)
	if c.DefaultFormat == 0 {
		c.DefaultFormat = lwm2m.FormatSenMLCBOR
		if c.LwM2MVersion == "1.0" {
			c.DefaultFormat = lwm2m.FormatTLV
		}
		if !c.declares(c.DefaultFormat) {
			c.DefaultFormat = c.ContentFormats[0]
		}
	}
	if c.QueueWindow <= 0 {
		c.QueueWindow = 93 * time.Second
	}
	if c.RegisterRetry <= 0 {
		c.RegisterRetry = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 93 * time.Second
	}
	if c.Delivery == "" {
		c.Delivery = DeliveryBoth
	}
	if c.Protocols == nil {
		c.Protocols = []int{ProtoCoAP, ProtoHTTP}
	}
	c.Protocols = append([]int(nil), c.Protocols...)
	if c.BlockSize <= 0 {
		c.BlockSize = 1024
	}
	c.BlockSize = blockSize(szxOf(c.BlockSize))
	if c.BlockTimeout <= 0 {
		c.BlockTimeout = 2 * time.Second
	}
	if c.BlockRetries <= 0 {
		c.BlockRetries = 4
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Minute}
	}
	if c.MaxPackageSize <= 0 {
		c.MaxPackageSize = 16 << 20
	}
	if c.UpdateDelay <= 0 {
		c.UpdateDelay = time.Second
	}
	if c.UpdatedVersion == nil {
		c.UpdatedVersion = DefaultUpdatedVersion
	}
	c.PSK = append([]byte(nil), c.PSK...)
	return c
}

func (c DeviceConfig) declares(f lwm2m.ContentFormat) bool {
	for _, g := range c.ContentFormats {
		if g == f {
			return true
		}
	}
	return false
}

func (c DeviceConfig) queueMode() bool { return strings.Contains(c.Binding, "Q") }

// Device is one emulated LwM2M client with its own UDP socket. Its methods are safe for
// concurrent use.
type Device struct {
	cfg    DeviceConfig
	log    *slog.Logger
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	router *mux.Router
	kick   chan struct{} // reschedules the update loop

	loopOnce sync.Once
	loopDone chan struct{}

	mu              sync.Mutex
	tree            *tree
	attrs           map[lwm2m.Path]attributes
	observations    map[string]*observation // by token
	notifyMIDs      map[int32]string        // message id of a sent notification -> token
	block1          map[string]*block1Body  // request bodies arriving in blocks (block1.go)
	conn            deviceConn
	stopConn        context.CancelFunc
	server          string
	location        string
	lifetime        time.Duration
	lifetimeChanged bool // send lt= with the next Update
	objectsChanged  bool // send the object links with the next Update
	clockOffset     time.Duration
	asleep          bool
	sleepTimer      *time.Timer
	closed          bool
	fw              fwState // Object 5
	// afterAnswer holds what a Write started that must wait until the Write is answered (a
	// download: fwStartPull); write and writeComposite hand it to their response. With d.mu.
	afterAnswer []func()
	sendQ       chan struct{} // FirmwareBySend: a report to Send (profiles_send.go)
	sendDone    chan struct{} // closed when the Send goroutine has ended

	faults faultBox
	stats  stats
}

// NewDevice returns a device that is not yet connected; Start connects it. A nil logger
// discards logs.
func NewDevice(cfg DeviceConfig, logger *slog.Logger) *Device {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Device{
		cfg:          cfg,
		log:          logger.With("ep", cfg.Endpoint),
		ctx:          ctx,
		cancel:       cancel,
		kick:         make(chan struct{}, 1),
		loopDone:     make(chan struct{}),
		tree:         newTree(cfg),
		attrs:        map[lwm2m.Path]attributes{},
		observations: map[string]*observation{},
		notifyMIDs:   map[int32]string{},
		block1:       map[string]*block1Body{},
		lifetime:     cfg.Lifetime,
	}
	d.faults.set(cfg.Faults)
	d.startSender()
	d.router = mux.NewRouter()
	d.router.SetErrorHandler(func(err error) { d.log.Debug("coap router", "err", err) })
	d.router.DefaultHandle(mux.HandlerFunc(d.serveCOAP))
	return d
}

// Endpoint is the device's endpoint name.
func (d *Device) Endpoint() string { return d.cfg.Endpoint }

// Start dials the server (its CoAPS address, for a device with a PSK) from a new UDP socket
// (port 0), registers and starts sending Updates before the lifetime runs out. ctx bounds the
// registration only; the device keeps running until Close.
func (d *Device) Start(ctx context.Context, server string) error {
	if d.cfg.Endpoint == "" {
		return errors.New("lwm2mtest: start: endpoint required")
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.conn != nil {
		d.mu.Unlock()
		return fmt.Errorf("start %s: already started", d.cfg.Endpoint)
	}
	d.server = server
	d.mu.Unlock()
	if err := d.connect(0); err != nil {
		return fmt.Errorf("start %s: %w", d.cfg.Endpoint, err)
	}
	if err := d.register(ctx); err != nil {
		return fmt.Errorf("start %s: %w", d.cfg.Endpoint, err)
	}
	d.loopOnce.Do(func() { go d.updateLoop() })
	return nil
}

// connect dials a new socket and makes it current. It retries a few times when the kernel
// hands back avoidPort, so a reboot is seen from a new source port.
func (d *Device) connect(avoidPort int) error {
	d.mu.Lock()
	server := d.server
	d.mu.Unlock()
	for range 5 {
		connCtx, stop := context.WithCancel(d.ctx)
		opts := []udp.Option{
			options.WithContext(connCtx),
			options.WithMux(d.router),
			options.WithBlockwise(false, blockwise.SZX1024, 3*time.Second),
			options.WithPeriodicRunner(periodic.New(connCtx.Done(), 200*time.Millisecond)),
			options.WithRequestMonitor(d.monitor),
			options.WithErrors(func(err error) { d.log.Debug("coap", "err", err) }),
		}
		var cc deviceConn
		var err error
		switch {
		case d.cfg.stream():
			cc, err = d.dialTCP(connCtx, server)
		case d.secure():
			cc, err = d.dialCoAPS(connCtx, server, d.localUDPAddr(avoidPort), opts)
		default:
			if la := d.localUDPAddr(avoidPort); la != nil {
				opts = append(opts, options.WithDialer(&net.Dialer{LocalAddr: la}))
			}
			cc, err = udp.Dial(server, opts...)
		}
		if err != nil {
			stop()
			return fmt.Errorf("dial %s: %w", server, err)
		}
		if port(cc.LocalAddr()) == avoidPort {
			_ = cc.Close()
			stop()
			continue
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			_ = cc.Close()
			stop()
			return ErrClosed
		}
		d.conn, d.stopConn = cc, stop
		d.mu.Unlock()
		return nil
	}
	return fmt.Errorf("dial %s: kernel kept giving port %d", server, avoidPort)
}

// localUDPAddr is the local address of a new UDP socket: LocalAddr, and LocalPort for the
// first socket (avoidPort 0; a reboot's socket gets another port); nil when neither is set.
func (d *Device) localUDPAddr(avoidPort int) *net.UDPAddr {
	p := 0
	if avoidPort == 0 {
		p = d.cfg.LocalPort
	}
	if !d.cfg.LocalAddr.IsValid() && p == 0 {
		return nil
	}
	return &net.UDPAddr{IP: d.cfg.LocalAddr.AsSlice(), Port: p}
}

func port(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	if u, ok := a.(*net.UDPAddr); ok {
		return u.Port
	}
	return 0
}

// LocalAddr is the address of the device's current socket; nil before Start.
func (d *Device) LocalAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	return d.conn.LocalAddr()
}

// Location is the registration's location ("/rd/xyz") as the server assigned it; "" when
// not registered.
func (d *Device) Location() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.location
}

func (d *Device) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	stop := context.AfterFunc(d.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (d *Device) currentConn() (deviceConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if d.conn == nil {
		return nil, ErrNotRegistered
	}
	return d.conn, nil
}

func uriQuery(q string) message.Option { return message.Option{ID: message.URIQuery, Value: []byte(q)} }

// register sends Register (LwM2M Core §6.2.1) and remembers the location.
func (d *Device) register(ctx context.Context) error {
	cc, err := d.currentConn()
	if err != nil {
		return err
	}
	d.mu.Lock()
	lt := d.lifetime
	links := d.objectLinks()
	d.mu.Unlock()
	q := []message.Option{
		uriQuery("ep=" + d.cfg.Endpoint),
		uriQuery("lt=" + strconv.Itoa(int(lt/time.Second))),
		uriQuery("lwm2m=" + d.cfg.LwM2MVersion),
	}
	switch {
	case d.cfg.LwM2MVersion == "1.0":
		q = append(q, uriQuery("b="+d.cfg.Binding))
	case d.cfg.queueMode():
		q = append(q, uriQuery("b="+strings.ReplaceAll(d.cfg.Binding, "Q", "")), uriQuery("Q"))
	default:
		q = append(q, uriQuery("b="+d.cfg.Binding))
	}
	rctx, cancel := d.requestContext(ctx)
	defer cancel()
	d.wake()
	resp, err := cc.Post(rctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte(links)), q...)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if resp.Code() != codes.Created {
		age, _ := resp.Options().GetUint32(message.MaxAge)
		return &RejectedError{Op: "register", Code: codeString(resp.Code()), MaxAge: age}
	}
	loc, err := resp.Options().LocationPath()
	if err != nil || loc == "" {
		return errors.New("register: answer has no Location-Path")
	}
	d.mu.Lock()
	d.location = loc
	d.lifetimeChanged, d.objectsChanged = false, false
	d.mu.Unlock()
	d.stats.add(func(s *Stats) { s.Registrations++ })
	d.log.Debug("registered", "location", loc)
	if d.cfg.GoneAfterRegister {
		d.GoSilent()
	}
	d.reschedule()
	d.flushPending()
	return nil
}

// Update sends a registration Update (POST to the location) with lt= or the object links
// when they changed since the last one. A server that forgot the registration (4.04) gets a
// new Register.
func (d *Device) Update(ctx context.Context) error {
	cc, err := d.currentConn()
	if err != nil {
		return err
	}
	d.mu.Lock()
	loc, lt, sendLt, sendLinks := d.location, d.lifetime, d.lifetimeChanged, d.objectsChanged
	links := d.objectLinks()
	d.mu.Unlock()
	if loc == "" {
		return ErrNotRegistered
	}
	var q []message.Option
	if sendLt {
		q = append(q, uriQuery("lt="+strconv.Itoa(int(lt/time.Second))))
	}
	rctx, cancel := d.requestContext(ctx)
	defer cancel()
	d.wake()
	var resp *pool.Message
	if sendLinks {
		resp, err = cc.Post(rctx, loc, message.AppLinkFormat, bytes.NewReader([]byte(links)), q...)
	} else {
		resp, err = cc.Post(rctx, loc, message.AppLinkFormat, nil, q...)
	}
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	switch resp.Code() {
	case codes.Changed:
	case codes.NotFound:
		d.log.Info("server forgot the registration, registering again")
		return d.register(ctx)
	default:
		return &RejectedError{Op: "update", Code: codeString(resp.Code())}
	}
	d.mu.Lock()
	if sendLt {
		d.lifetimeChanged = false
	}
	if sendLinks {
		d.objectsChanged = false
	}
	d.mu.Unlock()
	d.stats.add(func(s *Stats) { s.Updates++ })
	d.reschedule()
	d.flushPending()
	return nil
}

// triggerUpdate sends an Update in the background (Registration Update Trigger, a new
// lifetime, a created or deleted instance).
func (d *Device) triggerUpdate() {
	go func() {
		if err := d.Update(d.ctx); err != nil && !errors.Is(err, ErrClosed) {
			d.log.Warn("update", "err", err)
		}
	}()
}

// Deregister sends De-register (DELETE to the location) and stops the Updates. The socket
// stays open until Close.
func (d *Device) Deregister(ctx context.Context) error {
	cc, err := d.currentConn()
	if err != nil {
		return err
	}
	loc := d.Location()
	if loc == "" {
		return ErrNotRegistered
	}
	rctx, cancel := d.requestContext(ctx)
	defer cancel()
	d.wake()
	resp, err := cc.Delete(rctx, loc)
	if err != nil {
		return fmt.Errorf("deregister: %w", err)
	}
	if resp.Code() != codes.Deleted {
		return &RejectedError{Op: "deregister", Code: codeString(resp.Code())}
	}
	d.mu.Lock()
	d.location = ""
	d.dropObservations()
	d.mu.Unlock()
	d.stats.add(func(s *Stats) { s.Deregistrations++ })
	return nil
}

// Reboot drops the socket and every observation, as a device that restarts does, then
// comes back from a new source port and registers again without de-registering.
func (d *Device) Reboot(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.location = ""
	d.fwOnReboot()
	d.dropObservations()
	d.asleep = false
	d.mu.Unlock()
	d.stats.add(func(s *Stats) { s.Reboots++ })
	if err := d.redial(); err != nil {
		return fmt.Errorf("reboot %s: %w", d.cfg.Endpoint, err)
	}
	err := d.register(ctx)
	d.loopOnce.Do(func() { go d.updateLoop() }) // it registers again if this Register failed
	if err != nil {
		d.reschedule() // the loop's next turn is a Register, RegisterRetry from now
		return fmt.Errorf("reboot %s: %w", d.cfg.Endpoint, err)
	}
	return nil
}

// redial replaces the device's socket with a new one from another source port.
func (d *Device) redial() error {
	d.mu.Lock()
	old, stop := d.conn, d.stopConn
	d.conn, d.stopConn = nil, nil
	d.mu.Unlock()
	oldPort := 0
	if old != nil {
		oldPort = port(old.LocalAddr())
		_ = old.Close()
		stop()
	}
	return d.connect(oldPort)
}

// Close stops the device without de-registering (power off). It is idempotent.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	cc, stop := d.conn, d.stopConn
	d.conn = nil
	d.dropObservations()
	if d.sleepTimer != nil {
		d.sleepTimer.Stop()
	}
	d.mu.Unlock()
	d.cancel()
	var err error
	if cc != nil {
		err = cc.Close()
		stop()
	}
	d.loopOnce.Do(func() { close(d.loopDone) }) // the update loop never started
	<-d.loopDone
	<-d.sendDone
	return err
}

// updateDelay is when the next Update is due: at 90 % of the lifetime, and at least 10 s
// before it ends when the lifetime allows.
func updateDelay(lt time.Duration) time.Duration {
	delay := lt * 9 / 10
	if lt > 20*time.Second && lt-10*time.Second < delay {
		delay = lt - 10*time.Second
	}
	return max(delay, 100*time.Millisecond)
}

func (d *Device) reschedule() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Device) updateLoop() {
	defer close(d.loopDone)
	d.mu.Lock()
	lt := d.lifetime
	d.mu.Unlock()
	t := time.NewTimer(updateDelay(lt))
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.kick:
		case <-t.C:
			if d.Location() == "" {
				// A socket that met a closed port is done for: register from a new one.
				err := d.redial()
				if err == nil {
					err = d.register(d.ctx)
				}
				if err != nil && d.ctx.Err() == nil {
					d.log.Info("register again", "err", err)
				}
			} else if d.faults.get().NoUpdates {
				d.log.Debug("update not sent (fault)")
			} else if err := d.Update(d.ctx); err != nil && d.ctx.Err() == nil {
				d.log.Warn("update", "err", err)
				if err := d.register(d.ctx); err != nil && d.ctx.Err() == nil {
					d.log.Warn("register", "err", err)
					d.mu.Lock()
					d.location = "" // unregistered: the next turn registers from a new socket
					d.mu.Unlock()
				}
			}
		}
		d.mu.Lock()
		lt = d.lifetime
		d.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		next := updateDelay(lt)
		if d.Location() == "" {
			next = d.cfg.RegisterRetry
		}
		t.Reset(next)
	}
}

// Queue mode (LwM2M Core §6.5): a device in queue mode listens for QueueWindow after each
// uplink, then sleeps; requests reaching it while it sleeps are dropped unanswered and
// notifications wait until it wakes.

// wake marks the device awake at an uplink and restarts the queue window.
func (d *Device) wake() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asleep = false
	if !d.cfg.queueMode() || d.closed {
		return
	}
	if d.sleepTimer != nil {
		d.sleepTimer.Stop()
	}
	d.sleepTimer = time.AfterFunc(d.cfg.QueueWindow, func() {
		d.mu.Lock()
		d.asleep = true
		d.mu.Unlock()
		d.log.Debug("queue window over, sleeping")
	})
}

// Sleep makes the device stop listening now, as at the end of its queue window. It works
// for any binding, to emulate an unreachable device.
func (d *Device) Sleep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asleep = true
	if d.sleepTimer != nil {
		d.sleepTimer.Stop()
	}
}

// Wake wakes the device with an Update, as a queue-mode device does at the end of its
// sleep, and then sends the notifications held while it slept.
func (d *Device) Wake(ctx context.Context) error { return d.Update(ctx) }

// Asleep reports whether the device is currently ignoring requests.
func (d *Device) Asleep() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asleep
}

// monitor sees every datagram before go-coap handles it: it drops requests while asleep and
// turns a Reset answering a notification into a cancelled observation.
func (d *Device) monitor(_ *client.Conn, m *pool.Message) (bool, error) {
	if d.dropIncoming(m) {
		return true, nil
	}
	if m.Type() == message.Reset {
		d.mu.Lock()
		if tok, ok := d.notifyMIDs[m.MessageID()]; ok {
			d.cancelObservation(tok)
			d.stats.add(func(s *Stats) { s.Requests[OpCancelObserve]++ })
		}
		d.mu.Unlock()
		return false, nil
	}
	if c := m.Code(); c >= codes.GET && c < 32 {
		d.mu.Lock()
		asleep := d.asleep
		d.mu.Unlock()
		if asleep {
			d.stats.add(func(s *Stats) { s.Dropped++ })
			return true, nil
		}
	}
	return false, nil
}

// Value returns the current value of a resource or resource instance (tests assert writes
// with it).
func (d *Device) Value(p lwm2m.Path) (lwm2m.Value, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Len() < 3 {
		return lwm2m.Value{}, false
	}
	_, in, rd, err := d.tree.lookup(p)
	if err != nil || rd.ops&opE != 0 {
		return lwm2m.Value{}, false
	}
	if rd.read != nil {
		return rd.read(d, p)
	}
	if !rd.multiple {
		v, ok := in.single[rd.id]
		return v, ok
	}
	if p.Len() != 4 {
		return lwm2m.Value{}, false
	}
	v, ok := in.multiple[rd.id][p.ResourceInstanceID()]
	return v, ok
}

// SetValue changes a resource (or resource instance) value as the device's own firmware
// would, creating the instance and resource when missing, and notifies the observers whose
// attributes allow it.
func (d *Device) SetValue(p lwm2m.Path, v lwm2m.Value) {
	if p.Len() < 3 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.tree.objects[p.ObjectID()]
	if !ok {
		d.tree.addObject(newObjectDef(p.ObjectID(), "", false))
		o = d.tree.objects[p.ObjectID()]
		d.objectsChanged = true
	}
	in, ok := o.instances[p.InstanceID()]
	if !ok {
		in = newInstance()
		o.instances[p.InstanceID()] = in
		d.objectsChanged = true
	}
	rd, ok := o.def.resources[p.ResourceID()]
	if !ok {
		rd = &resourceDef{id: p.ResourceID(), typ: v.Type, ops: opR, multiple: p.Len() == 4}
		o.def.resources[rd.id] = rd
	}
	in.set(rd, p, v)
	d.changed(p)
}

func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)
}
