package lwm2mtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/lwota/lwota/server/lwm2m"
)

// Object 5 State (/5/0/3) values (LwM2M Core appendix E.6).
const (
	FWIdle        = 0
	FWDownloading = 1
	FWDownloaded  = 2
	FWUpdating    = 3
)

// Object 5 Update Result (/5/0/5) values.
const (
	FWResultInitial            = 0
	FWResultSuccess            = 1
	FWResultNotEnoughFlash     = 2
	FWResultOutOfRAM           = 3
	FWResultConnectionLost     = 4
	FWResultIntegrityFailure   = 5
	FWResultUnsupportedPackage = 6
	FWResultInvalidURI         = 7
	FWResultUpdateFailed       = 8
	FWResultUnsupportedProto   = 9
	FWResultCancelled          = 10 // Object 5 1.1+
	FWResultDeferred           = 11 // Object 5 1.1+
)

// /5/0/8 Firmware Update Protocol Support values.
const (
	ProtoCoAP    = 0
	ProtoCoAPS   = 1
	ProtoHTTP    = 2
	ProtoHTTPS   = 3
	ProtoCoAPTCP = 4
	ProtoCoAPTLS = 5
)

// Delivery methods (/5/0/9), for DeviceConfig.Delivery.
const (
	DeliveryPull = "pull" // 0
	DeliveryPush = "push" // 1
	DeliveryBoth = "both" // 2, the default
)

var fwStatePath, fwResultPath = lwm2m.NewPath(5, 0, 3), lwm2m.NewPath(5, 0, 5)

// fwState is the Object 5 machinery behind the resources; guarded by Device.mu.
type fwState struct {
	gen     uint64             // bumped by every start, reset and cancel: stale work checks it
	cancel  context.CancelFunc // the download in progress
	uri     string             // the URI of partial
	partial []byte             // bytes of uri so far, kept across failures and reboots for a resume
	pkg     []byte             // the complete package while Downloaded

	pushing bool   // a Block1 push is in progress
	pushBuf []byte // what it received so far
}

func deliveryValue(s string) int64 {
	switch s {
	case DeliveryPull:
		return 0
	case DeliveryPush:
		return 1
	}
	return 2
}

// DefaultUpdatedVersion is the version a device reports after installing pkg when
// DeviceConfig.UpdatedVersion is nil. Like a real device it reports the version its image
// carries: an MCUboot image's header version (ih_ver, as "major.minor.revision", with
// "+build" when the build number is not 0, which is how lwota's uploads declare it), else the
// rest of the first line when the package starts with "LWOTA-FW " (a stand-in build for
// shell examples), else "updated-" and the first 8 hex digits of its SHA-256.
func DefaultUpdatedVersion(pkg []byte) string {
	if v, ok := mcubootVersion(pkg); ok {
		return v
	}
	if rest, ok := bytes.CutPrefix(pkg, []byte("LWOTA-FW ")); ok {
		line, _, _ := bytes.Cut(rest, []byte("\n"))
		if v := strings.TrimSpace(string(line)); v != "" {
			return v
		}
	}
	sum := sha256.Sum256(pkg)
	return "updated-" + hex.EncodeToString(sum[:4])
}

// mcubootMagic starts an MCUboot image header (IMAGE_MAGIC, little-endian).
const mcubootMagic = 0x96f3b83d

// mcubootVersion reads ih_ver from an MCUboot image header: magic (4 bytes), load address (4),
// header size (2), protected TLV size (2), image size (4), flags (4), then major (1), minor (1),
// revision (2) and build number (4), little-endian.
func mcubootVersion(pkg []byte) (string, bool) {
	if len(pkg) < 28 || binary.LittleEndian.Uint32(pkg) != mcubootMagic {
		return "", false
	}
	v := fmt.Sprintf("%d.%d.%d", pkg[20], pkg[21], binary.LittleEndian.Uint16(pkg[22:]))
	if build := binary.LittleEndian.Uint32(pkg[24:]); build != 0 {
		v += fmt.Sprintf("+%d", build)
	}
	return v, true
}

