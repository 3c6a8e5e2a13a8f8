package fwupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// run drives one job. Its goroutine (loop) looks at the job and the device, acts, stores the
// outcome, and waits to be woken (a registration or notification of the device, Cancel) or for
// the poll interval. Every step starts from what is stored and what the device reports, so the
// same code resumes a job after a restart.
type run struct {
	d      *Driver
	parent context.Context // Run's: outlives a cancelled job, for the clean-up
	life   context.Context // the job's: ends with Cancel or shutdown; stores use it
	cancel context.CancelFunc
	// ctx is the current step's, a child of life: a new registration of the device ends it, so
	// a request still waiting on the device's old address gives way at once. Loop goroutine only.
	ctx       context.Context
	wakeC     chan struct{}
	saveC     chan struct{} // Progress: the bytes served are due to be stored
	cancelled atomic.Bool   // by Cancel, with a transfer to undo on the device
	lost      atomic.Bool   // another node drives the job now (cluster mode)
	served    served        // how far the transfer server served this attempt's pull

	mu         sync.Mutex
	job        *Job               // the stored job; replaced, never changed in place, under mu
	stepCancel context.CancelFunc // ends the current step's ctx, under mu

	// Known only to this process, so that a restart repeats at most one harmless step.
	sent     bool      // the Package URI was written, or the push ran, in this attempt
	executed bool      // Update (/5/0/2) was executed
	pushFrom time.Time // when this attempt's push got its slot (MaxPushes)
	// execRefused counts 4.05 answers to Execute while the device said Downloaded.
	execRefused int
	// stillDownloaded counts the reads since an answered Execute that found the device still
	// Downloaded with no result; execAgain the Executes sent again because of them.
	stillDownloaded, execAgain int
	// resets counts the resets of a device found busy (Downloading, Downloaded) when this
	// attempt's delivery started; resetNext is when the next one may be sent.
	resets    int
	resetNext time.Time
	observed  bool // /5/0/3 and /5/0/5 are observed
	// noComposite: the device refused Read-Composite in this attempt; read one path at a time.
	noComposite bool
	deferTil    time.Time // result 11: the device asked to wait until then
	release     func()    // the registration hold of a delivery
}

func newRun(d *Driver, j *Job) *run {
	life, cancel := context.WithCancel(d.ctx)
	return &run{d: d, parent: d.ctx, life: life, ctx: life, cancel: cancel, wakeC: make(chan struct{}, 1),
		saveC: make(chan struct{}, 1), job: j}
}

// interrupt ends the current step's requests and makes the loop look again: the device
// registered anew, so whatever was sent to its old address will not be answered.
func (r *run) interrupt() {
	r.mu.Lock()
	if r.stepCancel != nil {
		r.stepCancel()
	}
	r.mu.Unlock()
	r.wake()
}

// wake makes the loop look again now.
func (r *run) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

func (r *run) current() *Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.job
}

func (r *run) loop() {
	defer r.finish()
	for r.life.Err() == nil && !r.lost.Load() {
		j := r.current()
		if !j.Active() {
			return
		}
		ctx, cancel := context.WithCancel(r.life)
		r.mu.Lock()
		r.stepCancel = cancel
		r.mu.Unlock()
		r.ctx = ctx
		wait := r.step(j)
		r.mu.Lock()
		r.stepCancel = nil
		r.mu.Unlock()
		cancel()
		if wait <= 0 {
			continue
		}
		r.sleep(wait)
	}
}

// sleep waits until woken, the job ends or wait passes, storing pull progress meanwhile.
func (r *run) sleep(wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-r.life.Done():
			return
		case <-r.wakeC:
			return
		case <-t.C:
			return
		case <-r.saveC:
			r.saveServed()
		}
	}
}

