package lwm2m

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestParseOperations(t *testing.T) {
	tests := []struct {
		in      string
		want    Operations
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "R", want: OpRead},
		{in: "W", want: OpWrite},
		{in: "RW", want: OpRead | OpWrite},
		{in: "E", want: OpExecute},
		{in: " RW\n", want: OpRead | OpWrite},
		{in: "WR", wantErr: true},
		{in: "RE", wantErr: true},
		{in: "r", wantErr: true},
		{in: "RWE", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseOperations(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseOperations(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("ParseOperations(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if err == nil {
				back, err := ParseOperations(got.String())
				if err != nil || back != got {
					t.Fatalf("String() %q does not parse back: %v, %v", got.String(), back, err)
				}
			}
		})
	}
}

func TestOperationsPredicates(t *testing.T) {
	rw := OpRead | OpWrite
	if !rw.CanRead() || !rw.CanWrite() || rw.CanExecute() {
		t.Fatalf("RW predicates wrong")
	}
	if e := OpExecute; e.CanRead() || e.CanWrite() || !e.CanExecute() {
		t.Fatalf("E predicates wrong")
	}
}

// thermostat is a small valid definition the model tests vary.
func thermostat(version string) *ObjectDef {
	return &ObjectDef{
		ID: 33000, Name: "Thermostat", Version: version, LwM2MVersion: "1.1", Multiple: true,
		Resources: map[uint16]*ResourceDef{
			0: {ID: 0, Name: "Setpoint", Operations: OpRead | OpWrite, Mandatory: true, Type: TypeFloat, Units: "Cel"},
			5: {ID: 5, Name: "Boost", Operations: OpExecute},
		},
	}
}

func TestModelAddRejects(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(d *ObjectDef)
		field     string
		resource  int
		nilObject bool
	}{
		{name: "object id 65535", edit: func(d *ObjectDef) { d.ID = 65535 }, field: "ObjectID", resource: -1},
		{name: "empty name", edit: func(d *ObjectDef) { d.Name = "  " }, field: "Name", resource: -1},
		{name: "bad version", edit: func(d *ObjectDef) { d.Version = "1" }, field: "ObjectVersion", resource: -1},
		{name: "three-part version", edit: func(d *ObjectDef) { d.Version = "1.0.2" }, field: "ObjectVersion", resource: -1},
		{name: "signed version", edit: func(d *ObjectDef) { d.Version = "+1.0" }, field: "ObjectVersion", resource: -1},
		{name: "bad enabler version", edit: func(d *ObjectDef) { d.LwM2MVersion = "v1.1" }, field: "LWM2MVersion", resource: -1},
		{name: "resource id 65535", edit: func(d *ObjectDef) {
			d.Resources[65535] = &ResourceDef{ID: 65535, Name: "X", Type: TypeString}
		}, field: "Item ID", resource: 65535},
		{name: "id differs from key", edit: func(d *ObjectDef) { d.Resources[0].ID = 1 }, field: "Item ID", resource: 0},
		{name: "resource without name", edit: func(d *ObjectDef) { d.Resources[0].Name = "" }, field: "Name", resource: 0},
		{name: "read and execute", edit: func(d *ObjectDef) { d.Resources[5].Operations = OpRead | OpExecute }, field: "Operations", resource: 5},
		{name: "unknown bits", edit: func(d *ObjectDef) { d.Resources[5].Operations = 0x10 }, field: "Operations", resource: 5},
		{name: "unknown type", edit: func(d *ObjectDef) { d.Resources[0].Type = Type(99) }, field: "Type", resource: 0},
		{name: "nil resource", edit: func(d *ObjectDef) { d.Resources[7] = nil }, field: "Item", resource: 7},
		{name: "invalid utf-8 units", edit: func(d *ObjectDef) { d.Resources[0].Units = "\xff" }, field: "Units", resource: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewModel()
			before := len(m.Objects())
			d := thermostat("1.0")
			tt.edit(d)
			// A valid definition in the same call must not be added either.
			err := m.Add(thermostat("1.1"), d)
			var de *DefinitionError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("Add() error = %v, want a *DefinitionError", err)
			}
			if de.Field != tt.field || de.Resource != tt.resource {
				t.Fatalf("error %q names field %q resource %d, want %q %d", err, de.Field, de.Resource, tt.field, tt.resource)
			}
			if got := len(m.Objects()); got != before {
				t.Fatalf("model grew from %d to %d definitions after a failed Add", before, got)
			}
		})
	}
}

func TestModelAddNilAndDuplicate(t *testing.T) {
	var m Model
	if err := m.Add(nil); !errors.Is(err, ErrInvalidDefinition) {
		t.Fatalf("Add(nil) = %v, want ErrInvalidDefinition", err)
	}
	err := m.Add(thermostat("1.1"), thermostat("01.1"))
	var de *DefinitionError
	if !errors.As(err, &de) || de.Field != "ObjectVersion" {
		t.Fatalf("Add(same version twice) = %v, want an ObjectVersion error", err)
	}
}

