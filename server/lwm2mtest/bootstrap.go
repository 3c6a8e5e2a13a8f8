package lwm2mtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/codec/linkformat"
	"github.com/lwota/lwota/server/lwm2m"
)

// The client side of the LwM2M Bootstrap interface (Core §5.2, §6.1): a device that starts
// from bootstrap credentials only sends Bootstrap-Request, takes Bootstrap-Discover, -Delete,
// -Write, -Read and -Finish into its Security (0) and Server (1) objects, and then registers with
// the DM server it was given. The Execute of /1/x/9 (Bootstrap-Request Trigger) starts over.

// BootstrapConfig is how a device bootstraps.
type BootstrapConfig struct {
	// URI of the Bootstrap Server: coaps://HOST:PORT (with PSKIdentity and PSK) or coap://.
	URI         string
	PSKIdentity string
	PSK         []byte
	// PreferredFormat is sent as pct= (LwM2M 1.1+); 0 sends none.
	PreferredFormat lwm2m.ContentFormat
	// Timeout bounds one bootstrap, from the request to Finish; default 60 s.
	Timeout time.Duration

	// Faults of misbehaving clients (profiles).

	// DiscoverNotFound answers Bootstrap-Discover with 4.04.
	DiscoverNotFound bool
	// RefuseFinish answers Bootstrap-Finish with 4.06 and this diagnostic.
	RefuseFinish string
}

// FinishLinger is how long the bootstrap link stays open after Bootstrap-Finish was answered:
// longer than the server's first retransmission (ACK_TIMEOUT x ACK_RANDOM_FACTOR, 3 s), so a
// Finish whose 2.04 was lost is answered again, as a client that keeps its bootstrap session a
// moment does.
const FinishLinger = 5 * time.Second

// Provisioned is what a bootstrap gave the device: its DM server account.
type Provisioned struct {
	ServerURI    string
	SecurityMode int64 // 0 PSK, 2 Certificate, 3 NoSec
	PSKIdentity  string
	PSK          []byte
	// Certificate mode: the device's certificate (/0/x/3), private key (/0/x/5, PKCS#8) and the
	// server's certificate (/0/x/4), DER.
	Certificate       []byte
	PrivateKey        []byte
	ServerCertificate []byte
	SSID              int64
	Lifetime          time.Duration
	Binding           string
}

// Addr is the host:port of ServerURI.
func (p *Provisioned) Addr() (string, error) {
	u, err := url.Parse(p.ServerURI)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("server URI %q: not coap(s)://host:port", p.ServerURI)
	}
	return u.Host, nil
}

// BootstrapOp is one operation the Bootstrap Server ran on the device, in order (tests assert it).
type BootstrapOp struct {
	Op   string // discover, delete, write, read, finish
	Path string
}

// bsClient is the device's object model during bootstrap: instances of objects 0 and 1.
type bsClient struct {
	cfg BootstrapConfig
	log *slog.Logger

	mu       sync.Mutex
	objects  map[uint16]map[uint16]map[uint16]lwm2m.Value // object -> instance -> resource -> value
	ops      []BootstrapOp
	finished chan struct{}
	closed   bool
}

// securityTypes and serverTypes type TLV writes of objects 0 and 1.
type bsTypes struct{}

func (bsTypes) ResourceType(obj, res uint16) (lwm2m.Type, bool) {
	switch obj {
	case 0:
		switch res {
		case 0:
			return lwm2m.TypeString, true
		case 1:
			return lwm2m.TypeBoolean, true
		case 2, 10, 11, 12:
			return lwm2m.TypeInteger, true
		case 3, 4, 5:
			return lwm2m.TypeOpaque, true
		}
	case 1:
		switch res {
		case 0, 1, 2, 3, 5:
			return lwm2m.TypeInteger, true
		case 6:
			return lwm2m.TypeBoolean, true
		case 7:
			return lwm2m.TypeString, true
		}
	}
	return 0, false
}