// step does what the job's state asks for and returns how long to wait before looking again
// (0: at once, the job moved).
func (r *run) step(j *Job) time.Duration {
	now := r.d.now()
	if j.Retryable() {
		if now.Before(j.NextAttemptAt) {
			return j.NextAttemptAt.Sub(now)
		}
		r.sent, r.executed, r.deferTil, r.pushFrom = false, false, time.Time{}, time.Time{}
		r.stillDownloaded, r.execAgain = 0, 0
		r.resets, r.resetNext = 0, time.Time{}
		r.served.reset()
		r.move(j, StateQueued, fmt.Sprintf("attempt %d of %d", j.Attempt+1, j.Policy.MaxAttempts), nil)
		return 0
	}
	if limit := j.Policy.StepTimeout(j.State, j.ImageSize); limit > 0 && now.Sub(r.stepStart(j)) >= limit {
		r.timedOut(j, limit)
		return 0
	}
	var wait time.Duration
	switch j.State {
	case StateQueued, StateWaiting:
		wait = r.toDevice(j)
	case StateDelivering:
		wait = r.deliver(j)
	case StateDownloaded:
		r.move(j, StateUpdating, "", nil) // stored before Update is executed
	case StateUpdating:
		wait = r.update(j)
	case StateVerifying:
		wait = r.verify(j)
	}
	if wait <= 0 {
		return 0
	}
	// Never sleep past the step's deadline.
	if limit := j.Policy.StepTimeout(j.State, j.ImageSize); limit > 0 {
		wait = min(wait, max(time.Until(r.stepStart(j).Add(limit)), time.Millisecond))
	}
	return wait
}

// toDevice moves a queued or waiting job to delivering once its device can be talked to.
func (r *run) toDevice(j *Job) time.Duration {
	reg, err := r.d.dev.Device(r.ctx, j.Endpoint)
	switch {
	case err != nil:
		if j.State == StateQueued {
			r.move(j, StateWaiting, "device not registered", nil)
			return 0
		}
		return r.d.cfg.PollInterval
	case !r.awake(reg):
		if j.State == StateQueued {
			r.move(j, StateWaiting, r.absence(reg), nil)
			return 0
		}
		return r.d.cfg.PollInterval
	}
	r.move(j, StateDelivering, "", nil)
	return 0
}

func (r *run) awake(reg *registration.Registration) bool {
	now := r.d.now()
	return reg.Online(now) && !(reg.QueueMode && now.Sub(reg.LastSeen) > r.d.cfg.AwakeWindow)
}

func (r *run) absence(reg *registration.Registration) string {
	if reg.Online(r.d.now()) {
		return "device asleep (queue mode)"
	}
	return "device offline"
}

// away reports whether err means the device cannot be reached now but may come back. A DTLS
// device without a session here (transport.ErrNoSession) is not "away" but transient (below):
// it is still registered, so a job moved to waiting would wake at once and find no session
// again; the step instead polls until the device's new handshake and Register or Update.
func away(err error) bool {
	return errors.Is(err, dm.ErrAsleep) || errors.Is(err, dm.ErrOffline) || errors.Is(err, registration.ErrNotFound)
}

// transient reports whether a request may work when tried again later.
//
// transport.ErrNoSession is one of these: the device's DTLS session is not here (evicted while
// idle, lost with the node or the balancer session it went through, or the device's handshake
// here has not reached the registry yet). The device handshakes again when it next talks, and
// its Register or Update wakes the run, so the job waits for that instead of failing an update
// the device may well be finishing (in a cluster, a node the device moved to adopts the job
// when the ownership row names it; the old one lets it go).
func transient(err error) bool {
	var de *dm.DeviceError
	return errors.Is(err, dm.ErrTimeout) || errors.Is(err, dm.ErrUnavailable) || errors.Is(err, transport.ErrNoSession) ||
		errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &de) && de.Code == "RST") ||
		(errors.As(err, &de) && len(de.Code) > 0 && de.Code[0] == '5')
}

// deliver starts the transfer of this attempt, or follows the one in flight.
func (r *run) deliver(j *Job) time.Duration {
	o, err := r.readObject5(j)
	if err != nil {
		return r.deviceTrouble(j, err)
	}
	if j.Delivery == "" {
		return r.startDelivery(j, o)
	}
	switch {
	case o.State == deviceDownloaded:
		r.moveBy(r.deviceActor(j), j, StateDownloaded, "", func(n *Job) {
			n.DeviceState, n.DeviceResult, n.BytesDelivered = o.State, o.Result, n.ImageSize
		})
		return 0
	case o.State == deviceUpdating:
		// Updating already (another server, or Execute from a previous life): follow it.
		r.moveBy(r.deviceActor(j), j, StateDownloaded, "device already updating", func(n *Job) { n.DeviceState, n.DeviceResult = o.State, o.Result })
		return 0
	case o.State == deviceIdle && o.Result >= 2 && r.sent:
		return r.decide(j, o)
	case o.State == deviceDownloading:
		r.note(j, o)
		if j.Delivery == DeliveryPush && !r.sent {
			return r.push(j) // the push broke off in a previous life: send it again
		}
		return r.d.cfg.PollInterval
	}
	// Idle, and either nothing to report (the device has not started, or lost the transfer)
	// or a failure this process did not cause: one left from the previous attempt, or one from
	// before a restart. Sending again tells them apart — a pull of the same URI resumes, and a
	// real failure is reported again, this time as ours.
	if r.sent {
		return r.d.cfg.PollInterval
	}
	if !r.deferTil.IsZero() && r.d.now().Before(r.deferTil) {
		return r.deferTil.Sub(r.d.now())
	}
	return r.send(j)
}

