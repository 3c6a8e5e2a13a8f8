package lwm2mtest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// serveRouterDTLS returns a serveRouter over DTLS 1.2 that knows one PSK credential.
func serveRouterDTLS(identity string, key []byte) func(*testing.T, *mux.Router) string {
	return func(t *testing.T, r *mux.Router) string {
		t.Helper()
		l, err := coapnet.NewDTLSListener("udp4", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
			piondtls.WithPSK(func(id []byte) ([]byte, error) {
				if string(id) != identity {
					return nil, errors.New("unknown identity")
				}
				return key, nil
			}),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		))
		if err != nil {
			t.Fatalf("listen dtls: %v", err)
		}
		serveCoAP(t, r, l)
		return l.Addr().String()
	}
}

// A device with a PSK registers over DTLS, answers the server on that session and fetches a
// coaps:// package over a DTLS session of its own; without a PSK a coaps:// URI is Result 9.
func TestFirmwarePullCoAPS(t *testing.T) {
	key := []byte("secretkey123")
	s := newTestServerOn(t, serveRouterDTLS("id-1", key))
	pkg := firmware(t, "2.1.0", 50000)
	fw := newFWServerOn(t, pkg, blockwise.SZX512, serveRouterDTLS("id-1", key))
	d := startDevice(t, s, DeviceConfig{PSKIdentity: "id-1", PSK: key, Protocols: []int{ProtoCoAPS},
		BlockTimeout: 100 * time.Millisecond, BlockRetries: 8})
	c := s.dm(t, d)
	// The loss is the download's: the Write of the URI goes over a clean link. Over the lossy
	// one (a request dropped 19% of the time, its answer included), the test server's go-coap
	// client, which looks for retransmissions every few seconds, ran out of its 10 s once in
	// CI (session 18: "cannot write request: context deadline exceeded").
	writeURI(t, c, "coaps://"+fw.addr+"/fw/x")
	d.SetFaults(Faults{Loss: 0.1})
	waitFW(t, d, FWDownloaded, FWResultInitial, 60*time.Second)
	if got := downloaded(d); !bytes.Equal(got, pkg) {
		t.Fatalf("downloaded %d bytes, differ from the %d served", len(got), len(pkg))
	}
	if d.Stats().Lost == 0 {
		t.Fatal("no datagram of the download was lost: the test proves nothing about loss")
	}

	ps := newTestServer(t)
	plain := startDevice(t, ps, DeviceConfig{Protocols: []int{ProtoCoAP, ProtoCoAPS}})
	writeURI(t, ps.dm(t, plain), "coaps://"+fw.addr+"/fw/x")
	waitFW(t, plain, FWIdle, FWResultUnsupportedProto, 5*time.Second)
}

// A wrong key fails the handshake: the device cannot start.
func TestDTLSWrongKey(t *testing.T) {
	s := newTestServerOn(t, serveRouterDTLS("id-1", []byte("secretkey123")))
	d := NewDevice(DeviceConfig{Endpoint: "wrong-key", PSKIdentity: "id-1", PSK: []byte("otherkey456"), RequestTimeout: 3 * time.Second}, nil)
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Start(ctxT(t), s.addr); err == nil {
		t.Fatal("started with a wrong key")
	}
}