// FirmwareState returns /5/0/3 and /5/0/5.
func (d *Device) FirmwareState() (state, result int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := d.tree.objects[5].instances[0]
	return in.single[3].Int, in.single[5].Int
}

// fwSet changes State and Update Result and notifies their observers; with d.mu held.
func (d *Device) fwSet(state, result int64) {
	if d.cfg.StuckDownloading {
		state, result = FWDownloading, FWResultInitial // answers everything, changes nothing
	}
	in := d.tree.objects[5].instances[0]
	def := d.tree.objects[5].def
	changed := false
	if in.single[3].Int != state {
		in.set(def.resources[3], fwStatePath, lwm2m.Integer(state))
		d.changed(fwStatePath)
		changed = true
	}
	if in.single[5].Int != result {
		in.set(def.resources[5], fwResultPath, lwm2m.Integer(result))
		d.changed(fwResultPath)
		changed = true
	}
	if changed {
		d.queueFirmwareReport()
	}
	d.log.Debug("firmware", "state", state, "result", result)
}

func (d *Device) fwStateNow() int64 { return d.tree.objects[5].instances[0].single[3].Int }

// fwStop stops the download or push in progress; with d.mu held.
func (d *Device) fwStop() {
	d.fw.gen++
	if d.fw.cancel != nil {
		d.fw.cancel()
		d.fw.cancel = nil
	}
	d.fw.pushing, d.fw.pushBuf = false, nil
}

// fwReset is the reset an empty Package or Package URI asks for; with d.mu held.
func (d *Device) fwReset() error {
	if d.fwStateNow() == FWUpdating {
		return errMethodNotAllowed
	}
	d.fwStop()
	d.fw.partial, d.fw.uri, d.fw.pkg = nil, "", nil
	d.fwSet(FWIdle, FWResultInitial)
	return nil
}

// fwOnReboot is what any reboot does to Object 5; with d.mu held. A download stops with
// "connection lost" and keeps its bytes; a downloaded package stays downloaded.
func (d *Device) fwOnReboot() {
	switch d.fwStateNow() {
	case FWDownloading:
		d.fwStop()
		d.fwSet(FWIdle, FWResultConnectionLost)
	}
}

func writePackageURI(d *Device, _ lwm2m.Path, v lwm2m.Value) error {
	if v.Str == "" {
		return d.fwReset()
	}
	if d.cfg.Delivery == DeliveryPush || d.fwStateNow() == FWUpdating {
		return errMethodNotAllowed
	}
	if d.fwStateNow() == FWDownloading && v.Str == d.fw.uri {
		d.log.Debug("package URI written: already fetching it")
		return nil // already fetching it
	}
	d.log.Debug("package URI written", "state", d.fwStateNow(), "same_uri", v.Str == d.fw.uri, "have", len(d.fw.partial))
	d.fwStartPull(v.Str)
	return nil
}

func schemeProtocol(scheme string) (int, bool) {
	switch scheme {
	case "coap":
		return ProtoCoAP, true
	case "coaps":
		return ProtoCoAPS, true // with a PSK only (fwStartPull)
	case "http":
		return ProtoHTTP, true
	case "https":
		return ProtoHTTPS, true
	case "coap+tcp":
		return ProtoCoAPTCP, true // tcp.go
	case "coaps+tcp":
		return ProtoCoAPTLS, true // with DeviceConfig.TLS only (fwStartPull)
	}
	return -1, false
}

