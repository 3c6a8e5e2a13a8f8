package lwm2mtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// A pull device over DTLS driven by its records (issue 16). A device blocked in Conn.Read
// waits for pion's reader goroutine to hand it each answer through a channel, after a copy: a
// goroutine hand-off per block that a device reading its own UDP socket (the plain pull) does
// not pay. Here pion hands the answer to the device on its reader goroutine (pion's
// Conn.SetApplicationDataHandler, lwota patch 10), which sends the next request from there. The
// protocol is the plain device's (pullDevice.run): one confirmable request in flight, the same
// retransmission timeouts (a timer instead of a read deadline), the same counting; only the
// goroutine it runs on differs.
//
// The retransmission timer is lazy: an answer does not stop it and a request does not reset it;
// a request notes when it is due (due) and the timer, when it fires early, re-arms itself for
// what is left. On a clean link a device's timer fires about once per ACK_TIMEOUT, not twice per
// block: at 1,000 devices a Stop and a Reset of a runtime timer per block were a cold timer heap
// entry each, a cost that no single-threaded device stack pays (tinydtls, mbedTLS on an RTOS
// keep one deadline and compare it in their loop).

// pullEvents is one device's state, guarded by mu: the handler, the retransmission timer and
// the end of the run take turns.
type pullEvents struct {
	d    *pullDevice
	conn *piondtls.Conn
	end  time.Time

	mu      sync.Mutex
	stopped bool
	timer   *time.Timer
	armed   bool      // the timer is pending, for timerAt
	timerAt time.Time // when the pending timer fires
	due     time.Time // when the request in flight is retransmitted; zero: none in flight
	out     []byte
	n       int // length of the request in out
	optBuf  []byte
	opts    message.Options
	resp    message.Message
	tok     [8]byte
	num     uint32
	szx     uint32
	attempt int
	wait    time.Duration
}

// runEvents pulls over conn until ctx ends, the answers arriving on pion's reader goroutine.
func (d *pullDevice) runEvents(ctx context.Context, conn *piondtls.Conn) {
	end, _ := ctx.Deadline()
	ev := &pullEvents{d: d, conn: conn, end: end, out: make([]byte, 512), optBuf: make([]byte, 8),
		opts: make(message.Options, 0, len(d.pathOpts)+2), resp: message.Message{Options: make(message.Options, 0, 16)}}
	for ev.szx < 6 && 16<<(ev.szx+1) <= d.cfg.BlockSize {
		ev.szx++
	}
	d.tok = rand.Uint64()
	ev.timer = time.AfterFunc(time.Hour, ev.timeout)
	ev.timer.Stop()
	conn.SetApplicationDataHandler(ev.answer)
	defer conn.SetApplicationDataHandler(nil)
	ev.mu.Lock()
	ev.request()
	ev.mu.Unlock()
	<-ctx.Done()
	ev.mu.Lock()
	ev.stopped = true
	ev.timer.Stop()
	ev.mu.Unlock()
}

// done reports the end of the run, as pullDevice.run's done does. Called with mu held.
func (ev *pullEvents) done() bool {
	return ev.stopped || !time.Now().Before(ev.end)
}

// request sends the request for block num with a new message id and token. Called with mu held.
func (ev *pullEvents) request() {
	if ev.done() {
		return
	}
	d := ev.d
	d.mid++
	d.tok++
	binary.BigEndian.PutUint64(ev.tok[:], d.tok)
	ev.opts = append(ev.opts[:0], d.pathOpts...)
	ev.opts, _, _ = ev.opts.SetUint32(ev.optBuf, message.Block2, ev.num<<4|ev.szx)
	req := message.Message{Token: ev.tok[:], Options: ev.opts, Code: codes.GET, MessageID: int32(d.mid), Type: message.Confirmable}
	n, err := coder.DefaultCoder.Encode(req, ev.out)
	if err != nil {
		d.fail(fmt.Errorf("encode: %w", err))
		ev.stopped = true
		return
	}
	ev.n, ev.attempt, ev.wait = n, 0, d.cfg.Timeout
	d.sent(0)
	ev.transmit()
}

// transmit sends the current request and notes when it is due for retransmission, arming the
// timer only when it is not pending already for that moment or earlier. Called with mu held.
func (ev *pullEvents) transmit() {
	if _, err := ev.conn.Write(ev.out[:ev.n]); err != nil {
		if !ev.done() {
			ev.d.fail(err)
		}
		ev.stopped = true
		return
	}
	ev.due = time.Now().Add(ev.wait)
	if !ev.armed || ev.due.Before(ev.timerAt) {
		ev.arm(ev.wait)
	}
	ev.wait *= 2
}

// arm (re)starts the timer to fire after d. Called with mu held.
func (ev *pullEvents) arm(d time.Duration) {
	ev.timer.Reset(d)
	ev.armed, ev.timerAt = true, time.Now().Add(d)
	ev.d.nTimerArms++
}

// timeout retransmits the request when it is due, or gives it up after MaxRetransmit and asks
// again; a timer that fired before the request in flight is due re-arms for the rest.
func (ev *pullEvents) timeout() {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.armed = false
	if ev.done() || ev.due.IsZero() {
		return
	}
	if left := time.Until(ev.due); left > 0 {
		ev.arm(left)
		return
	}
	if ev.attempt < ev.d.cfg.MaxRetransmit {
		ev.attempt++
		ev.d.sent(ev.attempt)
		ev.transmit()
		return
	}
	ev.d.fail(fmt.Errorf("block %d: no answer after %d retransmissions", ev.num, ev.d.cfg.MaxRetransmit))
	ev.request()
}

// answer is the connection's application data handler: p is valid only during the call.
func (ev *pullEvents) answer(p []byte) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.done() {
		return
	}
	d, resp := ev.d, &ev.resp
	if _, err := coder.DefaultCoder.Decode(p, resp); err != nil ||
		resp.MessageID != int32(d.mid) || resp.Type != message.Acknowledgement {
		return // a late answer to an earlier request, or noise
	}
	ev.due = time.Time{} // answered: the timer, if it fires before the next request, does nothing
	d.answered()
	defer ev.request()
	if resp.Code != codes.Content {
		d.fail(fmt.Errorf("block %d: server answered %d.%02d %s", ev.num, resp.Code>>5, resp.Code&31, strings.TrimSpace(string(resp.Payload))))
		ev.num = 0
		return
	}
	v, err := resp.Options.GetUint32(message.Block2)
	if err != nil {
		d.fail(fmt.Errorf("block %d: answer without Block2", ev.num))
		ev.num = 0
		return
	}
	d.nBlocks++
	d.nBytes += int64(len(resp.Payload))
	d.blocks.Add(1)
	ev.szx = v & 7 // follow a smaller size the server chose
	if v&8 == 0 {
		d.nImages++
		ev.num = 0
	} else {
		ev.num = v>>4 + 1
	}
}

// pull runs the device: driven by its records over a DTLS connection, by its reads otherwise.
func (d *pullDevice) pull(ctx context.Context) {
	if c, ok := d.conn.(*piondtls.Conn); ok {
		d.runEvents(ctx, c)
		return
	}
	d.run(ctx)
}
