package selector

import (
	"reflect"
	"strings"
	"testing"
)

func TestNarrow(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  Narrowing
	}{
		{`endpoint ^= "fleet-00"`, Narrowing{EndpointPrefix: "fleet-00", Exact: true}},
		{`endpoint = "dev-1"`, Narrowing{EndpointPrefix: "dev-1"}}, // a prefix is less than equality
		{`endpoint ^= "a" and endpoint ^= "ab"`, Narrowing{EndpointPrefix: "ab", Exact: true}},
		{`endpoint ^= "ab" and endpoint ^= "a"`, Narrowing{EndpointPrefix: "ab", Exact: true}},
		{`manufacturer = "Acme" and model = "M1" and device_type = "meter" and labels.site = "north"`,
			Narrowing{Manufacturer: "Acme", Model: "M1", DeviceType: "meter", Labels: map[string]string{"site": "north"}, Exact: true}},
		// Not narrowing: or, not, !=, a prefix of another field, versions, lists.
		{`endpoint ^= "a" or endpoint ^= "b"`, Narrowing{}},
		{`not endpoint ^= "a"`, Narrowing{}},
		{`manufacturer != "Acme"`, Narrowing{}},
		{`manufacturer ^= "Ac"`, Narrowing{}},
		{`firmware < "2.0"`, Narrowing{}},
		{`firmware = "2.0"`, Narrowing{}},
		{`labels.site in ("north", "south")`, Narrowing{}},
		{`online and labels.ring = "canary"`, Narrowing{Labels: map[string]string{"ring": "canary"}}},
		// Narrowing, but not exactly: what the narrowing cannot hold.
		{`model = "a" and model = "b"`, Narrowing{Model: "b"}},
		{`endpoint ^= "ab" and endpoint ^= "ac"`, Narrowing{EndpointPrefix: "ab"}},
		{`labels.a = "x" and labels.a = "y"`, Narrowing{Labels: map[string]string{"a": "y"}}},
		{`model = "" and endpoint ^= "a"`, Narrowing{EndpointPrefix: "a"}},
		{`endpoint ^= "a" and model = "M1" and model = "M1"`, Narrowing{EndpointPrefix: "a", Model: "M1", Exact: true}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			s, err := Parse(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Narrow(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Narrow() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestNarrowIsNecessary: every device a selector matches satisfies its narrowing, so a store
// that filters by it first loses no device.
func TestNarrowIsNecessary(t *testing.T) {
	devices := []Device{
		{Endpoint: "fleet-001", Manufacturer: "Acme", Model: "M1", DeviceType: "meter", Labels: map[string]string{"site": "north"}},
		{Endpoint: "fleet-002", Manufacturer: "Acme", Model: "M2", Labels: map[string]string{"site": "south"}},
		{Endpoint: "lab-1", Manufacturer: "Other", FirmwareVersion: "1.0"},
	}
	for _, q := range []string{`endpoint ^= "fleet"`, `endpoint ^= "fleet" and labels.site = "north"`,
		`manufacturer = "Acme" and model = "M2"`, `endpoint = "lab-1"`, `endpoint ^= "f" and endpoint ^= "fleet-00"`} {
		s, err := Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		n := s.Narrow()
		for _, d := range devices {
			if !s.Match(d) {
				continue
			}
			ok := strings.HasPrefix(d.Endpoint, n.EndpointPrefix) &&
				(n.Manufacturer == "" || d.Manufacturer == n.Manufacturer) && (n.Model == "" || d.Model == n.Model) &&
				(n.DeviceType == "" || d.DeviceType == n.DeviceType)
			for k, v := range n.Labels {
				ok = ok && d.Labels[k] == v
			}
			if !ok {
				t.Fatalf("%s matches %+v, which its narrowing %+v leaves out", q, d, n)
			}
		}
	}
}

// TestNarrowExact: when the narrowing says Exact, a device meets it exactly when the selector
// matches it, so a store may select by the narrowing alone.
func TestNarrowExact(t *testing.T) {
	var devices []Device
	for _, ep := range []string{"fleet-001", "fleet-002", "fleet-1", "fleet", "lab-1", ""} {
		for _, model := range []string{"M1", "M2", ""} {
			for _, labels := range []map[string]string{nil, {"site": "north"}, {"site": "south", "ring": "canary"}, {"site": ""}} {
				devices = append(devices, Device{Endpoint: ep, Manufacturer: "Acme", Model: model, Labels: labels})
			}
		}
	}
	exact := 0
	for _, q := range []string{`endpoint ^= "fleet"`, `endpoint ^= "fleet-00" and labels.site = "north"`,
		`manufacturer = "Acme" and model = "M2"`, `endpoint ^= "f" and endpoint ^= "fleet-00"`, `labels.ring = "canary"`,
		`model = "M1" and model = "M2"`, `endpoint = "lab-1"`, `labels.site = "north" and labels.site = "south"`, `model = ""`,
		`endpoint ^= "fleet-0" and endpoint ^= "fleet-1"`} {
		s, err := Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		n := s.Narrow()
		if !n.Exact {
			continue
		}
		exact++
		for _, d := range devices {
			meets := strings.HasPrefix(d.Endpoint, n.EndpointPrefix) &&
				(n.Manufacturer == "" || d.Manufacturer == n.Manufacturer) && (n.Model == "" || d.Model == n.Model) &&
				(n.DeviceType == "" || d.DeviceType == n.DeviceType)
			for k, v := range n.Labels {
				got, ok := d.Labels[k]
				meets = meets && ok && got == v
			}
			if meets != s.Match(d) {
				t.Fatalf("%s (exact narrowing %+v): device %+v meets it %v, selector matches %v", q, n, d, meets, s.Match(d))
			}
		}
	}
	if exact != 5 {
		t.Fatalf("%d exact narrowings, want 5", exact)
	}
}
