package fwupdate

import (
	"testing"
	"time"
)

// The furthest byte only grows, and a store is asked for at the first new byte, then at most
// once per interval.
func TestServedReport(t *testing.T) {
	var s served
	steps := []struct {
		name  string
		n     int64
		at    time.Duration // after t0
		due   bool
		bytes int64
	}{
		{"first block is stored at once", 1024, 0, true, 1024},
		{"next block within the interval", 2048, 100 * time.Millisecond, false, 2048},
		{"a block served again", 1024, 2 * time.Second, false, 2048},
		{"a new block after the interval", 3072, 1100 * time.Millisecond, true, 3072},
		{"just after that store", 4096, 1200 * time.Millisecond, false, 4096},
		{"one interval after that store", 5120, 2100 * time.Millisecond, true, 5120},
	}
	for _, st := range steps {
		if due := s.report(st.n, t0.Add(st.at), time.Second); due != st.due || s.bytes.Load() != st.bytes {
			t.Errorf("%s: due %v, bytes %d; want %v, %d", st.name, due, s.bytes.Load(), st.due, st.bytes)
		}
	}
	s.reset()
	if !s.report(512, t0.Add(2200*time.Millisecond), time.Second) || s.bytes.Load() != 512 {
		t.Errorf("after reset: a resumed pull's first block is not stored at once (bytes %d)", s.bytes.Load())
	}
}

// Driver.Progress keeps the furthest byte of the job it drives, asks its loop to store it (one
// request pending at most, never blocking the transfer server) and shows it in Job; reports for
// jobs it does not drive are ignored.
func TestDriverProgress(t *testing.T) {
	now := t0
	d := New(Config{ProgressInterval: time.Second}, nil, nil, nil, nil, nil, nil, func() time.Time { return now })
	r := &run{d: d, saveC: make(chan struct{}, 1), job: jobIn(StateDelivering, false)}
	r.job.Delivery = DeliveryCoAP
	d.runs["j"] = r

	d.Progress("other", 4096) // not driven here
	d.Progress("j", 1024)
	d.Progress("j", 2048) // within the interval: no second request, and no blocking
	now = now.Add(2 * time.Second)
	d.Progress("j", 3072) // due, but one request is pending already: still no blocking
	if got := len(r.saveC); got != 1 {
		t.Fatalf("%d store requests pending, want 1", got)
	}
	if got := r.served.bytes.Load(); got != 3072 {
		t.Fatalf("served %d bytes, want 3072", got)
	}
	j := r.job.Clone()
	d.withServed(j)
	if j.BytesDelivered != 3072 {
		t.Errorf("job shows %d bytes delivered, want 3072", j.BytesDelivered)
	}
	for _, c := range []struct {
		name  string
		state State
		via   string
	}{{"push", StateDelivering, DeliveryPush}, {"downloaded", StateDownloaded, DeliveryCoAP}} {
		j := r.job.Clone()
		j.State, j.Delivery, j.BytesDelivered = c.state, c.via, 7
		d.withServed(j)
		if j.BytesDelivered != 7 {
			t.Errorf("%s: job shows %d bytes delivered, want its own 7", c.name, j.BytesDelivered)
		}
	}
}
