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
		{`endpoint ^= "fleet-00"`, Narrowing{EndpointPrefix: "fleet-00"}},
		{`endpoint = "dev-1"`, Narrowing{EndpointPrefix: "dev-1"}},
		{`endpoint ^= "a" and endpoint ^= "ab"`, Narrowing{EndpointPrefix: "ab"}},
		{`endpoint ^= "ab" and endpoint ^= "a"`, Narrowing{EndpointPrefix: "ab"}},
		{`manufacturer = "Acme" and model = "M1" and device_type = "meter" and labels.site = "north"`,
			Narrowing{Manufacturer: "Acme", Model: "M1", DeviceType: "meter", Labels: map[string]string{"site": "north"}}},
		// Not narrowing: or, not, !=, a prefix of another field, versions, lists.
		{`endpoint ^= "a" or endpoint ^= "b"`, Narrowing{}},
		{`not endpoint ^= "a"`, Narrowing{}},
		{`manufacturer != "Acme"`, Narrowing{}},
		{`manufacturer ^= "Ac"`, Narrowing{}},
		{`firmware < "2.0"`, Narrowing{}},
		{`labels.site in ("north", "south")`, Narrowing{}},
		{`online and labels.ring = "canary"`, Narrowing{Labels: map[string]string{"ring": "canary"}}},
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