// fwStartPull starts downloading uri; with d.mu held.
func (d *Device) fwStartPull(uri string) {
	d.fwStop()
	d.fw.pkg = nil
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		d.log.Info("firmware package URI refused", "uri", uri, "err", err)
		d.fwSet(FWIdle, FWResultInvalidURI)
		return
	}
	proto, implemented := schemeProtocol(u.Scheme)
	if proto < 0 {
		d.fwSet(FWIdle, FWResultInvalidURI)
		return
	}
	if (proto == ProtoCoAPS && !d.secure()) || (proto == ProtoCoAPTLS && d.cfg.TLS == nil) {
		implemented = false
	}
	if !implemented || !slices.Contains(d.cfg.Protocols, proto) {
		d.fwSet(FWIdle, FWResultUnsupportedProto)
		return
	}
	if d.faults.get().OutOfRAM {
		d.fwSet(FWIdle, FWResultOutOfRAM)
		return
	}
	if uri != d.fw.uri {
		d.fw.uri, d.fw.partial = uri, nil
	}
	d.fwSet(FWDownloading, FWResultInitial)
	d.stats.add(func(s *Stats) { s.DownloadsStarted++ })
	ctx, cancel := context.WithCancel(d.ctx)
	d.fw.cancel = cancel
	gen, offset := d.fw.gen, len(d.fw.partial)
	// The download starts once the Write of the URI is answered, as a real client's does (it
	// acknowledges the Write, then its download task runs). Started at once, a download that
	// rebooted the device (RebootAfterBlocks) could close its socket before the answer went
	// out: the server's Write timed out (TestFirmwareRebootMidDownload, in CI under load).
	d.afterAnswer = append(d.afterAnswer, func() { go d.fwPull(ctx, gen, proto, u, offset) })
}

// fwPull downloads u from offset, for generation gen, and ends the download with its outcome.
func (d *Device) fwPull(ctx context.Context, gen uint64, proto int, u *url.URL, offset int) {
	var err error
	switch proto {
	case ProtoCoAP, ProtoCoAPS:
		err = d.fetchCoAP(ctx, gen, u, offset)
	case ProtoCoAPTCP, ProtoCoAPTLS:
		err = d.fetchCoAPTCP(ctx, gen, u, offset)
	default:
		err = d.fetchHTTP(ctx, gen, u, offset)
	}
	d.fwPullDone(gen, err)
}

// answered hands resp what the request's Writes left to run once it is answered; with d.mu.
func (d *Device) answered(resp response) response {
	if len(d.afterAnswer) == 0 {
		return resp
	}
	fns, prev := d.afterAnswer, resp.after
	d.afterAnswer = nil
	resp.after = func() {
		if prev != nil {
			prev()
		}
		for _, fn := range fns {
			fn()
		}
	}
	return resp
}

// fwAppend stores bytes fetched at offset; it fails when the download is stale or the
// package grows over MaxPackageSize. offset 0 with data kept starts over.
func (d *Device) fwAppend(gen uint64, offset int, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.fw.gen {
		return context.Canceled
	}
	if offset == 0 {
		d.fw.partial = d.fw.partial[:0]
	}
	if offset != len(d.fw.partial) {
		return fmt.Errorf("%w: block at %d, have %d bytes", errLinkLost, offset, len(d.fw.partial))
	}
	if len(d.fw.partial)+len(data) > d.cfg.MaxPackageSize {
		return errTooLarge
	}
	d.fw.partial = append(d.fw.partial, data...)
	d.stats.add(func(s *Stats) { s.BlocksFetched++; s.BytesDownloaded += uint64(len(data)) })
	return nil
}

// fwPullDone ends a download with its outcome.
func (d *Device) fwPullDone(gen uint64, err error) {
	d.mu.Lock()
	if gen != d.fw.gen {
		d.mu.Unlock()
		return // cancelled, reset or replaced: whoever did it set the state
	}
	if d.fw.cancel != nil {
		d.fw.cancel()
		d.fw.cancel = nil
	}
	reboot := false
	switch {
	case err == nil:
		pkg := d.fw.partial
		d.fw.partial, d.fw.uri = nil, ""
		d.fwComplete(pkg)
	case errors.Is(err, errTooLarge):
		d.fw.partial, d.fw.uri = nil, ""
		d.fwSet(FWIdle, FWResultOutOfRAM)
	case errors.Is(err, errInvalidURI):
		d.log.Info("firmware download failed", "err", err, "uri", d.fw.uri)
		d.fw.partial, d.fw.uri = nil, ""
		d.fwSet(FWIdle, FWResultInvalidURI)
	case errors.Is(err, errRebootFault):
		d.fwSet(FWIdle, FWResultConnectionLost)
		reboot = true
	default:
		d.log.Info("firmware download failed", "err", err, "uri", d.fw.uri, "have", len(d.fw.partial))
		d.fwSet(FWIdle, FWResultConnectionLost)
	}
	d.mu.Unlock()
	if reboot {
		if err := d.Reboot(d.ctx); err != nil && d.ctx.Err() == nil {
			d.log.Warn("reboot", "err", err)
		}
	}
}

