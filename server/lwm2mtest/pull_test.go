package lwm2mtest

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// blockServer answers GET with blocks of an 8-block, 1 KiB-per-block image, as a stateless
// Block2 server does. It drops the first copy of every fifth request when lossy, and answers
// 4.04 to every request when notFound.
func blockServer(t *testing.T, lossy, notFound bool) string {
	t.Helper()
	payload := bytes.Repeat([]byte{0xa5}, 1024)
	seen := map[string]bool{}
	return udpServer(t, func(from netip.AddrPort, req *message.Message) *message.Message {
		key := from.String() + "/" + string(rune(req.MessageID))
		if lossy && req.MessageID%5 == 0 && !seen[key] {
			seen[key] = true
			return nil
		}
		resp := &message.Message{Token: req.Token, MessageID: req.MessageID, Type: message.Acknowledgement, Code: codes.Content}
		if notFound {
			resp.Code = codes.NotFound
			return resp
		}
		v, _ := req.Options.GetUint32(message.Block2)
		num := v >> 4
		more := uint32(0)
		if num < 7 {
			more = 8
		}
		resp.Options, _, _ = resp.Options.SetUint32(make([]byte, 4), message.Block2, num<<4|more|6)
		resp.Payload = payload
		return resp
	})
}

// udpServer serves CoAP on a UDP socket of its own until the test ends, one datagram at a time
// on one goroutine: answer gets each decoded request, and its answer (nil: none, the request
// dropped) is sent back. It returns the URI of /fw/tok there.
func udpServer(t *testing.T, answer func(from netip.AddrPort, req *message.Message) *message.Message) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		in, out := make([]byte, 2048), make([]byte, 2048)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(in)
			if err != nil {
				return
			}
			req := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(in[:n], &req); err != nil {
				continue
			}
			resp := answer(from, &req)
			if resp == nil {
				continue
			}
			k, err := coder.DefaultCoder.Encode(*resp, out)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = pc.WriteToUDPAddrPort(out[:k], from)
		}
	}()
	return "coap://" + pc.LocalAddr().String() + "/fw/tok"
}