// Bootstrap runs one client-initiated bootstrap of endpoint and returns the DM account it was
// given. previous, when not nil, is the account the device holds now (a re-bootstrap): it sits
// in /0/1 and /1/0 until the server deletes it. ops, when not nil, receives the operations run.
func Bootstrap(ctx context.Context, endpoint string, bc BootstrapConfig, previous *Provisioned, logger *slog.Logger) (*Provisioned, []BootstrapOp, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if bc.Timeout <= 0 {
		bc.Timeout = time.Minute
	}
	u, err := url.Parse(bc.URI)
	if err != nil || u.Host == "" || (u.Scheme != "coap" && u.Scheme != "coaps") {
		return nil, nil, fmt.Errorf("bootstrap: URI %q: want coap://host:port or coaps://host:port", bc.URI)
	}
	c := &bsClient{cfg: bc, log: logger.With("ep", endpoint), finished: make(chan struct{}), objects: map[uint16]map[uint16]map[uint16]lwm2m.Value{0: {}, 1: {}}}
	// The bootstrap account, which the server must leave alone.
	mode := int64(3)
	if u.Scheme == "coaps" {
		mode = 0
	}
	c.objects[0][0] = map[uint16]lwm2m.Value{0: lwm2m.String(bc.URI), 1: lwm2m.Boolean(true), 2: lwm2m.Integer(mode),
		3: lwm2m.Opaque([]byte(bc.PSKIdentity)), 5: lwm2m.Opaque(bc.PSK)}
	if previous != nil {
		c.objects[0][1] = map[uint16]lwm2m.Value{0: lwm2m.String(previous.ServerURI), 1: lwm2m.Boolean(false),
			2: lwm2m.Integer(previous.SecurityMode), 3: lwm2m.Opaque([]byte(previous.PSKIdentity)), 5: lwm2m.Opaque(previous.PSK),
			10: lwm2m.Integer(previous.SSID)}
		if previous.SecurityMode == 2 {
			c.objects[0][1][3], c.objects[0][1][4], c.objects[0][1][5] = lwm2m.Opaque(previous.Certificate), lwm2m.Opaque(previous.ServerCertificate), lwm2m.Opaque(previous.PrivateKey)
		}
		c.objects[1][0] = map[uint16]lwm2m.Value{0: lwm2m.Integer(previous.SSID), 1: lwm2m.Integer(int64(previous.Lifetime / time.Second)),
			7: lwm2m.String(previous.Binding)}
	}
	ctx, cancel := context.WithTimeout(ctx, bc.Timeout)
	defer cancel()
	// The link outlives a successful Bootstrap for FinishLinger, so that a retransmitted Finish
	// (its 2.04 lost) is answered again from the CoAP layer's cache.
	linkCtx, closeLink := context.WithCancel(context.WithoutCancel(ctx))
	router := mux.NewRouter()
	router.DefaultHandle(mux.HandlerFunc(c.serve))
	opts := []udp.Option{
		options.WithContext(linkCtx),
		options.WithMux(router),
		options.WithPeriodicRunner(periodic.New(linkCtx.Done(), 200*time.Millisecond)),
		options.WithErrors(func(err error) { c.log.Debug("bootstrap coap", "err", err) }),
	}
	var cc *client.Conn
	if u.Scheme == "coaps" {
		cc, err = dialBootstrapDTLS(ctx, u.Host, bc, opts)
	} else {
		cc, err = udp.Dial(u.Host, opts...)
	}
	if err != nil {
		closeLink()
		return nil, nil, fmt.Errorf("bootstrap %s: %w", endpoint, err)
	}
	linger := time.Duration(0)
	defer func() {
		shut := func() {
			c.mu.Lock()
			c.closed = true
			c.mu.Unlock()
			_ = cc.Close()
			closeLink()
		}
		if linger == 0 {
			shut()
			return
		}
		time.AfterFunc(linger, shut)
	}()
	q := []message.Option{uriQuery("ep=" + endpoint)}
	if bc.PreferredFormat != 0 {
		q = append(q, uriQuery("pct="+strconv.Itoa(int(bc.PreferredFormat))))
	}
	resp, err := cc.Post(ctx, "/bs", message.TextPlain, nil, q...)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap %s: request: %w", endpoint, err)
	}
	if resp.Code() != codes.Changed {
		why := ""
		if b, _ := resp.ReadBody(); len(b) > 0 {
			why = ": " + string(b)
		}
		return nil, nil, &RejectedError{Op: "bootstrap-request", Code: codeString(resp.Code()) + why}
	}
	select {
	case <-c.finished:
	case <-ctx.Done():
		return nil, c.opList(), fmt.Errorf("bootstrap %s: no Bootstrap-Finish: %w", endpoint, ctx.Err())
	}
	p, err := c.provisioned()
	if err != nil {
		return nil, c.opList(), fmt.Errorf("bootstrap %s: %w", endpoint, err)
	}
	linger = FinishLinger
	return p, c.opList(), nil
}