// fwComplete checks a complete package (pull or push) and makes it Downloaded; with d.mu
// held.
func (d *Device) fwComplete(pkg []byte) {
	f := d.faults.get()
	switch {
	case f.IntegrityFailure:
		d.fwSet(FWIdle, FWResultIntegrityFailure)
	case f.UnsupportedPackage:
		d.fwSet(FWIdle, FWResultUnsupportedPackage)
	default:
		d.fw.pkg = pkg
		d.stats.add(func(s *Stats) { s.ImagesReceived++ })
		d.fwSet(FWDownloaded, FWResultInitial)
	}
}

func executeFirmwareUpdate(d *Device, _ lwm2m.Path, _ string) (func(), error) {
	if d.fwStateNow() != FWDownloaded || d.faults.refuseExecute() {
		return nil, errMethodNotAllowed
	}
	if d.faults.ignoreExecute() {
		return nil, nil
	}
	d.fwSet(FWUpdating, FWResultInitial)
	gen := d.fw.gen
	return func() { go d.applyUpdate(gen) }, nil
}

// applyUpdate installs the downloaded package after UpdateDelay: the device reboots from a
// new source port without de-registering and reports the new version.
func (d *Device) applyUpdate(gen uint64) {
	t := time.NewTimer(d.cfg.UpdateDelay)
	select {
	case <-d.ctx.Done():
		t.Stop()
		return
	case <-t.C:
	}
	d.mu.Lock()
	if gen != d.fw.gen || d.fwStateNow() != FWUpdating {
		d.mu.Unlock()
		return
	}
	if d.faults.get().UpdateFailure {
		d.fwSet(FWDownloaded, FWResultUpdateFailed)
		d.mu.Unlock()
		d.stats.add(func(s *Stats) { s.UpdatesFailed++ })
		return
	}
	version := d.cfg.UpdatedVersion(d.fw.pkg)
	d.fw.pkg = nil
	dev, fw := d.tree.objects[3], d.tree.objects[5]
	dev.instances[0].set(dev.def.resources[3], lwm2m.NewPath(3, 0, 3), lwm2m.String(version))
	fw.instances[0].set(fw.def.resources[7], lwm2m.NewPath(5, 0, 7), lwm2m.String(version))
	d.changed(lwm2m.NewPath(3, 0, 3))
	d.changed(lwm2m.NewPath(5, 0, 7))
	d.fwSet(FWIdle, FWResultSuccess)
	d.mu.Unlock()
	d.stats.add(func(s *Stats) { s.UpdatesApplied++ })
	d.log.Info("firmware updated, rebooting", "version", version)
	if err := d.Reboot(d.ctx); err != nil && d.ctx.Err() == nil {
		d.log.Warn("reboot after update", "err", err)
	}
}

func executeFirmwareCancel(d *Device, _ lwm2m.Path, _ string) (func(), error) {
	switch d.fwStateNow() {
	case FWDownloading, FWDownloaded:
	default:
		return nil, errMethodNotAllowed
	}
	d.fwStop()
	d.fw.partial, d.fw.uri, d.fw.pkg = nil, "", nil
	d.fwSet(FWIdle, FWResultCancelled)
	return nil, nil
}

// Push (Core E.6: the server writes the package to /5/0/0), received block by block
// (RFC 7959 Block1) by hand.

func blockSize(szx blockwise.SZX) int { return 16 << uint(szx) }

