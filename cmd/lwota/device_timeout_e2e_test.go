package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// rawRegister registers endpoint over plain CoAP from conn, a real UDP socket, and waits for the
// 2.01 Created; after it the socket stays open and never answers: a device that went away
// without de-registering (its power cut, its NAT mapping gone).
func rawRegister(t *testing.T, conn *net.UDPConn, server *net.UDPAddr, endpoint string) {
	t.Helper()
	msg := []byte{0x40, 0x02, 0x12, 0x34}         // CON POST, message id 0x1234, no token
	msg = append(msg, 0xB2, 'r', 'd')             // Uri-Path (11) "rd"
	msg = append(msg, 0x11, 40)                   // Content-Format (12): application/link-format
	msg = append(msg, 0x30|byte(3+len(endpoint))) // Uri-Query (15) "ep=..."
	msg = append(msg, "ep="+endpoint...)
	for _, q := range []string{"lt=300", "lwm2m=1.1", "b=U"} {
		msg = append(msg, byte(len(q)))
		msg = append(msg, q...)
	}
	msg = append(msg, 0xFF)
	msg = append(msg, "</1/0>,</3/0>"...)
	if _, err := conn.WriteToUDP(msg, server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no answer to the Register: %v", err)
		}
		// The ACK to our message id with 2.01 Created; lwota may send its own requests first.
		if n >= 4 && buf[0]>>4&3 == 2 && buf[1] == 0x41 && buf[2] == 0x12 && buf[3] == 0x34 {
			return
		}
	}
}

// TestDeviceRequestTimeout: a Read of a registered device that stopped answering is answered
// 504 device_timeout once --device-request-timeout passes, not after the transport's
// retransmissions (over a minute).
func TestDeviceRequestTimeout(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	const bound = 2 * time.Second
	ts := startService(t, t.TempDir(), "", "--device-request-timeout", bound.String(), "--read-device-info=false")
	server, err := net.ResolveUDPAddr("udp", ts.coap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rawRegister(t, conn, server, "silent-1")

	req, _ := http.NewRequest(http.MethodGet, ts.base+"/api/v1/devices/silent-1/objects/3/0/0", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var body struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusGatewayTimeout || body.Error.Code != "device_timeout" {
		t.Fatalf("status %d %s, want 504 device_timeout", resp.StatusCode, data)
	}
	// At least the bound (the device had its time); well under the transport's minute. The slack
	// covers a loaded machine.
	if took < bound || took > bound+15*time.Second {
		t.Fatalf("answered after %s, want about %s", took, bound)
	}
	t.Logf("504 after %s: %s", took, body.Error.Message)
}

// TestDeviceRequestTimeoutGoneAwayProfile: the simulator's gone-away profile (registers, then
// answers nothing) gets the same bounded 504.
func TestDeviceRequestTimeoutGoneAwayProfile(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	const bound = 2 * time.Second
	ts := startService(t, t.TempDir(), "", "--device-request-timeout", bound.String(), "--read-device-info=false")
	cfg := lwm2mtest.WithProfileGoneAway(simTemplate())
	cfg.Endpoint = "gone-1"
	dev := lwm2mtest.NewDevice(cfg, nil)
	defer dev.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dev.Start(ctx, ts.coap); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var body struct {
		Error struct{ Code string }
	}
	code := ts.apiCall(t, "GET", "/api/v1/devices/gone-1/objects/3/0/0", nil, &body)
	took := time.Since(start)
	if code != http.StatusGatewayTimeout || body.Error.Code != "device_timeout" {
		t.Fatalf("status %d %+v, want 504 device_timeout", code, body)
	}
	if took < bound || took > bound+15*time.Second {
		t.Fatalf("answered after %s, want about %s", took, bound)
	}
}