// Resets of a device found busy when a delivery starts: at most maxResets, the first
// resetWait after the previous one and each wait doubled, so a device that ignores them
// (stays in Downloading) costs a handful of requests, not a storm, before the job fails.
const (
	maxResets = 3
	resetWait = time.Second
)

// startDelivery checks the package and the device's delivery method, resets a busy device,
// chooses how to deliver, stores the choice, then sends.
func (r *run) startDelivery(j *Job, o object5) time.Duration {
	if d := r.ours(j, o); d != "" {
		// Still fetching, or holding, this job's package from an earlier attempt: keep it.
		r.sent = true
		r.progress(j, func(n *Job) { n.Delivery, n.DeviceState, n.DeviceResult = d, o.State, o.Result })
		return 0
	}
	switch _, err := r.d.pkgs.Package(r.ctx, j.ImageID); {
	case errors.Is(err, ErrImageNotFound):
		return r.packageTrouble(j, err)
	case err != nil:
		// The catalog not answering costs no attempt here: nothing was sent yet, so look
		// again later (the step's timeout bounds it).
		if r.ctx.Err() == nil {
			r.d.log.Warn("image not readable, trying again", "job", j.ID, "endpoint", j.Endpoint, "err", err)
		}
		return r.d.cfg.PollInterval
	}
	if o.State == deviceUpdating {
		r.note(j, o)
		return r.d.cfg.PollInterval // nothing can stop an update in progress
	}
	reg, err := r.d.dev.Device(r.ctx, j.Endpoint)
	if err != nil {
		return r.deviceTrouble(j, err)
	}
	// The delivery depends on what the device declares (/5/0/8, /5/0/9), not on its State:
	// a method the device refuses fails before anything is sent to it.
	delivery, err := chooseDelivery(j.Method, o, r.d.offeredFor(reg), j.ProtocolsTried)
	if err != nil {
		r.fail(j, err.Error())
		return 0
	}
	if o.State == deviceDownloading || o.State == deviceDownloaded {
		return r.resetBusy(j, o)
	}
	from := ""
	if res, err := r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpRead, Path: pathFirmwareVer}); err == nil {
		from = stringAt(res.Records, pathFirmwareVer)
	}
	r.observe(j)
	if !r.progress(j, func(n *Job) {
		n.Delivery, n.FromVersion, n.DeviceState, n.DeviceResult = delivery, from, o.State, o.Result
	}) {
		return 0
	}
	return 0 // the next look sends it
}

// resetBusy resets a device left in Downloading or Downloaded by something else than this
// job, then waits before looking again (a notification may wake the loop sooner, but the
// next reset still waits its turn). A device still busy after maxResets fails the job.
func (r *run) resetBusy(j *Job, o object5) time.Duration {
	now := r.d.now()
	if now.Before(r.resetNext) {
		return r.resetNext.Sub(now)
	}
	if r.resets >= maxResets {
		r.failBy(r.deviceActor(j), j, fmt.Sprintf("the device stays in %s (State %d) after %d resets", StateText(o.State), o.State, r.resets))
		return 0
	}
	if err := r.reset(r.ctx, j); err != nil {
		return r.deviceTrouble(j, err)
	}
	r.resets++
	r.resetNext = now.Add(resetWait << (r.resets - 1))
	r.note(j, o)
	return r.resetNext.Sub(now)
}

// packageTrouble handles a package that could not be read: an image deleted under the job
// fails it at once; anything else (the blob store or the database not answering) is
// transient, so the attempt fails and the policy retries it.
func (r *run) packageTrouble(j *Job, err error) time.Duration {
	if r.ctx.Err() != nil {
		return 0
	}
	if errors.Is(err, ErrImageNotFound) {
		r.fail(j, fmt.Sprintf("image %s was deleted", j.ImageID))
		return 0
	}
	r.d.log.Warn("package not readable, the attempt will be retried", "job", j.ID, "endpoint", j.Endpoint, "err", err)
	r.settle(audit.ActorSystem, j, j.Policy.Retry(j, fmt.Sprintf("read package %s: %v", j.ImageID, err), r.d.now()), "")
	return 0
}

