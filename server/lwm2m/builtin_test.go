package lwm2m

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestBuiltinsValid(t *testing.T) {
	var m Model
	if err := m.Add(builtinObjects()...); err != nil {
		t.Fatalf("built-in definitions do not validate: %v", err)
	}
}

func TestBuiltinVersions(t *testing.T) {
	m := NewModel()
	want := map[uint16][]string{
		0:     {"1.0", "1.1", "1.2"},
		1:     {"1.0", "1.1", "1.2"},
		3:     {"1.0", "1.1", "1.2"},
		4:     {"1.0", "1.1", "1.2", "1.3"},
		5:     {"1.0", "1.1"},
		9:     {"1.0", "1.1"},
		33629: {"1.0"},
	}
	got := map[uint16][]string{}
	for _, d := range m.Objects() {
		got[d.ID] = append(got[d.ID], d.Version)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("built-in versions = %v, want %v", got, want)
	}
}

func TestBuiltinObjects(t *testing.T) {
	m := NewModel()
	tests := []struct {
		id                  uint16
		version             string
		name, urn, lwm2m    string
		multiple, mandatory bool
		resources           int
	}{
		{0, "1.0", "LWM2M Security", "urn:oma:lwm2m:oma:0", "1.0", true, true, 13},
		{0, "1.1", "LWM2M Security", "urn:oma:lwm2m:oma:0:1.1", "1.1", true, true, 18},
		{0, "1.2", "LWM2M Security", "urn:oma:lwm2m:oma:0:1.2", "1.1", true, true, 31},
		{1, "1.0", "LwM2M Server", "urn:oma:lwm2m:oma:1", "1.0", true, true, 9},
		{1, "1.1", "LwM2M Server", "urn:oma:lwm2m:oma:1:1.1", "1.1", true, true, 24},
		{1, "1.2", "LwM2M Server", "urn:oma:lwm2m:oma:1:1.2", "1.2", true, true, 28},
		{3, "1.0", "Device", "urn:oma:lwm2m:oma:3", "1.0", false, true, 23},
		{3, "1.2", "Device", "urn:oma:lwm2m:oma:3:1.2", "1.1", false, true, 23},
		{4, "1.0", "Connectivity Monitoring", "urn:oma:lwm2m:oma:4", "1.0", false, false, 11},
		{4, "1.3", "Connectivity Monitoring", "urn:oma:lwm2m:oma:4:1.3", "1.1", false, false, 14},
		{5, "1.0", "Firmware Update", "urn:oma:lwm2m:oma:5", "1.0", false, false, 9},
		{5, "1.1", "Firmware Update", "urn:oma:lwm2m:oma:5:1.1", "1.1", false, false, 13},
		{9, "1.0", "LWM2M Software Management", "urn:oma:lwm2m:oma:9", "1.0", true, false, 19},
		{9, "1.1", "LWM2M Software Management", "urn:oma:lwm2m:oma:9:1.1", "1.1", true, false, 23},
		{33629, "1.0", "Advanced Firmware Update", "urn:oma:lwm2m:oma:33629", "1.1", true, false, 17},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d@%s", tt.id, tt.version), func(t *testing.T) {
			d, ok := m.Object(tt.id, tt.version)
			if !ok {
				t.Fatalf("Object(%d, %q) not found", tt.id, tt.version)
			}
			got := fmt.Sprint(d.Name, "|", d.URN, "|", d.LwM2MVersion, "|", d.Multiple, "|", d.Mandatory, "|", len(d.Resources))
			want := fmt.Sprint(tt.name, "|", tt.urn, "|", tt.lwm2m, "|", tt.multiple, "|", tt.mandatory, "|", tt.resources)
			if got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestBuiltinResources spot-checks resources against the registry tables. A row's fields
// read like the registry's columns: operations, multiple, mandatory, type, range, units.
func TestBuiltinResources(t *testing.T) {
	m := NewModel()
	tests := []struct {
		path    string // /object@version/resource
		name    string
		ops     string
		multi   bool
		mand    bool
		typ     Type
		rangeEn string
		units   string
	}{
		{"/0@1.0/0", "LWM2M Server URI", "", false, true, TypeString, "0..255", ""},
		{"/0@1.0/10", "Short Server ID", "", false, false, TypeInteger, "1..65534", ""},
		{"/0@1.1/15", "Certificate Usage", "", false, false, TypeInteger, "0..3", ""},
		{"/0@1.2/15", "Certificate Usage", "", false, false, TypeUnsignedInteger, "0..3", ""},
		{"/0@1.2/16", "DTLS/TLS Ciphersuite", "", true, false, TypeUnsignedInteger, "", ""},
		{"/0@1.2/30", "RDS Application ID", "", false, false, TypeString, "", ""},
		{"/1@1.0/1", "Lifetime", "RW", false, true, TypeInteger, "", "s"},
		{"/1@1.2/1", "Lifetime", "RW", false, true, TypeUnsignedInteger, "", "s"},
		{"/1@1.0/8", "Registration Update Trigger", "E", false, true, TypeNone, "", ""},
		{"/1@1.1/13", "Registration Priority Order", "", false, false, TypeUnsignedInteger, "", ""},
		{"/1@1.2/13", "Registration Priority Order", "R", false, false, TypeUnsignedInteger, "", ""},
		{"/1@1.2/14", "Initial Registration Delay Timer", "RW", false, false, TypeUnsignedInteger, "", "s"},
		{"/1@1.2/25", "Supported Server Versions", "RW", true, false, TypeString, "", ""},
		{"/3@1.0/3", "Firmware Version", "R", false, false, TypeString, "", ""},
		{"/3@1.0/4", "Reboot", "E", false, true, TypeNone, "", ""},
		{"/3@1.0/6", "Available Power Sources", "R", true, false, TypeInteger, "0..7", ""},
		{"/3@1.0/11", "Error Code", "R", true, true, TypeInteger, "0..8", ""},
		{"/3@1.2/11", "Error Code", "R", true, true, TypeInteger, "0..32", ""},
		{"/3@1.0/13", "Current Time", "RW", false, false, TypeTime, "", ""},
		{"/3@1.1/7", "Power Source Voltage", "R", true, false, TypeInteger, "", ""},
		{"/3@1.2/16", "Supported Binding and Modes", "R", false, true, TypeString, "", ""},
		{"/3@1.2/22", "ExtDevInfo", "R", true, false, TypeObjlnk, "", ""},
		{"/4@1.0/1", "Available Network Bearer", "R", true, true, TypeInteger, "0..50", ""},
		{"/4@1.1/11", "SignalSNR", "R", false, false, TypeInteger, "", "dB"},
		{"/4@1.3/13", "Coverage Enhancement Level", "R", false, false, TypeInteger, "0..4", ""},
		{"/5@1.0/0", "Package", "W", false, true, TypeOpaque, "", ""},
		{"/5@1.0/1", "Package URI", "RW", false, true, TypeString, "0..255", ""},
		{"/5@1.0/2", "Update", "E", false, true, TypeNone, "", ""},
		{"/5@1.0/3", "State", "R", false, true, TypeInteger, "0..3", ""},
		{"/5@1.0/5", "Update Result", "R", false, true, TypeInteger, "0..9", ""},
		{"/5@1.1/5", "Update Result", "R", false, true, TypeInteger, "0..11", ""},
		{"/5@1.0/6", "PkgName", "R", false, false, TypeString, "0..255", ""},
		{"/5@1.0/7", "PkgVersion", "R", false, false, TypeString, "0..255", ""},
		{"/5@1.0/8", "Firmware Update Protocol Support", "R", true, false, TypeInteger, "0..5", ""},
		{"/5@1.0/9", "Firmware Update Delivery Method", "R", false, true, TypeInteger, "0..2", ""},
		{"/5@1.1/10", "Cancel", "E", false, false, TypeNone, "", ""},
		{"/5@1.1/11", "Severity", "RW", false, false, TypeInteger, "0..2", ""},
		{"/5@1.1/12", "Last State Change Time", "R", false, false, TypeTime, "", ""},
		{"/5@1.1/13", "Maximum Defer Period", "RW", false, false, TypeUnsignedInteger, "", "s"},
		{"/9@1.0/4", "Install", "E", false, true, TypeNone, "", ""},
		{"/9@1.0/17", "Software Component Link", "R", true, false, TypeObjlnk, "", ""},
		{"/9@1.1/21", "Operational State", "R", false, true, TypeUnsignedInteger, "0..15", ""},
		{"/33629@1.0/0", "Package", "W", false, true, TypeOpaque, "", ""},
		{"/33629@1.0/5", "Update Result", "R", false, true, TypeInteger, "0..13", ""},
		{"/33629@1.0/13", "Maximum Defer Period", "RW", false, false, TypeUnsignedInteger, "", "s"},
		{"/33629@1.0/14", "Component Name", "R", false, true, TypeString, "", ""},
		{"/33629@1.0/15", "Current Version", "R", false, true, TypeString, "", ""},
		{"/33629@1.0/16", "Linked Instances", "R", true, false, TypeObjlnk, "", ""},
		{"/33629@1.0/17", "Conflicting Instances", "R", true, false, TypeObjlnk, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var obj, rid uint16
			var ver string
			if _, err := fmt.Sscanf(strings.NewReplacer("@", " ", "/", " ").Replace(tt.path), "%d %s %d", &obj, &ver, &rid); err != nil {
				t.Fatalf("bad test path %q: %v", tt.path, err)
			}
			d, ok := m.Object(obj, ver)
			if !ok {
				t.Fatalf("object %d v%s missing", obj, ver)
			}
			r, ok := d.Resource(rid)
			if !ok {
				t.Fatalf("resource %d missing", rid)
			}
			got := fmt.Sprintf("%s|%s|%v|%v|%v|%s|%s", r.Name, r.Operations, r.Multiple, r.Mandatory, r.Type, r.RangeEnumeration, r.Units)
			want := fmt.Sprintf("%s|%s|%v|%v|%v|%s|%s", tt.name, tt.ops, tt.multi, tt.mand, tt.typ, tt.rangeEn, tt.units)
			if got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestBuiltinVersionDifferences checks which version introduced a resource.
func TestBuiltinVersionDifferences(t *testing.T) {
	m := NewModel()
	tests := []struct {
		object   uint16
		resource uint16
		present  []string // versions that define it
	}{
		{5, 4, nil}, // withdrawn before 1.0
		{5, 9, []string{"1.0", "1.1"}},
		{5, 10, []string{"1.1"}},
		{5, 13, []string{"1.1"}},
		{0, 17, []string{"1.1", "1.2"}},
		{0, 18, []string{"1.2"}},
		{1, 9, []string{"1.1", "1.2"}},
		{1, 24, []string{"1.2"}},
		{3, 22, []string{"1.0", "1.1", "1.2"}},
		{4, 12, []string{"1.2", "1.3"}},
		{9, 19, []string{"1.1"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("/%d/x/%d", tt.object, tt.resource), func(t *testing.T) {
			var got []string
			for _, d := range m.Objects() {
				if _, ok := d.Resources[tt.resource]; d.ID == tt.object && ok {
					got = append(got, d.Version)
				}
			}
			if !slices.Equal(got, tt.present) {
				t.Fatalf("defined in %v, want %v", got, tt.present)
			}
		})
	}
}

func TestBuiltinResolver(t *testing.T) {
	m := NewModel()
	tests := []struct {
		object, resource uint16
		typ              Type
		ok, multiple     bool
	}{
		{5, 3, TypeInteger, true, false},
		{5, 8, TypeInteger, true, true},
		{5, 13, TypeUnsignedInteger, true, false}, // newest version (1.1) defines it
		{5, 2, TypeNone, false, false},            // executable: no type for codecs
		{3, 6, TypeInteger, true, true},
		{1, 1, TypeUnsignedInteger, true, false}, // 1.2 made Lifetime unsigned
		{3, 99, TypeNone, false, false},
		{42, 0, TypeNone, false, false},
	}
	for _, tt := range tests {
		typ, ok := m.ResourceType(tt.object, tt.resource)
		if typ != tt.typ || ok != tt.ok {
			t.Errorf("ResourceType(%d, %d) = %v, %v; want %v, %v", tt.object, tt.resource, typ, ok, tt.typ, tt.ok)
		}
		if got := m.Multiple(tt.object, tt.resource); got != tt.multiple {
			t.Errorf("Multiple(%d, %d) = %v, want %v", tt.object, tt.resource, got, tt.multiple)
		}
	}
}

// TestBuiltinsFresh guards the promise that the tables are rebuilt per call, so no model can
// alter another's.
func TestBuiltinsFresh(t *testing.T) {
	a := builtinObjects()
	a[0].Resources[0].Name = "changed"
	if b := builtinObjects(); b[0].Resources[0].Name == "changed" {
		t.Fatal("builtinObjects shares memory between calls")
	}
	// Versions derived with revise must not share resources with their base either.
	m := NewModel()
	v10, _ := m.Object(5, "1.0")
	v11, _ := m.Object(5, "1.1")
	if v10.Resources[0] == v11.Resources[0] {
		t.Fatal("Firmware Update 1.0 and 1.1 share a *ResourceDef")
	}
}
