package lwm2mtest

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
)

// The nat-rebinding profile moves a coaps:// pull to a new source port after 3 blocks, within
// one DTLS session: lwota's transport (connection ids on) serves the first 3 blocks to one port
// and the rest to another, and the package arrives whole.
func TestProfileNATRebinding(t *testing.T) {
	pkg := make([]byte, 6*1024+100) // 7 blocks of 1024
	_, _ = rand.Read(pkg)
	var mu sync.Mutex
	var ports []uint16 // source port of each block request
	registered := make(chan transport.Peer, 1)
	h := transport.HandlerFunc(func(_ context.Context, from transport.Peer, r *transport.Message) *transport.Message {
		switch {
		case r.Code == transport.POST && r.Path == "/rd":
			select {
			case registered <- from:
			default:
			}
			m := transport.NewMessage(transport.Created)
			m.LocationPath = []string{"rd", "1"}
			return m
		case r.Code == transport.GET && r.Path == "/fw":
			mu.Lock()
			ports = append(ports, from.Addr.AddrPort.Port())
			mu.Unlock()
			m := transport.NewMessage(transport.Content)
			m.Payload = pkg
			return m
		}
		return transport.NewMessage(transport.Changed)
	})
	pc, e := serveDTLSPSK(t, h)

	cfg := ApplyProfileNATRebinding(DeviceConfig{Endpoint: "urn:dev:nat", PSKIdentity: "id-1", PSK: []byte("secretkey123"),
		Protocols: []int{ProtoCoAPS}, RequestTimeout: 30 * time.Second})
	d := NewDevice(cfg, nil)
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Start(ctxT(t), pc.LocalAddr().String()); err != nil {
		t.Fatalf("start: %v", err)
	}
	dev := <-registered
	w := transport.NewMessage(transport.PUT)
	w.Path, w.ContentFormat = "/5/0/1", 0
	w.Payload = []byte("coaps://" + pc.LocalAddr().String() + "/fw")
	if ans, err := e.Do(ctxT(t), dev.Addr, w); err != nil || ans.Code != transport.Changed {
		t.Fatalf("write Package URI: %v %+v", err, ans)
	}
	eventually(t, time.Minute, "package downloaded", func() bool {
		s, _ := d.FirmwareState()
		return s == FWDownloaded
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ports) != 7 {
		t.Fatalf("%d block requests, want 7", len(ports))
	}
	for i, p := range ports {
		before := i < NATRebindAfterBlocks
		if (p == ports[0]) != before {
			t.Fatalf("block %d from port %d (first block from %d): want a new port from block %d on; ports %v", i, p, ports[0], NATRebindAfterBlocks, ports)
		}
	}
	if st := d.Stats(); st.Rebinds != 1 || st.BytesDownloaded != uint64(len(pkg)) {
		t.Fatalf("%d rebinds, %d bytes", st.Rebinds, st.BytesDownloaded)
	}
}

// serveDTLSPSK serves h on a loopback DTLS endpoint with connection ids, for the one PSK
// identity id-1 (key secretkey123), until the test ends, and returns its socket and endpoint.
func serveDTLSPSK(t *testing.T, h transport.Handler) (net.PacketConn, *transport.Endpoint) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e, err := transport.NewDTLS(pc, h, transport.DefaultConfig(), transport.DTLSConfig{PSK: pskOne{"id-1", "secretkey123"}, ConnectionID: true}, nil, nil)
	if err != nil {
		t.Fatalf("NewDTLS: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return pc, e
}