func TestPullLoad(t *testing.T) {
	uri := blockServer(t, false, false)
	rep, err := PullLoad(context.Background(), PullConfig{URI: uri, Devices: 4, Duration: 1200 * time.Millisecond, Window: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blocks == 0 || rep.Images == 0 || rep.Errors != 0 || rep.Bytes != rep.Blocks*1024 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Windows) != 2 || rep.Decline() <= 0 || rep.Decline() > 1 {
		t.Fatalf("windows %v, decline %v", rep.Windows, rep.Decline())
	}
}

// TestPullLoadDurationAfterStarted: the run lasts Duration from the moment Started returns, so
// a Started that waits (the child process of lwota bench pull waits there for its parent's go)
// takes nothing from the pull.
func TestPullLoadDurationAfterStarted(t *testing.T) {
	uri := blockServer(t, false, false)
	const d = 300 * time.Millisecond
	rep, err := PullLoad(context.Background(), PullConfig{URI: uri, Devices: 2, Duration: d,
		Started: func() { time.Sleep(2 * d) }}) // a Started that waits longer than the run
	if err != nil {
		t.Fatal(err)
	}
	if rep.Elapsed < d*9/10 || rep.Blocks == 0 {
		t.Fatalf("the devices pulled %d blocks in %v after Started, want %v of pulling", rep.Blocks, rep.Elapsed, d)
	}
}

func TestPullLoadRetransmits(t *testing.T) {
	uri := blockServer(t, true, false)
	rep, err := PullLoad(context.Background(), PullConfig{URI: uri, Devices: 2, Duration: 2 * time.Second, Timeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Retransmits == 0 || rep.Errors != 0 || rep.Blocks == 0 {
		t.Fatalf("report %+v", rep)
	}
}

func TestPullLoadErrors(t *testing.T) {
	uri := blockServer(t, false, true)
	// Rounds of 2 s, not 200 ms: under -race beside the rest of the suite a short round may
	// complete no exchange at all (TestEchoLoadApart failed so in CI with 100 ms rounds).
	rep, err := PullLoad(context.Background(), PullConfig{URI: uri, Devices: 1, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors == 0 || rep.Blocks != 0 || !strings.Contains(rep.FirstError, "4.04") {
		t.Fatalf("report %+v", rep)
	}
	if _, err := PullLoad(context.Background(), PullConfig{URI: "http://x/y"}); err == nil {
		t.Fatal("PullLoad accepted an http URI")
	}
}

func TestUDPEcho(t *testing.T) {
	rate, err := UDPEcho(context.Background(), 2, 2*time.Second) // 2 s: see TestPullLoadErrors
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("rate %v", rate)
	}
}

// TestEchoLoadApart: one EchoServer serves runs of clients one after another, each calling
// Started once its sockets are open and Ended once its round trips stopped; an address
// without a port is refused before any socket opens.
func TestEchoLoadApart(t *testing.T) {
	srv, err := ListenEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for range 2 {
		var events []string
		// Long enough for one round trip on a loaded machine: at 100 ms a CI run under -race
		// beside other packages' tests completed none ("rate 0").
		rate, err := EchoLoad(context.Background(), EchoConfig{Addr: srv.Addr(), Clients: 3, Duration: 2 * time.Second,
			Started: func() { events = append(events, "started") },
			Ended:   func() { events = append(events, "ended") }})
		if err != nil {
			t.Fatal(err)
		}
		if rate <= 0 || strings.Join(events, ",") != "started,ended" {
			t.Fatalf("rate %v, hooks %v", rate, events)
		}
	}
	if _, err := EchoLoad(context.Background(), EchoConfig{Addr: "127.0.0.1", Clients: 1}); err == nil {
		t.Fatal("EchoLoad accepted an address without a port")
	}
}

// lockoutServer answers as blockServer does, except that it drops the first copy of every
// device's first request, and every request of the device it heard from first: a device locked
// out, as a server whose full queue keeps dropping the same devices' retransmissions.
func lockoutServer(t *testing.T) string {
	t.Helper()
	payload := bytes.Repeat([]byte{0xa5}, 64)
	var lockedOut string
	firstMID := map[string]int32{} // per device: its first request's message id
	seen := map[string]bool{}      // devices whose first request was dropped once
	return udpServer(t, func(from netip.AddrPort, req *message.Message) *message.Message {
		dev := from.String()
		if lockedOut == "" {
			lockedOut = dev
		}
		if _, ok := firstMID[dev]; !ok {
			firstMID[dev] = req.MessageID
		}
		if dev == lockedOut || (req.MessageID == firstMID[dev] && !seen[dev]) {
			seen[dev] = true
			return nil
		}
		resp := &message.Message{Token: req.Token, MessageID: req.MessageID, Type: message.Acknowledgement, Code: codes.Content,
			Payload: payload}
		resp.Options, _, _ = resp.Options.SetUint32(make([]byte, 4), message.Block2, 2) // block 0, the last, 64 bytes
		return resp
	})
}

// TestPullLoadDiagnosis: the report tells a locked-out device (the fewest blocks, 0, far below
// the median) and lost first requests (each device's first request retransmitted, the locked-out
// one's MaxRetransmit times; its first answer never came) from a count of retransmissions alone.
func TestPullLoadDiagnosis(t *testing.T) {
	uri := lockoutServer(t)
	const devices = 4
	rep, err := PullLoad(context.Background(), PullConfig{URI: uri, Devices: devices, Duration: time.Second,
		Timeout: 20 * time.Millisecond, BlockSize: 64}) // 4 retransmissions take 20+40+80+160 ms
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlocksLeast != 0 || rep.BlocksMedian == 0 {
		t.Fatalf("blocks per device least %d, median %d: want the locked-out device's 0 and the others' more", rep.BlocksLeast, rep.BlocksMedian)
	}
	if want := int64(devices - 1 + 4); rep.FirstRetransmits < want {
		t.Fatalf("first requests retransmitted %d times, want at least %d (once per device, 4 times for the locked-out one)", rep.FirstRetransmits, want)
	}
	if rep.FirstAnswerMax < rep.Elapsed {
		t.Fatalf("longest first answer %v, want the whole run (%v): the locked-out device got none", rep.FirstAnswerMax, rep.Elapsed)
	}
}