func dialBootstrapDTLS(ctx context.Context, host string, bc BootstrapConfig, opts []udp.Option) (*client.Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", host)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	conn, err := piondtls.ClientWithOptions(pc, raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return bc.PSK, nil }),
		piondtls.WithPSKIdentityHint([]byte(bc.PSKIdentity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dtls %s: %w", host, err)
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("dtls handshake with bootstrap server %s: %w", host, err)
	}
	return coapdtls.Client(conn, append(opts, options.WithCloseSocket())...), nil
}

func (c *bsClient) opList() []BootstrapOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ops)
}

// provisioned reads the DM account the server wrote: the non-bootstrap Security instance and
// the Server instance with its Short Server ID.
func (c *bsClient) provisioned() (*Provisioned, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, iid := range sortedKeys(c.objects[0]) {
		sec := c.objects[0][iid]
		if sec[1].Bool {
			continue
		}
		p := &Provisioned{ServerURI: sec[0].Str, SecurityMode: sec[2].Int, SSID: sec[10].Int, Binding: "U", Lifetime: 300 * time.Second}
		if p.SecurityMode == 2 {
			p.Certificate, p.PrivateKey, p.ServerCertificate = slices.Clone(sec[3].Bytes), slices.Clone(sec[5].Bytes), slices.Clone(sec[4].Bytes)
		} else {
			p.PSKIdentity, p.PSK = string(sec[3].Bytes), slices.Clone(sec[5].Bytes)
		}
		for _, srv := range c.objects[1] {
			if srv[0].Int == p.SSID {
				if lt := srv[1].Int; lt > 0 {
					p.Lifetime = time.Duration(lt) * time.Second
				}
				if b := srv[7].Str; b != "" {
					p.Binding = b
				}
			}
		}
		if p.ServerURI == "" {
			return nil, errors.New("the DM server account has no URI")
		}
		return p, nil
	}
	return nil, errors.New("no DM server account was written")
}