func TestZeroModelIsEmpty(t *testing.T) {
	var m Model
	if _, ok := m.Object(3, ""); ok {
		t.Fatal("zero Model knows object 3")
	}
	if _, ok := m.ResourceType(3, 0); ok {
		t.Fatal("zero Model knows /3/0/0")
	}
	if n := len(m.Objects()); n != 0 {
		t.Fatalf("zero Model has %d objects", n)
	}
}

func TestModelVersions(t *testing.T) {
	var m Model
	v10 := thermostat("")
	v12 := thermostat("1.2")
	v12.Resources[6] = &ResourceDef{ID: 6, Name: "Eco", Operations: OpRead | OpWrite, Type: TypeBoolean}
	v110 := thermostat("1.10")
	if err := m.Add(v12, v110, v10); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		ask, want string
		ok        bool
	}{
		{ask: "", want: "1.10", ok: true}, // numeric order: 1.10 is newer than 1.2
		{ask: "1.0", want: "1.0", ok: true},
		{ask: "1.2", want: "1.2", ok: true},
		{ask: "1.02", want: "1.2", ok: true},
		{ask: "1.1", ok: false},
		{ask: "junk", ok: false},
	}
	for _, tt := range tests {
		d, ok := m.Object(33000, tt.ask)
		if ok != tt.ok || (ok && d.Version != tt.want) {
			t.Errorf("Object(33000, %q) = %v, %v; want version %q, %v", tt.ask, d, ok, tt.want, tt.ok)
		}
	}
	if d, _ := m.Object(33000, "1.0"); d.LwM2MVersion != "1.1" || d.Version != "1.0" {
		t.Errorf("empty version not defaulted to 1.0: %+v", d)
	}

	// Resource 6 exists only in 1.2, which is not the newest: Resource still finds it.
	if r, ok := m.Resource(33000, 6); !ok || r.Name != "Eco" {
		t.Errorf("Resource(33000, 6) = %v, %v; want Eco", r, ok)
	}
	// Executables have no data type, so codecs must not be told one.
	if typ, ok := m.ResourceType(33000, 5); ok {
		t.Errorf("ResourceType(33000, 5) = %v, true; want false for an executable", typ)
	}
	if typ, ok := m.ResourceType(33000, 0); !ok || typ != TypeFloat {
		t.Errorf("ResourceType(33000, 0) = %v, %v; want float", typ, ok)
	}

	var order []string
	for _, d := range m.Objects() {
		order = append(order, fmt.Sprintf("%d@%s", d.ID, d.Version))
	}
	if fmt.Sprint(order) != "[33000@1.0 33000@1.2 33000@1.10]" {
		t.Errorf("Objects() order = %v", order)
	}
}

func TestModelAddReplacesAndCopies(t *testing.T) {
	m := NewModel()
	fw := &ObjectDef{ID: 5, Name: "Firmware Update (vendor)", Version: "1.1", LwM2MVersion: "1.1",
		Resources: map[uint16]*ResourceDef{
			3: {ID: 3, Name: "State", Operations: OpRead, Mandatory: true, Type: TypeUnsignedInteger},
		}}
	if err := m.Add(fw); err != nil {
		t.Fatal(err)
	}
	// The caller changing its value afterwards must not reach the model.
	fw.Name = "changed"
	fw.Resources[3].Type = TypeString

	d, ok := m.Object(5, "1.1")
	if !ok || d.Name != "Firmware Update (vendor)" || len(d.Resources) != 1 {
		t.Fatalf("Object(5, 1.1) = %+v, want the replacement", d)
	}
	if typ, _ := m.ResourceType(5, 3); typ != TypeUnsignedInteger {
		t.Fatalf("ResourceType(5, 3) = %v, want the replacement's type", typ)
	}
	if d, _ := m.Object(5, "1.0"); d == nil || d.Name != "Firmware Update" {
		t.Fatalf("replacing 1.1 disturbed 1.0: %+v", d)
	}
}

// TestModelConcurrentReadsAndAdds is for -race: readers never lock, writers swap snapshots.
func TestModelConcurrentReadsAndAdds(t *testing.T) {
	m := NewModel()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if _, ok := m.ResourceType(5, 3); !ok {
					t.Error("lost /5/0/3 during concurrent adds")
					return
				}
				m.Object(uint16(33000+i), "")
				_ = m.Objects()
				_ = j
			}
		}()
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := thermostat("1.0")
			d.ID = uint16(33000 + i)
			if err := m.Add(d); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 4 {
		if _, ok := m.Object(uint16(33000+i), "1.0"); !ok {
			t.Errorf("object %d lost: concurrent Adds overwrote each other", 33000+i)
		}
	}
}

func TestDefinitionErrorText(t *testing.T) {
	tests := []struct {
		err  DefinitionError
		want string
	}{
		{DefinitionError{File: "a.xml", Object: 33000, Version: "1.1", Resource: 2, Field: "Type", Err: errors.New("bad")},
			"lwm2m: a.xml: object 33000 v1.1: resource 2: Type: bad"},
		{DefinitionError{File: "a.xml", Object: -1, Resource: -1, Field: "ObjectID", Err: errors.New("missing")},
			"lwm2m: a.xml: ObjectID: missing"},
		{DefinitionError{Object: 5, Resource: -1, Err: errors.New("x")}, "lwm2m: object 5: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