// ours returns the pull delivery whose URI the device holds, when it is this job's (URIs are
// stable per job) and the device is downloading or holds the package; "" otherwise.
func (r *run) ours(j *Job, o object5) string {
	if o.PackageURI == "" || (o.State != deviceDownloading && o.State != deviceDownloaded) {
		return ""
	}
	for _, d := range r.d.cfg.Offered {
		if uri, err := r.d.pkgs.URI(r.ctx, j, d, j.CreatedAt.Add(r.d.cfg.TokenTTL)); err == nil && uri == o.PackageURI {
			return d
		}
	}
	return ""
}

// send writes the Package URI or pushes the package: the transfer of this attempt.
func (r *run) send(j *Job) time.Duration {
	if r.release == nil {
		r.release = r.d.dev.Hold(j.Endpoint)
	}
	if j.Delivery == DeliveryPush {
		return r.push(j)
	}
	uri, err := r.d.pkgs.URI(r.ctx, j, j.Delivery, j.CreatedAt.Add(r.d.cfg.TokenTTL))
	if err != nil {
		r.fail(j, fmt.Sprintf("no %s URI for the package: %v", j.Delivery, err))
		return 0
	}
	_, err = r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpWrite, Path: pathPackageURI,
		Records: []lwm2m.Record{{Path: pathPackageURI, Value: lwm2m.String(uri)}}})
	if err != nil {
		return r.deviceTrouble(j, fmt.Errorf("write package URI: %w", err))
	}
	r.sent = true
	r.d.log.Info("package URI written", "job", j.ID, "endpoint", j.Endpoint, "delivery", j.Delivery)
	return r.d.cfg.PollInterval
}

// stepStart is when j's current step started counting against its timeout: when it entered
// the state, or for a push that waited for one of the MaxPushes slots, when it got the slot —
// a job queued behind other pushes has not spent any of its link's time yet.
func (r *run) stepStart(j *Job) time.Time {
	from := j.StepAt[j.State]
	if j.State == StateDelivering && r.pushFrom.After(from) {
		return r.pushFrom
	}
	return from
}

// push writes the package to /5/0/0 in Block1 blocks, storing progress as it goes.
func (r *run) push(j *Job) time.Duration {
	select {
	case r.d.pushes <- struct{}{}:
	case <-r.ctx.Done():
		return 0
	}
	defer func() { <-r.d.pushes }()
	r.pushFrom = r.d.now()
	rd, err := r.d.pkgs.Body(r.ctx, j.ImageID)
	if err != nil {
		return r.packageTrouble(j, err)
	}
	body := &packageReader{r: rd}
	r.sent = true
	var last time.Time
	progress := func(sent int64) {
		if now := r.d.now(); now.Sub(last) >= r.d.cfg.ProgressInterval {
			last = now
			r.progress(r.current(), func(n *Job) { n.BytesDelivered = sent })
		}
	}
	// The push may take as long as the step allows, and no longer: a device that stops
	// answering mid-push must not hold the job past its timeout.
	ctx, cancel := context.WithDeadline(r.ctx, r.stepStart(j).Add(j.Policy.StepTimeout(StateDelivering, j.ImageSize)))
	defer cancel()
	err = r.d.dev.Push(ctx, j.Endpoint, pathPackage, contentOctets, body, j.ImageSize,
		transport.UploadOptions{BlockSize: j.Policy.BlockSize, Progress: progress})
	var de *dm.DeviceError
	switch {
	case err != nil && body.failed() != nil && r.ctx.Err() == nil:
		// The device did nothing wrong: lwota could not read the package (blob store down).
		r.sent = false
		return r.packageTrouble(r.current(), body.failed())
	case errors.Is(err, transport.ErrBodyTooLarge):
		r.fail(r.current(), "the device refused the package as too large (4.13)")
		return 0
	case err != nil && errors.As(err, &de) && !transient(err):
		r.fail(r.current(), fmt.Sprintf("the device refused the push: %v", de))
		return 0
	case err != nil:
		r.sent = false
		return r.deviceTrouble(r.current(), fmt.Errorf("push: %w", err))
	}
	r.progress(r.current(), func(n *Job) { n.BytesDelivered = n.ImageSize })
	r.d.log.Info("package pushed", "job", j.ID, "endpoint", j.Endpoint, "bytes", j.ImageSize)
	return time.Millisecond
}

