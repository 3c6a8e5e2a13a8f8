package lwm2mtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// Faults are the failures a device injects. Set them in DeviceConfig.Faults or at any time
// with Device.SetFaults; the zero value injects nothing.
type Faults struct {
	// Loss is the probability (0..1) that a datagram is lost, in each direction.
	//
	// The firmware fetcher owns its socket and drops outgoing requests and incoming
	// datagrams exactly. On the LwM2M socket go-coap owns the socket: an incoming datagram
	// is dropped before go-coap sees it, and a lost answer to a server request is emulated
	// by dropping the request too (the server sees the same silence). The device's own
	// uplinks (Register, Update, notifications) are not dropped on the way out.
	Loss float64

	// RebootAfterBlocks reboots the device (new source port, no De-register) once that
	// many blocks of a download have arrived. The partial download is kept: writing the
	// same Package URI again resumes it. One-shot: cleared when it fires.
	RebootAfterBlocks int
	// FailAfterBlocks ends a download as if the link had gone, once that many blocks have
	// arrived: State 0, Update Result 4. The partial download is kept for a resume.
	// One-shot: cleared when it fires.
	FailAfterBlocks int

	// OutOfRAM refuses a download at its start: State 0, Update Result 3.
	OutOfRAM bool
	// IntegrityFailure fails the check of a complete package: State 0, Update Result 5.
	IntegrityFailure bool
	// UnsupportedPackage rejects a complete package's type: State 0, Update Result 6.
	UnsupportedPackage bool
	// UpdateFailure fails the Execute of /5/0/2: State back to 2, Update Result 8.
	UpdateFailure bool
	// RefuseExecute answers that many Executes of /5/0/2 with 4.05 while the package is
	// downloaded, as a device between states may; it counts down as it fires.
	RefuseExecute int
	// IgnoreExecute answers that many Executes of /5/0/2 with 2.04 and stays Downloaded, as
	// another device answering at the device's stale address would, or a device that lost the
	// Execute after acknowledging it; it counts down as it fires.
	IgnoreExecute int

	// NoUpdates stops the registration Updates the device sends by itself before its lifetime
	// runs out, as a device busy downloading may; Update and Wake still send one.
	NoUpdates bool

	// BlockDelay is added after every block (pull: CoAP block or HTTP chunk of BlockSize;
	// push: before the device answers a Block1 block).
	BlockDelay time.Duration
	// BytesPerSecond caps a pull's rate; 0 is no cap.
	BytesPerSecond int

	// AnswerDelay holds every answer to a server request that long after the device handled
	// it, as a device whose CPU is busy elsewhere (or a loaded host) does: what the request
	// started is already under way when the answer leaves, unless the device waits for it.
	AnswerDelay time.Duration
}

// faultBox holds a device's faults; it has its own lock so that the socket path never waits
// for Device.mu.
type faultBox struct {
	mu sync.Mutex
	f  Faults
}

func (b *faultBox) get() Faults {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.f
}

func (b *faultBox) set(f Faults) {
	b.mu.Lock()
	b.f = f
	b.mu.Unlock()
}

// take reads a one-shot count and clears it when n reached it.
func (b *faultBox) take(n int, field func(*Faults) *int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := field(&b.f)
	if *p > 0 && n >= *p {
		*p = 0
		return true
	}
	return false
}

// refuseExecute reports whether this Execute of /5/0/2 is refused, counting it.
func (b *faultBox) refuseExecute() bool {
	return b.countDown(func(f *Faults) *int { return &f.RefuseExecute })
}

// ignoreExecute reports whether this Execute of /5/0/2 is answered and ignored, counting it.
func (b *faultBox) ignoreExecute() bool {
	return b.countDown(func(f *Faults) *int { return &f.IgnoreExecute })
}

// countDown reports whether the count field points at is above zero, and lowers it if so.
func (b *faultBox) countDown(field func(*Faults) *int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := field(&b.f)
	if *p <= 0 {
		return false
	}
	*p--
	return true
}

// SetFaults replaces the device's faults; downloads in progress see them from their next
// block.
func (d *Device) SetFaults(f Faults) { d.faults.set(f) }

// Faults returns the faults currently set (one-shot ones disappear once fired).
func (d *Device) Faults() Faults { return d.faults.get() }

// lose reports whether one datagram is lost, and counts it.
func (d *Device) lose() bool {
	p := d.faults.get().Loss
	if p <= 0 || rand.Float64() >= p {
		return false
	}
	d.stats.add(func(s *Stats) { s.Lost++ })
	return true
}

// dropIncoming decides, in the request monitor, whether a datagram reaching the LwM2M
// socket is lost. A request is also dropped when its answer would be lost.
func (d *Device) dropIncoming(m *pool.Message) bool {
	if d.lose() {
		return true
	}
	if c := m.Code(); c >= codes.GET && c < 32 {
		return d.lose()
	}
	return false
}

// Errors of the block fetcher that decide the Update Result.
var (
	errLinkLost    = errors.New("firmware download: connection lost")   // 4
	errRebootFault = errors.New("firmware download: reboot (fault)")    // 4, then reboot
	errTooLarge    = errors.New("firmware download: package too large") // 3
	errInvalidURI  = errors.New("firmware download: invalid URI")       // 7
)

// afterBlock applies the per-block faults once the n-th block (1-based, counted within one
// download attempt) of size bytes arrived.
func (d *Device) afterBlock(ctx context.Context, n, size int) error {
	f := d.faults.get()
	wait := f.BlockDelay
	if f.BytesPerSecond > 0 {
		wait += time.Duration(float64(size) / float64(f.BytesPerSecond) * float64(time.Second))
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if d.faults.take(n, func(f *Faults) *int { return &f.RebootAfterBlocks }) {
		return errRebootFault
	}
	if d.faults.take(n, func(f *Faults) *int { return &f.FailAfterBlocks }) {
		return errLinkLost
	}
	return nil
}