// push answers a Write to /5/0/0, with or without Block1.
func (d *Device) push(r *request) response {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.cf >= 0 && r.cf != int(lwm2m.FormatOpaque) {
		return errorResponse(errUnsupportedCF)
	}
	if r.block1 < 0 { // one datagram: the whole package, or empty for a reset
		if len(r.body) == 0 {
			if err := d.fwReset(); err != nil {
				return errorResponse(err)
			}
			return response{code: codes.Changed, observe: -1}
		}
		r.block1 = 0 // num 0, szx 0, no more
	}
	if d.cfg.Delivery == DeliveryPull || d.fwStateNow() == FWUpdating {
		return errorResponse(errMethodNotAllowed)
	}
	szx, num, more, err := blockwise.DecodeBlockOption(uint32(r.block1))
	if err != nil || szx > blockwise.SZX1024 {
		return errorResponse(errBadRequest)
	}
	size := blockSize(szx)
	tooLarge := func() response {
		d.fwStop()
		d.fwSet(FWIdle, FWResultOutOfRAM)
		return response{code: codes.RequestEntityTooLarge, observe: -1,
			opts: []message.Option{uintOption(message.Size1, uint32(d.cfg.MaxPackageSize))}}
	}
	if num == 0 && !(d.fw.pushing && len(d.fw.pushBuf) == len(r.body) && more) {
		if r.size1 > int64(d.cfg.MaxPackageSize) {
			return tooLarge()
		}
		d.fwStop()
		d.fw.pkg, d.fw.partial, d.fw.uri = nil, nil, ""
		d.fw.pushing = true
		d.stats.add(func(s *Stats) { s.DownloadsStarted++ })
		if d.cfg.PushShowsDownloading {
			d.fwSet(FWDownloading, FWResultInitial)
		} else {
			d.fwSet(FWIdle, FWResultInitial) // many clients go from 0 straight to 2
		}
	}
	if !d.fw.pushing {
		return response{code: codes.RequestEntityIncomplete, observe: -1}
	}
	off := int(num) * size
	switch {
	case off == len(d.fw.pushBuf):
		if off+len(r.body) > d.cfg.MaxPackageSize {
			return tooLarge()
		}
		if more && len(r.body) != size {
			return errorResponse(errBadRequest) // only the last block may be short
		}
		d.fw.pushBuf = append(d.fw.pushBuf, r.body...)
		d.stats.add(func(s *Stats) { s.BlocksFetched++; s.BytesDownloaded += uint64(len(r.body)) })
	case off+len(r.body) == len(d.fw.pushBuf) && off < len(d.fw.pushBuf):
		// the last block again (a retransmission with a new message id): acknowledge it again
	default:
		return response{code: codes.RequestEntityIncomplete, observe: -1}
	}
	echo, _ := blockwise.EncodeBlockOption(szx, num, more)
	opts := []message.Option{uintOption(message.Block1, echo)}
	if delay := d.faults.get().BlockDelay; delay > 0 {
		time.Sleep(delay) // a device slow to write flash answers each block late
	}
	if more {
		return response{code: codes.Continue, observe: -1, opts: opts}
	}
	pkg := d.fw.pushBuf
	d.fw.pushing, d.fw.pushBuf = false, nil
	d.fwComplete(pkg)
	return response{code: codes.Changed, observe: -1, opts: opts}
}

func uintOption(id message.OptionID, v uint32) message.Option {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	i := 0
	for i < 4 && b[i] == 0 {
		i++
	}
	return message.Option{ID: id, Value: append([]byte(nil), b[i:]...)}
}

// Pull over CoAP: Block2 GETs by hand on a socket of the fetcher's own (coaps://: a DTLS
// session of its own, with the device's PSK), one block per exchange, each CON retransmitted
// with exponential backoff (RFC 7252 §4.2), a new token per block. The download resumes at
// the byte it stopped at.

func szxOf(size int) blockwise.SZX {
	if size < 16 {
		size = 16
	}
	return blockwise.SZX(min(bits.Len(uint(size))-5, int(blockwise.SZX1024)))
}