// packageReader remembers the first error reading the package, so that a push broken off by
// lwota's own storage is told apart from one the device broke off.
type packageReader struct {
	r   io.ReaderAt
	mu  sync.Mutex
	err error
}

func (p *packageReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
	}
	return n, err
}

func (p *packageReader) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// maxExecRefusals is how many 4.05 answers to Execute a job takes, re-reading the state after
// each, before it fails.
const maxExecRefusals = 3

// maxExecAgain bounds the Executes sent again to a device still Downloaded after an answered one.
const maxExecAgain = 3

// update executes Update on a downloaded device and waits for it to come back. What the device
// reports decides, not a new registration alone: a device may register again for other
// reasons (its socket died while lwota was down) before it ever executed the update.
func (r *run) update(j *Job) time.Duration {
	o, err := r.readObject5(j)
	if err != nil {
		if away(err) || transient(err) {
			return r.d.cfg.PollInterval // rebooting
		}
		return r.deviceTrouble(j, err)
	}
	r.note(j, o)
	again := false
	if reg, err := r.d.dev.Device(r.ctx, j.Endpoint); err == nil {
		again = reg.RegisteredAt.After(j.StepAt[StateUpdating])
	}
	switch {
	case o.State == deviceDownloaded && o.Result <= 1 && !r.executed:
		if _, err := r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpExecute, Path: pathUpdate}); err != nil {
			var de *dm.DeviceError
			if errors.As(err, &de) && de.Code == "4.05" && r.execRefused < maxExecRefusals {
				// A device refuses Update outside Downloaded: it may have run an earlier
				// Execute whose answer was lost, or be between states. Look again first.
				r.execRefused++
				r.d.log.Info("execute update refused, reading the state again", "job", j.ID, "endpoint", j.Endpoint, "refusals", r.execRefused)
				return time.Second
			}
			return r.deviceTrouble(j, fmt.Errorf("execute update: %w", err))
		}
		r.executed, r.stillDownloaded = true, 0
		r.d.log.Info("firmware update executed", "job", j.ID, "endpoint", j.Endpoint)
		return r.d.cfg.PollInterval
	case o.State == deviceDownloaded && o.Result == 0 && r.executed && r.execAgain < maxExecAgain:
		// The Execute was answered, yet the device still says Downloaded: Object 5's state machine
		// moves from Downloaded to Updating (3) when Update is executed. The answer may have come from another
		// device (on NoSec, one now at a socket this one left before its registration moved)
		// or the device dropped it; left so, the job waited out updatingTimeout (an hour) for a
		// device that never flashes. Two reads a poll apart, not one, so that a device that
		// changes state just after answering is not executed twice.
		if r.stillDownloaded++; r.stillDownloaded >= 2 {
			r.executed, r.stillDownloaded = false, 0
			r.execAgain++
			r.d.log.Info("execute update answered but the device is still downloaded, executing again", "job", j.ID, "endpoint", j.Endpoint, "again", r.execAgain)
			return 0
		}
		return r.d.cfg.PollInterval
	case o.Result >= 2:
		return r.decide(j, o)
	case o.State == deviceIdle && o.Result == 1:
		r.moveBy(r.deviceActor(j), j, StateVerifying, "device reports success", nil)
		return 0
	case o.State == deviceIdle && again:
		// Some devices reset the result on boot: verification compares the version.
		r.moveBy(r.deviceActor(j), j, StateVerifying, "device registered again", nil)
		return 0
	case o.State == deviceIdle && !r.executed:
		r.settle(r.deviceActor(j), j, j.Policy.Decide(j, 4, false, r.d.now()), "the device lost the downloaded package")
		return 0
	}
	return r.d.cfg.PollInterval
}

// verify reads the result and version after the device came back.
func (r *run) verify(j *Job) time.Duration {
	o, version, verr, err := r.readStatus(j)
	if err != nil {
		if away(err) || transient(err) {
			return r.d.cfg.PollInterval
		}
		return r.deviceTrouble(j, err)
	}
	if verr != nil && (away(verr) || transient(verr)) {
		return r.d.cfg.PollInterval
	}
	state, reason := j.Policy.Verify(j, version, version != j.FromVersion, o.Result)
	set := func(n *Job) { n.DeviceState, n.DeviceResult = o.State, o.Result }
	switch {
	case state == StateSucceeded:
		r.moveBy(r.deviceActor(j), j, StateSucceeded, reason, set)
		r.d.log.Info("firmware updated", "job", j.ID, "endpoint", j.Endpoint, "version", version, "note", reason)
	case resultClass(o.Result) == ResultRetryable:
		return r.decide(j, o)
	default:
		r.moveBy(r.deviceActor(j), j, StateFailed, reason, set)
	}
	return 0
}

