package lwm2mtest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestFleet(t *testing.T) {
	s := newTestServer(t)
	const n = 200
	f := NewFleet(n, DeviceConfig{Lifetime: time.Hour}, func(i int) string { return fmt.Sprintf("fleet-%03d", i) }, nil)
	t.Cleanup(func() { _ = f.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a bound for loaded machines
	defer cancel()
	rep, err := f.Start(ctx, s.addr, 16)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if rep.Registered != n || rep.Rate() <= 0 {
		t.Errorf("report %+v", rep)
	}
	t.Logf("%d registrations in %v (%.0f/s)", rep.Registered, rep.Duration, rep.Rate())
	eps, ports := map[string]bool{}, map[string]bool{}
	for range n {
		e := s.next(t, "register", 5*time.Second)
		eps[e.ep], ports[e.from.String()] = true, true
	}
	if len(eps) != n || len(ports) != n {
		t.Errorf("%d endpoints from %d addresses, want %d each", len(eps), len(ports), n)
	}
	if st := f.Stats(); st.Registrations != n {
		t.Errorf("stats registrations %d", st.Registrations)
	}
	if f.Devices()[7].Endpoint() != "fleet-007" {
		t.Errorf("naming: %s", f.Devices()[7].Endpoint())
	}
}

func TestFleetStopsAtFirstError(t *testing.T) {
	s := newTestServer(t)
	f := NewFleet(5, DeviceConfig{}, func(i int) string { return "" }, nil) // no endpoint: refused
	t.Cleanup(func() { _ = f.Close() })
	rep, err := f.Start(ctxT(t), s.addr, 2)
	if err == nil || rep.Registered != 0 {
		t.Fatalf("report %+v, err %v", rep, err)
	}
}