func (d *Device) fetchCoAP(ctx context.Context, gen uint64, u *url.URL, offset int) error {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5683")
		if u.Scheme == "coaps" {
			host = net.JoinHostPort(u.Hostname(), "5684")
		}
	}
	var conn net.Conn
	var nat *rebindingConn // the socket a NAT rebinding moves (RebindAfterBlocks)
	var err error
	if u.Scheme == "coaps" {
		conn, nat, err = d.dialDTLSRebinding(ctx, host, nil, d.cfg.RebindAfterBlocks > 0)
	} else {
		conn, err = net.Dial("udp", host)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", errLinkLost, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	szx := szxOf(d.cfg.BlockSize)
	mid := uint16(mrand.Uint32())
	blocks := 0
	for {
		size := blockSize(szx)
		num := offset / size
		mid++
		req := pool.NewMessage(ctx)
		req.SetCode(codes.GET)
		req.SetType(message.Confirmable)
		req.SetMessageID(int32(mid))
		tok := make([]byte, 4)
		_, _ = rand.Read(tok)
		req.SetToken(tok)
		if err := req.SetPath(u.EscapedPath()); err != nil {
			return fmt.Errorf("%w: %v", errInvalidURI, err)
		}
		if u.RawQuery != "" {
			for _, q := range strings.Split(u.RawQuery, "&") {
				req.AddQuery(q)
			}
		}
		bo, _ := blockwise.EncodeBlockOption(szx, int64(num), false)
		req.SetOptionUint32(message.Block2, bo)
		raw, err := req.MarshalWithEncoder(coder.DefaultCoder)
		if err != nil {
			return fmt.Errorf("%w: %v", errInvalidURI, err)
		}
		resp, err := d.exchange(ctx, conn, raw, mid, tok)
		if err != nil {
			return err
		}
		switch resp.Code {
		case codes.Content:
		case codes.NotFound, codes.BadRequest, codes.BadOption:
			return fmt.Errorf("%w: server answered %s", errInvalidURI, codeString(resp.Code))
		default:
			return fmt.Errorf("%w: server answered %s", errLinkLost, codeString(resp.Code))
		}
		if v, ok := optionUint(resp.Options, message.Size2); ok && int(v) > d.cfg.MaxPackageSize {
			return errTooLarge
		}
		more := false
		start := 0 // byte offset of the payload
		if v, ok := optionUint(resp.Options, message.Block2); ok {
			rszx, rnum, rmore, err := blockwise.DecodeBlockOption(v)
			if err != nil || rszx > blockwise.SZX1024 {
				return fmt.Errorf("%w: bad Block2 %d", errLinkLost, v)
			}
			szx, more, start = rszx, rmore, int(rnum)*blockSize(rszx) // honour the server's size
		}
		if start > offset || start+len(resp.Payload) < offset || (more && start+len(resp.Payload) == offset) {
			return fmt.Errorf("%w: block at %d does not continue %d", errLinkLost, start, offset)
		}
		data := resp.Payload[offset-start:]
		if err := d.fwAppend(gen, offset, data); err != nil {
			return err
		}
		offset += len(data)
		blocks++
		if err := d.afterBlock(ctx, blocks, len(data)); err != nil {
			return err
		}
		if !more {
			return nil
		}
		if nat != nil && blocks == d.cfg.RebindAfterBlocks {
			if err := nat.rebind(); err != nil {
				return fmt.Errorf("%w: %v", errLinkLost, err)
			}
			d.stats.add(func(s *Stats) { s.Rebinds++ })
		}
	}
}

func optionUint(opts message.Options, id message.OptionID) (uint32, bool) {
	v, err := opts.GetUint32(id)
	return v, err == nil
}