func resultClass(result int) ResultClass {
	_, c := Reason(result)
	return c
}

// decide applies the policy to an Update Result the device reported.
func (r *run) decide(j *Job, o object5) time.Duration {
	now := r.d.now()
	proto, isPull := deliveryProtocol(j.Delivery)
	tried := j.ProtocolsTried
	if o.Result == 9 && isPull {
		tried = append(append([]int(nil), tried...), proto)
	}
	untried := false
	if reg, err := r.d.dev.Device(r.ctx, j.Endpoint); err == nil {
		_, cerr := chooseDelivery(MethodPull, o, r.d.offeredFor(reg), tried)
		untried = cerr == nil
	}
	d := j.Policy.Decide(j, o.Result, untried, now)
	if d.Action == ActionWait {
		r.note(j, o)
		if d.RetryAt.IsZero() {
			return r.d.cfg.PollInterval
		}
		// Deferred (11): send again once the device's backoff has passed.
		r.deferTil, r.sent = d.RetryAt, false
		return d.RetryAt.Sub(now)
	}
	return r.settleWith(r.deviceActor(j), j, d, "", func(n *Job) {
		n.DeviceState, n.DeviceResult, n.ProtocolsTried = o.State, o.Result, tried
	})
}

// deviceTrouble handles a failed request: an absent device makes the job wait for it, a
// transient failure is tried again later, anything else fails the job.
func (r *run) deviceTrouble(j *Job, err error) time.Duration {
	switch {
	case r.ctx.Err() != nil:
		return 0
	case away(err):
		if j.State == StateDelivering && !r.sent {
			r.move(j, StateWaiting, fmt.Sprintf("device went away: %v", err), nil)
			return 0
		}
		// Mid-transfer a quiet device is tolerated: the step timeout bounds it.
		return r.d.cfg.PollInterval
	case transient(err):
		r.d.log.Debug("device busy, trying again", "job", j.ID, "endpoint", j.Endpoint, "err", err)
		return r.d.cfg.PollInterval
	}
	var de *dm.DeviceError
	if errors.As(err, &de) && de.Code == "4.04" {
		reg, _ := r.d.dev.Device(r.ctx, j.Endpoint)
		r.fail(j, notFoundReason(reg, err))
		return 0
	}
	r.fail(j, err.Error())
	return 0
}

// notFoundReason explains a 4.04 answer: a device that never registered Object 5 has none;
// one that did but answers Not Found has a broken Object 5, and the reason says so.
func notFoundReason(reg *registration.Registration, err error) string {
	if reg != nil && reg.HasObject(5) {
		return fmt.Sprintf("the device registered </5/0> but answered 4.04 Not Found (%v)", err)
	}
	return fmt.Sprintf("the device has no Firmware Update object: it did not register </5> (%v)", err)
}

// stalledReason says why a delivery timed out by what was seen, not as "connection lost":
// the device may have answered every request while it never got anywhere.
func stalledReason(j *Job, what string) string {
	reason := "no download within the time the link allows: " + what
	if seen := StateText(j.DeviceState); seen != "" {
		reason += fmt.Sprintf("; the device last reported State %d (%s), Update Result %d", j.DeviceState, seen, j.DeviceResult)
	}
	return reason
}

// timedOut ends a step that took longer than the policy allows. A delivery that stalls is
// handled as "connection lost" (retried); the other steps fail.
func (r *run) timedOut(j *Job, limit time.Duration) {
	what := fmt.Sprintf("%s for longer than %s", j.State, limit.Round(time.Second))
	switch j.State {
	case StateDelivering:
		r.settle(audit.ActorSystem, j, j.Policy.Retry(j, stalledReason(j, what), r.d.now()), "")
	case StateWaiting:
		r.fail(j, "the device did not come online: "+what)
	default:
		r.fail(j, "the device did not finish: "+what)
	}
}

// readObject5 reads /5/0 and keeps the State and Update Result it saw.
func (r *run) readObject5(j *Job) (object5, error) {
	res, err := r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpRead, Path: pathObject5})
	if err != nil {
		return object5{}, fmt.Errorf("read %s: %w", pathObject5, err)
	}
	return parseObject5(res.Records), nil
}

