package fwupdate

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

func TestParseObject5(t *testing.T) {
	recs := []lwm2m.Record{
		{Path: lwm2m.NewPath(5, 0, 1), Value: lwm2m.String("coap://x/fw/t")},
		{Path: lwm2m.NewPath(5, 0, 3), Value: lwm2m.Integer(1)},
		{Path: lwm2m.NewPath(5, 0, 5), Value: lwm2m.Unsigned(4)},
		{Path: lwm2m.NewPath(5, 0, 7), Value: lwm2m.String("1.2.3")},
		{Path: lwm2m.NewPath(5, 0, 8, 0), Value: lwm2m.Integer(0)},
		{Path: lwm2m.NewPath(5, 0, 8, 1), Value: lwm2m.Integer(3)},
		{Path: lwm2m.NewPath(5, 0, 8, 2), Value: lwm2m.Integer(3)},
		{Path: lwm2m.NewPath(5, 0, 9), Value: lwm2m.String("2")}, // a text-format answer
		{Path: lwm2m.NewPath(3, 0, 3), Value: lwm2m.Integer(9)},  // not Object 5: ignored
	}
	o := parseObject5(recs)
	want := object5{State: 1, Result: 4, PackageURI: "coap://x/fw/t", PkgVersion: "1.2.3", Protocols: []int{0, 3}, DeliveryMethod: 2}
	if o.State != want.State || o.Result != want.Result || o.PackageURI != want.PackageURI || o.PkgVersion != want.PkgVersion ||
		len(o.Protocols) != 2 || o.Protocols[1] != 3 || o.DeliveryMethod != 2 {
		t.Fatalf("parseObject5 = %+v, want %+v", o, want)
	}
	if e := parseObject5(nil); e.State != Unknown || e.Result != Unknown || e.DeliveryMethod != Unknown || e.Protocols != nil {
		t.Fatalf("empty read = %+v, want every field unknown", e)
	}
}

func TestChooseDelivery(t *testing.T) {
	all := []string{DeliveryHTTPS, DeliveryCoAP}
	tests := []struct {
		name     string
		method   string
		o        object5
		offered  []string
		tried    []int
		want     string
		wantFail bool
	}{
		{"pull prefers the operator's order", MethodPull, object5{Protocols: []int{0, 3}, DeliveryMethod: 2}, all, nil, DeliveryHTTPS, false},
		{"device without https", MethodAuto, object5{Protocols: []int{0}, DeliveryMethod: 2}, all, nil, DeliveryCoAP, false},
		{"undeclared protocols mean coap", MethodAuto, object5{DeliveryMethod: Unknown}, all, nil, DeliveryCoAP, false},
		{"result 9 moves on", MethodPull, object5{Protocols: []int{0, 3}, DeliveryMethod: 0}, all, []int{3}, DeliveryCoAP, false},
		{"every protocol tried", MethodPull, object5{Protocols: []int{0, 3}, DeliveryMethod: 0}, all, []int{3, 0}, "", true},
		{"auto falls back to push", MethodAuto, object5{Protocols: []int{5}, DeliveryMethod: 2}, all, nil, DeliveryPush, false},
		{"push-only device", MethodAuto, object5{Protocols: []int{0}, DeliveryMethod: 1}, all, nil, DeliveryPush, false},
		{"pull asked of a push-only device", MethodPull, object5{DeliveryMethod: 1}, all, nil, "", true},
		{"push asked of a pull-only device", MethodPush, object5{DeliveryMethod: 0}, all, nil, "", true},
		{"push asked", MethodPush, object5{Protocols: []int{0}, DeliveryMethod: 2}, all, nil, DeliveryPush, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseDelivery(tc.method, tc.o, tc.offered, tc.tried)
			if (err != nil) != tc.wantFail || got != tc.want {
				t.Fatalf("chooseDelivery = %q, %v; want %q (fail %v)", got, err, tc.want, tc.wantFail)
			}
		})
	}
}