func sortedKeys[V any](m map[uint16]V) []uint16 {
	out := make([]uint16, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// serve answers the Bootstrap Server's requests (Core §6.1.7).
func (c *bsClient) serve(w mux.ResponseWriter, m *mux.Message) {
	if code := m.Code(); code < codes.GET || code >= 32 {
		return
	}
	raw, err := m.Options().Path()
	if err != nil {
		raw = "/"
	}
	raw = "/" + strings.TrimPrefix(raw, "/")
	var body []byte
	if m.Body() != nil {
		body, _ = m.ReadBody()
	}
	cf, accept := -1, -1
	if v, err := m.Options().ContentFormat(); err == nil {
		cf = int(v)
	}
	if v, err := m.Options().Accept(); err == nil {
		accept = int(v)
	}
	code, format, payload, after := c.handle(m.Code(), raw, cf, accept, body)
	if payload != nil {
		err = w.SetResponse(code, format, bytes.NewReader(payload))
	} else {
		err = w.SetResponse(code, message.TextPlain, nil)
	}
	if err != nil {
		return
	}
	if after != nil && !responsewriter.AfterWrite(m.Context(), after) {
		go after()
	}
}

func (c *bsClient) handle(code codes.Code, raw string, cf, accept int, body []byte) (codes.Code, message.MediaType, []byte, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	record := func(op string) { c.ops = append(c.ops, BootstrapOp{Op: op, Path: raw}) }
	switch {
	case code == codes.POST && raw == "/bs":
		record("finish")
		if c.cfg.RefuseFinish != "" {
			return codes.NotAcceptable, message.TextPlain, []byte(c.cfg.RefuseFinish), nil
		}
		done := c.finished
		return codes.Changed, 0, nil, func() {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	case code == codes.GET && (raw == "/" || accept == int(lwm2m.FormatLinkFormat)):
		record("discover")
		if c.cfg.DiscoverNotFound {
			return codes.NotFound, 0, nil, nil
		}
		return codes.Content, message.AppLinkFormat, c.discover(raw), nil
	case code == codes.GET:
		record("read")
		p, err := lwm2m.ParsePath(raw)
		if err != nil || p.Len() < 1 || p.ObjectID() != 1 {
			return codes.Unauthorized, 0, nil, nil // only the Server object may be read (Core §5.2.7.2)
		}
		var recs []lwm2m.Record
		for _, iid := range sortedKeys(c.objects[1]) {
			if p.Len() >= 2 && p.InstanceID() != iid {
				continue
			}
			for _, rid := range sortedKeys(c.objects[1][iid]) {
				recs = append(recs, lwm2m.Record{Path: lwm2m.NewPath(1, iid, rid), Value: c.objects[1][iid][rid]})
			}
		}
		if len(recs) == 0 {
			return codes.NotFound, 0, nil, nil
		}
		b, err := codec.Encode(lwm2m.FormatTLV, p, recs)
		if err != nil {
			return codes.InternalServerError, 0, nil, nil
		}
		return codes.Content, message.MediaType(lwm2m.FormatTLV), b, nil
	case code == codes.DELETE:
		record("delete")
		c.delete(raw)
		return codes.Deleted, 0, nil, nil
	case code == codes.PUT:
		record("write")
		if err := c.write(raw, cf, body); err != nil {
			c.log.Debug("bootstrap write", "path", raw, "err", err)
			return codes.BadRequest, 0, nil, nil
		}
		return codes.Changed, 0, nil, nil
	}
	return codes.MethodNotAllowed, 0, nil, nil
}

// discover lists the instances as Bootstrap-Discover does (Core §5.2.7.1): the Security
// instances with ssid and uri for DM accounts, uri only for the bootstrap account.
func (c *bsClient) discover(raw string) []byte {
	links := []linkformat.Link{{Target: "/", Params: []linkformat.Param{{Key: "lwm2m", Value: "1.1", HasValue: true}}}}
	for _, oid := range []uint16{0, 1} {
		if raw != "/" && raw != "/"+strconv.Itoa(int(oid)) {
			continue
		}
		for _, iid := range sortedKeys(c.objects[oid]) {
			res := c.objects[oid][iid]
			l := linkformat.Link{Target: fmt.Sprintf("/%d/%d", oid, iid)}
			if oid == 0 && !res[1].Bool {
				l.Params = append(l.Params, linkformat.Param{Key: "ssid", Value: strconv.FormatInt(res[10].Int, 10), HasValue: true})
			}
			if oid == 1 {
				l.Params = append(l.Params, linkformat.Param{Key: "ssid", Value: strconv.FormatInt(res[0].Int, 10), HasValue: true})
			}
			if oid == 0 {
				l.Params = append(l.Params, linkformat.Param{Key: "uri", Value: res[0].Str, HasValue: true})
			}
			links = append(links, l)
		}
	}
	return linkformat.Format(links)
}

// delete removes instances; the bootstrap account survives a Delete of "/" or "/0".
func (c *bsClient) delete(raw string) {
	p, err := lwm2m.ParsePath(raw)
	if err != nil {
		return
	}
	for _, oid := range []uint16{0, 1} {
		if p.Len() >= 1 && p.ObjectID() != oid {
			continue
		}
		for iid, res := range c.objects[oid] {
			if p.Len() >= 2 && p.InstanceID() != iid {
				continue
			}
			if oid == 0 && res[1].Bool {
				continue
			}
			delete(c.objects[oid], iid)
		}
	}
}

func (c *bsClient) write(raw string, cf int, body []byte) error {
	p, err := lwm2m.ParsePath(raw)
	if err != nil || p.Len() < 2 || p.ObjectID() > 1 {
		return fmt.Errorf("bootstrap write %s: only object instances of 0 and 1", raw)
	}
	if cf < 0 {
		cf = int(lwm2m.FormatTLV)
	}
	recs, err := codec.Decode(lwm2m.ContentFormat(cf), p, body, bsTypes{})
	if err != nil {
		return err
	}
	inst := c.objects[p.ObjectID()][p.InstanceID()]
	if inst == nil {
		inst = map[uint16]lwm2m.Value{}
		c.objects[p.ObjectID()][p.InstanceID()] = inst
	}
	for _, r := range recs {
		if r.Path.Len() >= 3 {
			inst[r.Path.ResourceID()] = r.Value
		}
	}
	return nil
}