// observe asks the device to notify State and Update Result changes; a refusal is fine, since
// polling covers it.
func (r *run) observe(j *Job) {
	if r.observed {
		return
	}
	r.observed = true
	for _, p := range []lwm2m.Path{pathState, pathResult} {
		if _, err := r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpObserve, Path: p}); err != nil {
			r.d.log.Debug("observe refused; polling", "job", j.ID, "endpoint", j.Endpoint, "path", p.String(), "err", err)
		}
	}
}

// reset asks the device to drop a download or package left from before (Cancel on 1.1+, else
// an empty Package URI, else an empty Package).
func (r *run) reset(ctx context.Context, j *Job) error {
	reg, err := r.d.dev.Device(ctx, j.Endpoint)
	if err != nil {
		return err
	}
	if atLeast11(reg.ObjectVersion(5)) {
		if _, err := r.d.dev.DoNow(ctx, j.Endpoint, dm.Request{Op: dm.OpExecute, Path: pathCancel}); err == nil {
			return nil
		}
	}
	_, err = r.d.dev.DoNow(ctx, j.Endpoint, dm.Request{Op: dm.OpWrite, Path: pathPackageURI,
		Records: []lwm2m.Record{{Path: pathPackageURI, Value: lwm2m.String("")}}})
	var de *dm.DeviceError
	if errors.As(err, &de) {
		f := contentOctets
		_, err = r.d.dev.DoNow(ctx, j.Endpoint, dm.Request{Op: dm.OpWrite, Path: pathPackage, Format: &f,
			Records: []lwm2m.Record{{Path: pathPackage, Value: lwm2m.Opaque(nil)}}})
	}
	if err != nil {
		return fmt.Errorf("reset firmware update state: %w", err)
	}
	r.d.log.Info("device firmware state reset", "job", j.ID, "endpoint", j.Endpoint)
	return nil
}

// note stores a changed State or Update Result as progress.
func (r *run) note(j *Job, o object5) {
	if o.State == j.DeviceState && o.Result == j.DeviceResult {
		return
	}
	r.progress(j, func(n *Job) { n.DeviceState, n.DeviceResult = o.State, o.Result })
}

// progress stores a change within j's state, if j is still the current job.
func (r *run) progress(j *Job, change func(*Job)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.job.Seq != j.Seq {
		return false
	}
	n := r.job.Clone()
	change(n)
	n.UpdatedAt = r.d.now()
	if err := r.d.store.SaveProgress(r.life, n); err != nil {
		r.lose(err)
		r.d.log.Warn("store job progress", "job", n.ID, "err", err)
		return false
	}
	r.job = n
	return true
}

// move stores j's transition to `to` (with change applied first), if j is still the current
// job. The transition is lwota's own decision; moveBy names who caused it.
func (r *run) move(j *Job, to State, reason string, change func(*Job)) bool {
	return r.moveBy(audit.ActorSystem, j, to, reason, change)
}

// moveBy is move for a transition that actor caused: the device's own report
// (deviceActor) or lwota (audit.ActorSystem).
func (r *run) moveBy(actor string, j *Job, to State, reason string, change func(*Job)) bool {
	return r.commit(actor, j, func(n *Job) (Transition, error) {
		if change != nil {
			change(n)
		}
		return n.Apply(to, r.d.now(), reason)
	})
}

// deviceActor is the audit actor of a transition the device's own report caused.
func (r *run) deviceActor(j *Job) string { return audit.ActorDevicePrefix + j.Endpoint }

// settle applies a policy decision with reason as its cause.
func (r *run) settle(actor string, j *Job, d Decision, cause string) {
	r.settleWith(actor, j, d, cause, nil)
}

func (r *run) settleWith(actor string, j *Job, d Decision, cause string, change func(*Job)) time.Duration {
	if cause != "" {
		d.Reason = cause + ": " + d.Reason
	}
	if d.Action == ActionCancel {
		r.moveBy(actor, j, StateCancelled, d.Reason, change)
		return 0
	}
	r.commit(actor, j, func(n *Job) (Transition, error) {
		if change != nil {
			change(n)
		}
		return n.Settle(d, r.d.now())
	})
	return 0
}

func (r *run) fail(j *Job, reason string) {
	r.move(j, StateFailed, reason, nil)
}

func (r *run) failBy(actor string, j *Job, reason string) {
	r.moveBy(actor, j, StateFailed, reason, nil)
}

// foldServed brings the bytes the transfer server served this attempt's pull into n before
// it leaves delivering, whatever the outcome: a pull that failed after complete downloads
// (integrity) shows what the device fetched, not the last progress stored.
func (r *run) foldServed(n *Job) {
	if n.State != StateDelivering || n.Delivery == "" || n.Delivery == DeliveryPush {
		return
	}
	n.BytesDelivered = max(n.BytesDelivered, min(r.served.bytes.Load(), n.ImageSize))
}