// exchange sends one CON request and waits for its response, piggybacked or separate,
// retransmitting with backoff.
func (d *Device) exchange(ctx context.Context, conn net.Conn, raw []byte, mid uint16, tok []byte) (message.Message, error) {
	timeout := time.Duration(float64(d.cfg.BlockTimeout) * (1 + mrand.Float64()*0.5))
	buf := make([]byte, 64*1024)
	separate := false
	for attempt := 0; attempt <= d.cfg.BlockRetries; attempt++ {
		if !separate && !d.lose() {
			if _, err := conn.Write(raw); err != nil {
				if ctx.Err() != nil {
					return message.Message{}, ctx.Err()
				}
				return message.Message{}, fmt.Errorf("%w: %v", errLinkLost, err)
			}
		}
		deadline := time.Now().Add(timeout)
		timeout *= 2
		for {
			_ = conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if ctx.Err() != nil {
				return message.Message{}, ctx.Err()
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) { // io.EOF: a DTLS session closed
					return message.Message{}, fmt.Errorf("%w: %v", errLinkLost, err)
				}
				if time.Now().After(deadline) {
					break
				}
				continue // ICMP port unreachable and the like: as if lost
			}
			if d.lose() {
				continue
			}
			m := message.Message{Options: make(message.Options, 0, 16)} // Decode needs the capacity
			if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
				continue
			}
			switch {
			case m.Type == message.Acknowledgement && m.MessageID == int32(mid) && m.Code == codes.Empty:
				separate = true // the response follows in its own CON
			case m.Type == message.Reset && m.MessageID == int32(mid):
				return message.Message{}, fmt.Errorf("%w: reset by the server", errLinkLost)
			case bytes.Equal(m.Token, tok) && m.Code != codes.Empty:
				if m.Type == message.Confirmable {
					d.ackRaw(conn, m.MessageID)
				}
				m.Payload = append([]byte(nil), m.Payload...)
				m.Options = slices.Clone(m.Options)
				for i := range m.Options {
					m.Options[i].Value = append([]byte(nil), m.Options[i].Value...)
				}
				return m, nil
			case m.Type == message.Confirmable:
				d.ackRaw(conn, m.MessageID) // a duplicate separate response
			}
		}
	}
	return message.Message{}, fmt.Errorf("%w: no answer after %d transmissions", errLinkLost, d.cfg.BlockRetries+1)
}

// ackRaw sends an empty ACK (RFC 7252 §4.2), subject to loss.
func (d *Device) ackRaw(conn net.Conn, mid int32) {
	if d.lose() {
		return
	}
	_, _ = conn.Write([]byte{0x60, 0x00, byte(mid >> 8), byte(mid)})
}

// Pull over HTTP(S): one GET, with Range to resume, read in chunks of BlockSize.
func (d *Device) fetchHTTP(ctx context.Context, gen uint64, u *url.URL, offset int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errInvalidURI, err)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.Itoa(offset)+"-")
	}
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", errLinkLost, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		offset = 0
	case http.StatusPartialContent:
		var start int
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != offset {
			return fmt.Errorf("%w: Content-Range %q for offset %d", errLinkLost, resp.Header.Get("Content-Range"), offset)
		}
	case http.StatusNotFound, http.StatusGone, http.StatusBadRequest:
		return fmt.Errorf("%w: HTTP %d", errInvalidURI, resp.StatusCode)
	default:
		return fmt.Errorf("%w: HTTP %d", errLinkLost, resp.StatusCode)
	}
	if resp.ContentLength > 0 && offset+int(resp.ContentLength) > d.cfg.MaxPackageSize {
		return errTooLarge
	}
	r := bufio.NewReaderSize(resp.Body, d.cfg.BlockSize)
	chunk := make([]byte, d.cfg.BlockSize)
	blocks, got := 0, int64(0)
	for {
		n, err := io.ReadFull(r, chunk)
		got += int64(n)
		if n > 0 {
			if err := d.fwAppend(gen, offset, chunk[:n]); err != nil {
				return err
			}
			offset += n
			blocks++
			if err := d.afterBlock(ctx, blocks, n); err != nil {
				return err
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			if resp.ContentLength >= 0 && got != resp.ContentLength {
				return fmt.Errorf("%w: %d of %d bytes", errLinkLost, got, resp.ContentLength)
			}
			return nil
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %v", errLinkLost, err)
		}
	}
}