func TestMayDownload(t *testing.T) {
	udp := func(s string) transport.Addr {
		return transport.Addr{Network: transport.UDP, AddrPort: netip.MustParseAddrPort(s)}
	}
	dtls := func(s string) transport.Addr {
		return transport.Addr{Network: transport.DTLS, AddrPort: netip.MustParseAddrPort(s)}
	}
	plain := &registration.Registration{Endpoint: "ep", Addr: udp("10.0.0.1:5683")}
	secure := &registration.Registration{Endpoint: "ep", Addr: dtls("10.0.0.1:5684"), Identity: "id-ep"}
	job := &Job{ID: "j", Endpoint: "ep", State: StateDelivering}
	tests := []struct {
		name string
		j    *Job
		reg  *registration.Registration
		from transport.Peer
		ok   bool
	}{
		{"device from another port", job, plain, transport.Peer{Addr: udp("10.0.0.1:40000")}, true},
		{"another address", job, plain, transport.Peer{Addr: udp("10.0.0.2:5683")}, false},
		{"dtls identity", job, secure, transport.Peer{Addr: dtls("10.9.9.9:1"), Identity: "id-ep"}, true},
		{"another identity", job, secure, transport.Peer{Addr: dtls("10.0.0.1:5684"), Identity: "id-other"}, false},
		{"dtls device over plain coap", job, secure, transport.Peer{Addr: udp("10.0.0.1:5684")}, false},
		{"job ended", &Job{ID: "j", Endpoint: "ep", State: StateSucceeded}, plain, transport.Peer{Addr: udp("10.0.0.1:1")}, false},
		{"another device's registration", job, &registration.Registration{Endpoint: "other", Addr: udp("10.0.0.1:1")}, transport.Peer{Addr: udp("10.0.0.1:1")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := MayDownload(tc.j, tc.reg, tc.from)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
				t.Fatalf("MayDownload = %v, want allowed %v", err, tc.ok)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := DefaultPolicy()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	for name, change := range map[string]func(*Policy){
		"no attempts":     func(p *Policy) { p.MaxAttempts = 0 },
		"negative slack":  func(p *Policy) { p.StepSlack = -1 },
		"odd block":       func(p *Policy) { p.BlockSize = 100 },
		"huge block":      func(p *Policy) { p.BlockSize = 2048 },
		"negative rate":   func(p *Policy) { p.MinLinkRate = -1 },
		"negative backof": func(p *Policy) { p.BackoffBase = -1 },
	} {
		p := DefaultPolicy()
		change(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A 4.04 answer is explained by what the device registered: no </5> means no Firmware Update
// object; </5/0> registered means a broken one, and the reason must not claim it is absent.
func TestNotFoundReason(t *testing.T) {
	err := fmt.Errorf("read /5/0: %w", &dm.DeviceError{Code: "4.04"})
	tests := []struct {
		name    string
		objects []registration.ObjectLink
		want    string
		not     string
	}{
		{"registered /5/0", []registration.ObjectLink{{Path: lwm2m.NewPath(3, 0)}, {Path: lwm2m.NewPath(5, 0)}},
			"the device registered </5/0> but answered 4.04 Not Found", "no Firmware Update object"},
		{"no object 5", []registration.ObjectLink{{Path: lwm2m.NewPath(3, 0)}},
			"the device has no Firmware Update object: it did not register </5>", "registered </5/0>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := notFoundReason(&registration.Registration{Objects: tc.objects}, err)
			if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) || !strings.Contains(got, "4.04") {
				t.Errorf("reason %q, want %q and not %q", got, tc.want, tc.not)
			}
		})
	}
}

// A delivery that timed out says what the device reported, not "connection lost": the storm
// job of issue 12 answered every request and was reported as a lost connection.
func TestStalledReason(t *testing.T) {
	j := jobIn(StateDelivering, false)
	j.DeviceState, j.DeviceResult = deviceDownloading, 0
	got := j.Policy.Retry(j, stalledReason(j, "delivering for longer than 5m0s"), t0)
	want := "no download within the time the link allows: delivering for longer than 5m0s; the device last reported State 1 (downloading), Update Result 0"
	if got.Action != ActionRetry || got.Reason != want {
		t.Errorf("decision %+v, want retry with %q", got, want)
	}
	j.Attempt = j.Policy.MaxAttempts
	if got := j.Policy.Retry(j, "x", t0); got.Action != ActionFail || got.Reason != "x (gave up after 3 attempts)" {
		t.Errorf("last attempt: %+v, want fail", got)
	}
}
