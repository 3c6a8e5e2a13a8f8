package lwm2mtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// dtlsBlockServer is blockServer over DTLS (PSK, any identity, key "pullkey"): it answers GET
// with blocks of an 8-block, 1 KiB-per-block image, drops the first copy of every fifth
// request when lossy, and answers 4.04 to every request when notFound.
func dtlsBlockServer(t *testing.T, lossy, notFound bool) string {
	t.Helper()
	ln, err := piondtls.ListenWithOptions("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)},
		piondtls.WithPSK(func([]byte) ([]byte, error) { return []byte("pullkey"), nil }),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				in, out := make([]byte, 2048), make([]byte, 2048)
				payload := bytes.Repeat([]byte{0xa5}, 1024)
				seen := map[int32]bool{}
				for {
					n, err := c.Read(in)
					if err != nil {
						return
					}
					req := message.Message{Options: make(message.Options, 0, 16)}
					if _, err := coder.DefaultCoder.Decode(in[:n], &req); err != nil {
						continue
					}
					if lossy && req.MessageID%5 == 0 && !seen[req.MessageID] {
						seen[req.MessageID] = true
						continue
					}
					resp := message.Message{Token: req.Token, MessageID: req.MessageID, Type: message.Acknowledgement, Code: codes.Content}
					if notFound {
						resp.Code = codes.NotFound
					} else {
						v, _ := req.Options.GetUint32(message.Block2)
						num, more := v>>4, uint32(0)
						if num < 7 {
							more = 8
						}
						resp.Options, _, _ = resp.Options.SetUint32(make([]byte, 4), message.Block2, num<<4|more|6)
						resp.Payload = payload
					}
					k, err := coder.DefaultCoder.Encode(resp, out)
					if err != nil {
						return
					}
					if _, err := c.Write(out[:k]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "coaps://" + ln.Addr().String() + "/fw/tok"
}

func pullPSK(i int) PSK { return PSK{Identity: fmt.Sprintf("dev%d", i), Key: []byte("pullkey")} }

// TestPullLoadDTLSEvents: devices pulling over DTLS, driven by the records pion hands them
// (dtls_pull_events.go), count what the plain devices count: whole 1 KiB blocks and images,
// retransmissions after a lost request (and no error once the retransmission is answered), and
// the server's error answers.
func TestPullLoadDTLSEvents(t *testing.T) {
	cases := []struct {
		name            string
		lossy, notFound bool
		cfg             PullConfig
		check           func(PullReport) error
	}{
		{"clean", false, false, PullConfig{Devices: 4, Duration: 1500 * time.Millisecond, Window: 500 * time.Millisecond}, func(r PullReport) error {
			if r.Blocks == 0 || r.Images == 0 || r.Errors != 0 || r.Bytes != r.Blocks*1024 {
				return fmt.Errorf("want blocks, images, 1 KiB each, no error")
			}
			return nil
		}},
		{"lossy", true, false, PullConfig{Devices: 2, Duration: 1500 * time.Millisecond, Timeout: 20 * time.Millisecond}, func(r PullReport) error {
			if r.Retransmits == 0 || r.Errors != 0 || r.Blocks == 0 {
				return fmt.Errorf("want retransmissions, blocks and no error")
			}
			return nil
		}},
		{"not found", false, true, PullConfig{Devices: 1, Duration: 2 * time.Second}, func(r PullReport) error {
			if r.Errors == 0 || r.Blocks != 0 || !strings.Contains(r.FirstError, "4.04") {
				return fmt.Errorf("want 4.04 errors and no block")
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.URI = dtlsBlockServer(t, tc.lossy, tc.notFound)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := PullLoadDTLS(ctx, tc.cfg, pullPSK)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(rep); err != nil {
				t.Fatalf("%v: report %+v", err, rep)
			}
		})
	}
}

// TestPullLoadStartedEnded: a run calls Started as its devices start and Ended as they stop,
// once each, for plain CoAP and DTLS alike, so that lwota bench pull measures both the same way
// (the DTLS handshakes before Started, the sessions' teardown after Ended).
func TestPullLoadStartedEnded(t *testing.T) {
	run := map[string]func(PullConfig) (PullReport, error){
		"coap": func(cfg PullConfig) (PullReport, error) {
			cfg.URI = blockServer(t, false, false)
			return PullLoad(context.Background(), cfg)
		},
		"coaps": func(cfg PullConfig) (PullReport, error) {
			cfg.URI = dtlsBlockServer(t, false, false)
			return PullLoadDTLS(context.Background(), cfg, pullPSK)
		},
	}
	for name, pull := range run {
		t.Run(name, func(t *testing.T) {
			var calls []string
			rep, err := pull(PullConfig{Devices: 2, Duration: time.Second,
				Started: func() { calls = append(calls, "started") }, Ended: func() { calls = append(calls, "ended") }})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(calls, ",") != "started,ended" || rep.Blocks == 0 {
				t.Fatalf("calls %v, report %+v; want started, then ended", calls, rep)
			}
		})
	}
}

// TestDTLSLoadClientConnectedSocket: a load device's DTLS connection runs over a socket
// connected to the server, as a plain pull device's does (its local address is the loopback
// address the kernel chose for that route, not the unspecified address of an unconnected
// socket, which had the kernel route every datagram).
func TestDTLSLoadClientConnectedSocket(t *testing.T) {
	uri := dtlsBlockServer(t, false, false)
	raddr, _, err := pullTarget(uri, "coaps", "5684")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dialLoadDevice(ctx, t, raddr)
	local, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || !local.IP.Equal(raddr.IP) {
		t.Fatalf("local address %v: want a socket connected to %v", c.LocalAddr(), raddr)
	}
}

// dialLoadDevice handshakes one PSK-CCM-8 load device with the server at raddr; the test closes
// it.
func dialLoadDevice(ctx context.Context, t *testing.T, raddr *net.UDPAddr) *piondtls.Conn {
	t.Helper()
	suites, err := ParseDTLSSuites("psk-ccm8")
	if err != nil {
		t.Fatal(err)
	}
	c, err := DTLSLoadClient{Suite: suites[0], PSK: pullPSK}.Dial(ctx, raddr, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestPullEventsLazyTimer: a DTLS device answered on time starts its retransmission timer
// about once per ACK_TIMEOUT, not once per block (a timer Stop and Reset per block were a cold
// runtime timer each at 1,000 devices); under loss it still retransmits when a request is due
// (TestPullLoadDTLSEvents/lossy).
func TestPullEventsLazyTimer(t *testing.T) {
	uri := dtlsBlockServer(t, false, false)
	raddr, pathOpts, err := pullTarget(uri, "coaps", "5684")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := dialLoadDevice(ctx, t, raddr)
	cfg := PullConfig{URI: uri, Devices: 1, Duration: time.Second, Timeout: 200 * time.Millisecond}.withDefaults()
	var blocks atomic.Int64
	d := &pullDevice{cfg: cfg, conn: c, pathOpts: pathOpts, blocks: &blocks}
	rctx, rcancel := context.WithTimeout(ctx, cfg.Duration)
	defer rcancel()
	d.runEvents(rctx, c)
	// 1 s at a 200 ms timeout: 5 expiries, each re-arming once, and the first arm; a loaded
	// machine may add a few (a timer that fires late re-arms for less).
	if d.nErrors != 0 || d.nBlocks < 40 || d.nTimerArms > 12 {
		t.Fatalf("%d blocks, %d errors (%v), %d timer starts; want at least 40 blocks, no error, at most 12 starts",
			d.nBlocks, d.nErrors, d.firstErr, d.nTimerArms)
	}
	t.Logf("%d blocks, %d timer starts", d.nBlocks, d.nTimerArms)
}
