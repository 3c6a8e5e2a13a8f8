package lwm2mtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// Firmware pull load: many emulated devices downloading an image block by block (RFC 7959
// Block2) as fast as the server answers. Each device has its own UDP socket, since CoAP
// message ids are per peer, and speaks CoAP with go-coap's wire codec only: its client
// machinery would be the bottleneck being measured.

// PullConfig is one pull load run; zero fields take defaults.
type PullConfig struct {
	URI       string        // coap://host:port/path of the image
	Devices   int           // concurrent devices (default 16)
	Duration  time.Duration // how long the run lasts (default 10 s)
	BlockSize int           // block size asked for: 16..1024 (default 1024)
	// Timeout is the first retransmission timeout of a request; it doubles for each of
	// MaxRetransmit retransmissions (RFC 7252 §4.2). Default 1 s and 4.
	Timeout       time.Duration
	MaxRetransmit int
	Window        time.Duration // the length of a rate window (default 10 s)
	// Started, when set, is called as the devices start pulling (after the DTLS handshakes of
	// PullLoadDTLS), so that a caller can measure the pull alone.
	Started func()
	// Ended, when set, is called as the run ends, before the connections close (a DTLS
	// connection's close_notify and teardown are not part of the pull).
	Ended func()
}

// PullReport is what a pull load run measured.
type PullReport struct {
	Devices      int
	Elapsed      time.Duration
	Blocks       int64     // 2.05 blocks received
	Bytes        int64     // payload bytes received
	Images       int64     // whole images received (each device restarts at block 0)
	Retransmits  int64     // requests sent again after a timeout
	Errors       int64     // requests that got an error code or no answer at all
	BlocksPerSec float64   // Blocks / Elapsed
	Windows      []float64 // blocks/s in each complete Window, in order (the last one may end with the run)
	FirstError   string    // the first error seen, for diagnosis

	// Where the retransmissions came from (pullDiag): a device locked out by the server, the
	// burst of the devices' first requests, or a stall of either process.
	//
	// BlocksLeast and BlocksMedian are the blocks of the device that got the fewest and of the
	// median device: a server that drops one device's requests again and again shows here.
	BlocksLeast, BlocksMedian int64
	// FirstRetransmits are the Retransmits of the devices' first requests of the run, and
	// FirstAnswerMax the longest a device waited for the answer to its first one.
	FirstRetransmits int64
	FirstAnswerMax   time.Duration
	// Stalled is the longest time no device got an answer, and Late the most a 10 ms ticker
	// in the devices' process ran late (that process not running): every device has one
	// request in flight, so a stall of 1 to 3 s costs each device one retransmission.
	Stalled, Late time.Duration
}

// Decline is the lowest window rate divided by the highest: 1 is flat, 0.5 lost half.
// It is 1 with fewer than two windows.
func (r PullReport) Decline() float64 {
	if len(r.Windows) < 2 {
		return 1
	}
	lo, hi := r.Windows[0], r.Windows[0]
	for _, w := range r.Windows[1:] {
		lo, hi = min(lo, w), max(hi, w)
	}
	if hi == 0 {
		return 1
	}
	return lo / hi
}