// commit stores the transition build makes on a copy of the current job, then makes the copy
// current. A job that moved meanwhile (Cancel) is left alone. actor is audited as its cause.
func (r *run) commit(actor string, j *Job, build func(n *Job) (Transition, error)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.job.Seq != j.Seq {
		return false
	}
	n := r.job.Clone()
	r.foldServed(n)
	tr, err := build(n)
	if err != nil {
		r.d.log.Error("job transition refused", "job", n.ID, "err", err)
		return false
	}
	if err := r.d.store.SaveTransition(r.life, n, tr); err != nil {
		r.lose(err)
		if r.life.Err() == nil {
			r.d.log.Warn("store job transition", "job", n.ID, "to", tr.To, "err", err)
		}
		return false
	}
	r.job = n
	r.d.m.transitions.WithLabelValues(string(tr.To)).Inc()
	r.d.record(r.life, actor, n, tr)
	r.d.log.Debug("job", "job", n.ID, "endpoint", n.Endpoint, "from", tr.From, "to", tr.To, "reason", tr.Reason)
	if tr.To == StateSucceeded || tr.To == StateFailed && !n.Retryable() {
		r.d.m.duration.WithLabelValues(string(tr.To)).Observe(tr.At.Sub(n.CreatedAt).Seconds())
	}
	if !n.Active() || tr.To == StateFailed {
		r.releaseHold()
	}
	return true
}

// lose lets the job go when, with several nodes, a save finds it moved on: another node drives
// it now. The step's requests are cancelled and the loop ends.
func (r *run) lose(err error) {
	if !r.d.cfg.Cluster || !errors.Is(err, ErrStaleJob) {
		return
	}
	r.lost.Store(true)
	if r.stepCancel != nil {
		r.stepCancel()
	}
	r.d.log.Info("firmware update job driven by another node now", "job", r.job.ID, "endpoint", r.job.Endpoint)
}

func (r *run) releaseHold() {
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// cancelJob is Driver.Cancel for a job this process drives.
func (r *run) cancelJob(ctx context.Context, reason string) (*Job, error) {
	r.mu.Lock()
	if !r.job.Active() {
		st := r.job.State
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: job %s already %s", ErrInvalidTransition, r.job.ID, st)
	}
	n := r.job.Clone()
	r.foldServed(n)
	tr, err := n.Apply(StateCancelled, r.d.now(), reason)
	if err == nil {
		err = r.d.store.SaveTransition(ctx, n, tr)
	}
	if err != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("cancel job %s: %w", n.ID, err)
	}
	was := r.job
	r.job = n
	r.mu.Unlock()
	r.d.m.transitions.WithLabelValues(string(StateCancelled)).Inc()
	r.d.record(ctx, audit.ActorSystem, n, tr)
	r.d.log.Info("firmware update cancelled", "job", n.ID, "endpoint", n.Endpoint, "reason", reason)
	// Stop whatever the loop is doing (a push), then tell the device, from the loop's finish.
	r.cancelled.Store(was.Delivery != "" && (was.State == StateDelivering || was.State == StateDownloaded))
	r.cancel()
	return n, nil
}

// cleanupTimeout bounds the requests that tidy up after a job ended.
const cleanupTimeout = 30 * time.Second

// finish tidies up once the loop ends: the registration hold goes, and after a job ended the
// device stops notifying State and Result; after a Cancel it drops the transfer. At shutdown
// (parent done) nothing is sent: the job resumes at the next start.
func (r *run) finish() {
	r.mu.Lock()
	r.releaseHold()
	j := r.job
	r.mu.Unlock()
	if r.parent.Err() != nil || j.Active() {
		return
	}
	ctx, cancel := context.WithTimeout(r.parent, cleanupTimeout)
	defer cancel()
	if r.cancelled.Load() {
		if err := r.reset(ctx, j); err != nil {
			r.d.log.Info("cancelled job: device not reset", "job", j.ID, "endpoint", j.Endpoint, "err", err)
		}
	}
	if r.observed || j.Delivery != "" {
		for _, p := range []lwm2m.Path{pathState, pathResult} {
			_, _ = r.d.dev.DoNow(ctx, j.Endpoint, dm.Request{Op: dm.OpCancelObserve, Path: p})
		}
	}
}
