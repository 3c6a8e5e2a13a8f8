package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// coapsRegister registers with libcoap's OpenSSL client over DTLS PSK, as a device would.
func coapsRegister(t *testing.T, ts *testService, identity, key, endpoint string) string {
	t.Helper()
	client := sysdeps.Require(t, "coap-client-openssl")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, client, "-m", "post", "-t", "40", "-B", "5", "-u", identity, "-k", key,
		"-e", "</1/0>,</3/0>",
		fmt.Sprintf("coaps://%s/rd?ep=%s&lt=60&lwm2m=1.1", ts.svc.core.CoAPSAddr(), endpoint)).CombinedOutput()
	t.Logf("coap-client-openssl -u %s, ep=%s: %q", identity, endpoint, out)
	return string(out)
}

// registeredBy reports whether out, coap-client's output, is that of a Register answered 2.01:
// the client prints nothing for a 2.xx answer without a payload, and an error otherwise (a
// failed handshake: "ERR cannot send CoAP pdu"; an error answer: "4.03 Forbidden"). Looking
// for "2.01" in out matched no real answer, only a log line's timestamp ("13:21:02.015"),
// which failed TestCredentialsImportCLI once.
func registeredBy(out string) bool { return strings.TrimSpace(out) == "" }

func deviceCount(t *testing.T, ts *testService) int {
	t.Helper()
	var list deviceList
	if code := ts.apiCall(t, "GET", "/api/v1/devices", nil, &list); code != 200 {
		t.Fatalf("device list: status %d", code)
	}
	return len(list.Devices)
}

// TestDTLSRegistration: a device registers over DTLS with its PSK; a wrong key fails the
// handshake; the right key with another device's endpoint name gets 4.03.
func TestDTLSRegistration(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-nosec=false")
	body := map[string]any{"psk": map[string]string{"identity": "id-1", "key": hex.EncodeToString([]byte("secretkey123"))}}
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/dtls-1/credentials", body, nil); code != 204 {
		t.Fatalf("PUT credentials: status %d", code)
	}
	// Another device may not take id-1.
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/dtls-2/credentials", body, nil); code != 409 {
		t.Fatalf("PUT id-1 for dtls-2: status %d, want 409", code)
	}

	out := coapsRegister(t, ts, "id-1", "wrongkey456", "dtls-1")
	if registeredBy(out) || deviceCount(t, ts) != 0 {
		t.Fatalf("wrong key registered (output %q)", out)
	}

	out = coapsRegister(t, ts, "id-1", "secretkey123", "dtls-2")
	if !strings.Contains(out, "4.03") {
		t.Fatalf("right key, another endpoint: output %q does not show 4.03", out)
	}
	if n := deviceCount(t, ts); n != 0 {
		t.Fatalf("4.03 registration stored %d devices", n)
	}

	out = coapsRegister(t, ts, "id-1", "secretkey123", "dtls-1")
	var dev deviceJSON
	if code := ts.apiCall(t, "GET", "/api/v1/devices/dtls-1", nil, &dev); code != 200 || !dev.Online {
		t.Fatalf("dtls-1 after registering over DTLS: status %d, %+v (client output %q)", code, dev, out)
	}
	if n := deviceCount(t, ts); n != 1 {
		t.Fatalf("%d devices registered, want 1", n)
	}

	// Without the credential, the handshake fails.
	if code := ts.apiCall(t, "DELETE", "/api/v1/devices/dtls-1/credentials", nil, nil); code != 204 {
		t.Fatalf("DELETE credentials: status %d", code)
	}
	out = coapsRegister(t, ts, "id-1", "secretkey123", "dtls-1-again")
	if registeredBy(out) {
		t.Fatalf("registered after the credential was deleted (output %q)", out)
	}
}

// TestNoSecRefused: without --allow-nosec a plain CoAP registration is answered 4.03.
func TestNoSecRefused(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-nosec=false")
	client := sysdeps.Require(t, "coap-client-notls")
	out, _ := exec.Command(client, "-m", "post", "-t", "40", "-B", "5", "-e", "</1/0>,</3/0>",
		fmt.Sprintf("coap://%s/rd?ep=nosec-1&lt=60&lwm2m=1.1", ts.coap)).CombinedOutput()
	if !strings.Contains(string(out), "4.03") {
		t.Fatalf("plain CoAP registration: output %q does not show 4.03", out)
	}
	if n := deviceCount(t, ts); n != 0 {
		t.Fatalf("NoSec registration stored %d devices", n)
	}
}
