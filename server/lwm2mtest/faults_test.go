package lwm2mtest

import (
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/lwm2m"
)

func TestFaultsOneShot(t *testing.T) {
	var b faultBox
	b.set(Faults{RebootAfterBlocks: 3, FailAfterBlocks: 2, Loss: 0.5})
	reboot := func(f *Faults) *int { return &f.RebootAfterBlocks }
	if b.take(2, reboot) {
		t.Error("fired before its block")
	}
	if !b.take(3, reboot) || b.take(3, reboot) {
		t.Error("did not fire exactly once")
	}
	if f := b.get(); f.RebootAfterBlocks != 0 || f.FailAfterBlocks != 2 || f.Loss != 0.5 {
		t.Errorf("faults after firing %+v", f)
	}
}

func TestFaultsLossOnTheLwM2MSocket(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{})
	c := s.dm(t, d)
	d.SetFaults(Faults{Loss: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.conn.Get(ctx, "/3/0/0"); err == nil {
		t.Fatal("a request reached a device losing every datagram")
	}
	if st := d.Stats(); st.Lost == 0 || st.Requests[OpRead] != 0 {
		t.Errorf("stats %+v", st)
	}
	d.SetFaults(Faults{})
	if got := d.Faults(); got != (Faults{}) {
		t.Errorf("faults %+v", got)
	}
	if a := c.get("/3/0/0", accept(lwm2m.FormatText)); a.code != codes.Content {
		t.Errorf("read after the link came back: %v", a.code)
	}
}

// NoUpdates silences the Updates due by the lifetime; an explicit Update still goes out, and
// the Updates resume once the fault is cleared.
func TestFaultsNoUpdates(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{Lifetime: time.Second, Faults: Faults{NoUpdates: true}})
	time.Sleep(2 * time.Second) // two Updates would have been due
	if n := d.Stats().Updates; n != 0 {
		t.Fatalf("%d Updates sent while they were off", n)
	}
	if err := d.Update(ctxT(t)); err != nil {
		t.Fatalf("explicit Update: %v", err)
	}
	d.SetFaults(Faults{})
	s.next(t, "update", time.Second)
	s.next(t, "update", 2*time.Second) // the lifetime's, again
}

func TestDefaultUpdatedVersion(t *testing.T) {
	if v := DefaultUpdatedVersion([]byte("LWOTA-FW 1.2.3 \nrest")); v != "1.2.3" {
		t.Errorf("header version %q", v)
	}
	if v := DefaultUpdatedVersion([]byte("raw")); len(v) != len("updated-")+8 || v[:8] != "updated-" {
		t.Errorf("hash version %q", v)
	}
}