func (c PullConfig) withDefaults() PullConfig {
	if c.Devices <= 0 {
		c.Devices = 16
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.BlockSize <= 0 {
		c.BlockSize = 1024
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.MaxRetransmit <= 0 {
		c.MaxRetransmit = 4
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	return c
}

// PullLoad runs cfg.Devices devices, each fetching the image at cfg.URI block by block in a
// loop for cfg.Duration, and reports the rates. It fails only when it cannot start (bad URI,
// no sockets); errors from the server are counted in the report.
func PullLoad(ctx context.Context, cfg PullConfig) (PullReport, error) {
	cfg = cfg.withDefaults()
	raddr, pathOpts, err := pullTarget(cfg.URI, "coap", "5683")
	if err != nil {
		return PullReport{}, err
	}
	conns := make([]pullConn, cfg.Devices)
	for i := range conns {
		if conns[i], err = net.DialUDP("udp", nil, raddr); err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return PullReport{}, fmt.Errorf("lwm2mtest: pull: socket %d: %w", i, err)
		}
	}
	return pullOver(ctx, cfg, pathOpts, conns), nil
}

// pullTarget is the server address and the Uri-Path options of uri, a scheme:// URI whose
// port defaults to defaultPort.
func pullTarget(uri, scheme, defaultPort string) (*net.UDPAddr, message.Options, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != scheme || u.Host == "" {
		return nil, nil, fmt.Errorf("lwm2mtest: pull: uri %q: want %s://host:port/path", uri, scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	raddr, err := net.ResolveUDPAddr("udp", host)
	if err != nil {
		return nil, nil, fmt.Errorf("lwm2mtest: pull: %w", err)
	}
	var pathOpts message.Options
	pathOpts, _, err = pathOpts.SetPath(make([]byte, 256), u.EscapedPath())
	if err != nil {
		return nil, nil, fmt.Errorf("lwm2mtest: pull: path %q: %w", u.Path, err)
	}
	return raddr, pathOpts, nil
}

// pullConn is one device's connection to the server: a connected UDP socket, or a DTLS
// connection over one.
type pullConn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// pullOver runs one device per conn for cfg.Duration, then closes the conns.
func pullOver(ctx context.Context, cfg PullConfig, pathOpts message.Options, conns []pullConn) PullReport {
	if cfg.Started != nil {
		cfg.Started()
	}
	// The run's time starts after Started, which may wait (a child process of lwota bench pull
	// waits there for its parent's go).
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		blocks  atomic.Int64 // read by the window sampler
		windows []float64
		wg      sync.WaitGroup
		sampled = make(chan struct{})
	)
	start := time.Now()
	go func() {
		defer close(sampled)
		t := time.NewTicker(cfg.Window)
		defer t.Stop()
		last, lastT := int64(0), time.Now()
		for {
			select {
			case <-ctx.Done():
				// The last window usually ends with the run: keep it when (nearly) complete.
				if el := time.Since(lastT); el >= cfg.Window*19/20 {
					windows = append(windows, float64(blocks.Load()-last)/el.Seconds())
				}
				return
			case now := <-t.C:
				n := blocks.Load()
				windows = append(windows, float64(n-last)/now.Sub(lastT).Seconds())
				last, lastT = n, now
			}
		}
	}()
	diag := watchPull(ctx, &blocks)
	devs := make([]*pullDevice, cfg.Devices)
	for i, c := range conns {
		devs[i] = &pullDevice{cfg: cfg, conn: c, pathOpts: pathOpts, blocks: &blocks, mid: uint16(rand.Uint32())}
		wg.Go(func() { devs[i].pull(ctx) }) // dtls_pull_events.go for DTLS
	}
	wg.Wait()
	elapsed := time.Since(start)
	if cfg.Ended != nil {
		cfg.Ended()
	}
	<-sampled
	for _, c := range conns {
		c.Close()
	}
	rep := PullReport{Devices: cfg.Devices, Elapsed: elapsed, Windows: windows}
	for _, d := range devs {
		rep.Blocks += d.nBlocks
		rep.Bytes += d.nBytes
		rep.Images += d.nImages
		rep.Retransmits += d.nRetransmits
		rep.Errors += d.nErrors
		if rep.FirstError == "" && d.firstErr != nil {
			rep.FirstError = d.firstErr.Error()
		}
	}
	diag.report(&rep, devs)
	rep.BlocksPerSec = float64(rep.Blocks) / elapsed.Seconds()
	return rep
}

// pullDevice is one emulated device: one socket, one request in flight.
type pullDevice struct {
	cfg      PullConfig
	conn     pullConn
	pathOpts message.Options
	blocks   *atomic.Int64
	mid      uint16
	tok      uint64

	nBlocks, nBytes, nImages, nRetransmits, nErrors int64
	firstErr                                        error
	nTimerArms                                      int64 // DTLS devices' retransmission timer starts (dtls_pull_events.go)
	nRequests, nFirstRetransmits                    int64 // requests of the run; retransmissions of the first
	firstSent                                       time.Time
	firstAnswer                                     time.Duration // from the first request to its answer; zero: none yet
}

// sent notes a request (attempt 0) or its retransmission.
func (d *pullDevice) sent(attempt int) {
	switch {
	case attempt == 0:
		d.nRequests++
		if d.nRequests == 1 {
			d.firstSent = time.Now()
		}
	case d.nRequests == 1:
		d.nRetransmits++
		d.nFirstRetransmits++
	default:
		d.nRetransmits++
	}
}

// answered notes the answer to the request in flight.
func (d *pullDevice) answered() {
	if d.nRequests == 1 && d.firstAnswer == 0 {
		d.firstAnswer = max(time.Since(d.firstSent), 1)
	}
}

func (d *pullDevice) fail(err error) {
	d.nErrors++
	if d.firstErr == nil {
		d.firstErr = err
	}
}

func (d *pullDevice) run(ctx context.Context) {
	szx := uint32(0)
	for szx < 6 && 16<<(szx+1) <= d.cfg.BlockSize {
		szx++
	}
	var (
		out     = make([]byte, 512)
		in      = make([]byte, 2048)
		optBuf  = make([]byte, 8)
		opts    = make(message.Options, 0, len(d.pathOpts)+2)
		resp    = message.Message{Options: make(message.Options, 0, 16)}
		tok     [8]byte
		num     uint32
		end, _  = ctx.Deadline()
		timeout = d.cfg.Timeout
	)
	// The run ends at its deadline: ctx.Err() may lag it, and reads past it fail at once.
	done := func() bool { return ctx.Err() != nil || !time.Now().Before(end) }
	d.tok = rand.Uint64()
	for !done() {
		d.mid++
		d.tok++
		binary.BigEndian.PutUint64(tok[:], d.tok)
		opts = append(opts[:0], d.pathOpts...)
		opts, _, _ = opts.SetUint32(optBuf, message.Block2, num<<4|szx)
		req := message.Message{Token: tok[:], Options: opts, Code: codes.GET, MessageID: int32(d.mid), Type: message.Confirmable}
		n, err := coder.DefaultCoder.Encode(req, out)
		if err != nil {
			d.fail(fmt.Errorf("encode: %w", err))
			return
		}
		got := false
		wait := timeout
	send:
		for attempt := 0; attempt <= d.cfg.MaxRetransmit && !done(); attempt++ {
			d.sent(attempt)
			if _, err := d.conn.Write(out[:n]); err != nil {
				d.fail(err)
				return
			}
			_ = d.conn.SetReadDeadline(earliest(time.Now().Add(wait), end))
			wait *= 2
			for {
				k, err := d.conn.Read(in)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue send
					}
					if !done() {
						d.fail(err)
					}
					return
				}
				if _, err := coder.DefaultCoder.Decode(in[:k], &resp); err != nil ||
					resp.MessageID != int32(d.mid) || resp.Type != message.Acknowledgement {
					continue // a late answer to an earlier request, or noise
				}
				got = true
				d.answered()
				break send
			}
		}
		if !got {
			if !done() {
				d.fail(fmt.Errorf("block %d: no answer after %d retransmissions", num, d.cfg.MaxRetransmit))
			}
			continue
		}
		if resp.Code != codes.Content {
			d.fail(fmt.Errorf("block %d: server answered %d.%02d %s", num, resp.Code>>5, resp.Code&31, strings.TrimSpace(string(resp.Payload))))
			num = 0
			continue
		}
		v, err := resp.Options.GetUint32(message.Block2)
		if err != nil {
			d.fail(fmt.Errorf("block %d: answer without Block2", num))
			num = 0
			continue
		}
		d.nBlocks++
		d.nBytes += int64(len(resp.Payload))
		d.blocks.Add(1)
		szx = v & 7 // follow a smaller size the server chose
		if v&8 == 0 {
			d.nImages++
			num = 0
		} else {
			num = v>>4 + 1
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}
