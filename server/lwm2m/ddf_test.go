package lwm2m

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "ddf", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseTestdata(t *testing.T, name string) []*ObjectDef {
	t.Helper()
	defs, err := ParseDDF(bytes.NewReader(readTestdata(t, name)))
	if err != nil {
		t.Fatalf("ParseDDF(%s): %v", name, err)
	}
	return defs
}

func TestParseDDFThermostat(t *testing.T) {
	defs := parseTestdata(t, "33000-thermostat.xml")
	rw := OpRead | OpWrite
	want := []*ObjectDef{{
		ID: 33000, Name: "Thermostat", Version: "1.1", LwM2MVersion: "1.1", URN: "urn:oma:lwm2m:x:33000:1.1",
		Multiple: true, Mandatory: false,
		Resources: map[uint16]*ResourceDef{
			0:  {ID: 0, Name: "Setpoint", Operations: rw, Mandatory: true, Type: TypeFloat, RangeEnumeration: "5..35", Units: "Cel"},
			1:  {ID: 1, Name: "Current Temperature", Operations: OpRead, Mandatory: true, Type: TypeFloat, Units: "Cel"},
			2:  {ID: 2, Name: "Mode", Operations: rw, Mandatory: true, Type: TypeInteger, RangeEnumeration: "0..3"},
			3:  {ID: 3, Name: "Heating Active", Operations: OpRead, Type: TypeBoolean},
			4:  {ID: 4, Name: "Schedule", Operations: rw, Multiple: true, Type: TypeString, RangeEnumeration: "0..64 bytes"},
			5:  {ID: 5, Name: "Boost", Operations: OpExecute, Type: TypeNone},
			6:  {ID: 6, Name: "Last Change", Operations: OpRead, Type: TypeTime},
			7:  {ID: 7, Name: "Runtime", Operations: OpRead, Type: TypeUnsignedInteger, Units: "s"},
			8:  {ID: 8, Name: "Sensor", Operations: rw, Type: TypeObjlnk},
			9:  {ID: 9, Name: "Calibration Table", Operations: OpWrite, Type: TypeOpaque},
			10: {ID: 10, Name: "Zones", Operations: OpRead, Type: TypeCorelnk},
		},
	}}
	if !reflect.DeepEqual(defs, want) {
		t.Fatalf("ParseDDF = %s\nwant %s", dump(defs), dump(want))
	}
}

func TestParseDDFTwoVersionsInOneFile(t *testing.T) {
	defs := parseTestdata(t, "33001-valve.xml")
	if len(defs) != 2 {
		t.Fatalf("got %d objects, want 2", len(defs))
	}
	// The first object has no ObjectVersion/LWM2MVersion, as LwM2M 1.0 files.
	if defs[0].Version != "1.0" || defs[0].LwM2MVersion != "1.0" || len(defs[0].Resources) != 1 {
		t.Errorf("first object = %s", dump(defs[:1]))
	}
	if defs[1].Version != "1.1" || defs[1].Resources[1].Type != TypeFloat {
		t.Errorf("second object = %s", dump(defs[1:]))
	}
	var m Model
	if err := m.Add(defs...); err != nil {
		t.Fatal(err)
	}
	if d, _ := m.Object(33001, ""); d.Version != "1.1" {
		t.Errorf("newest valve = %s, want 1.1", d.Version)
	}
}

// TestDDFMatchesBuiltin cross-checks two hands: the Firmware Update 1.1 DDF in testdata and
// the built-in table were each written from the registry.
func TestDDFMatchesBuiltin(t *testing.T) {
	defs := parseTestdata(t, "5-1_1.xml")
	builtin, _ := NewModel().Object(5, "1.1")
	if len(defs) != 1 || !reflect.DeepEqual(defs[0], builtin) {
		t.Fatalf("testdata 5-1_1.xml = %s\nbuilt-in = %s", dump(defs), dump([]*ObjectDef{builtin}))
	}
}

func TestDDFRoundTrip(t *testing.T) {
	cases := map[string][]*ObjectDef{
		"built-ins": NewModel().Objects(),
	}
	for _, name := range []string{"33000-thermostat.xml", "33001-valve.xml", "5-1_1.xml"} {
		cases[name] = parseTestdata(t, name)
	}
	for name, defs := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteDDF(&buf, defs...); err != nil {
				t.Fatal(err)
			}
			back, err := ParseDDF(&buf)
			if err != nil {
				t.Fatalf("ParseDDF(WriteDDF(...)): %v\n%s", err, buf.String())
			}
			if !reflect.DeepEqual(back, defs) {
				t.Fatalf("round trip changed the definitions:\n%s\nwant\n%s", dump(back), dump(defs))
			}
		})
	}
}

func TestWriteDDFRejectsInvalid(t *testing.T) {
	bad := thermostat("1.0")
	bad.Name = ""
	if err := WriteDDF(&bytes.Buffer{}, bad); !errors.Is(err, ErrInvalidDefinition) {
		t.Fatalf("WriteDDF(invalid) = %v, want ErrInvalidDefinition", err)
	}
	if err := WriteDDF(&bytes.Buffer{}, nil); !errors.Is(err, ErrInvalidDefinition) {
		t.Fatalf("WriteDDF(nil) = %v, want ErrInvalidDefinition", err)
	}
}

// ddfObjectXML builds a one-object DDF with the given object-level elements and items, so
// each error case below changes one thing from a valid file.
func ddfObjectXML(objectFields, items string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<LWM2M><Object ObjectType="MODefinition">` + objectFields + `<Resources>` + items + `</Resources></Object></LWM2M>`
}

const (
	validObjectFields = `<Name>Thermostat</Name><ObjectID>33000</ObjectID><ObjectVersion>1.1</ObjectVersion>` +
		`<MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>`
	validItem = `<Item ID="0"><Name>Setpoint</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances>` +
		`<Mandatory>Mandatory</Mandatory><Type>Float</Type></Item>`
)

func item0(field, value string) string {
	fields := map[string]string{
		"Name": "Setpoint", "Operations": "RW", "MultipleInstances": "Single", "Mandatory": "Mandatory", "Type": "Float",
	}
	fields[field] = value
	var b strings.Builder
	b.WriteString(`<Item ID="0">`)
	for _, k := range []string{"Name", "Operations", "MultipleInstances", "Mandatory", "Type"} {
		b.WriteString("<" + k + ">" + fields[k] + "</" + k + ">")
	}
	b.WriteString("</Item>")
	return b.String()
}

func TestParseDDFErrors(t *testing.T) {
	replace := func(old, new string) string {
		return ddfObjectXML(strings.Replace(validObjectFields, old, new, 1), validItem)
	}
	tests := []struct {
		name     string
		doc      string
		object   int
		resource int
		field    string
		contains string
	}{
		{name: "not XML", doc: "PK\x03\x04 this is a zip", object: -1, resource: -1, contains: "not an LwM2M DDF"},
		{name: "empty", doc: "", object: -1, resource: -1, contains: "not an LwM2M DDF"},
		{name: "wrong root", doc: `<DDFList><Item/></DDFList>`, object: -1, resource: -1, contains: "LWM2M"},
		{name: "truncated", doc: ddfObjectXML(validObjectFields, validItem)[:120], object: -1, resource: -1, contains: "not an LwM2M DDF"},
		{name: "no object", doc: `<LWM2M></LWM2M>`, object: -1, resource: -1, field: "Object"},
		{name: "missing ObjectID", doc: replace("<ObjectID>33000</ObjectID>", ""), object: -1, resource: -1, field: "ObjectID", contains: "missing"},
		{name: "ObjectID not a number", doc: replace(">33000<", ">33k<"), object: -1, resource: -1, field: "ObjectID"},
		{name: "ObjectID 65535", doc: replace(">33000<", ">65535<"), object: -1, resource: -1, field: "ObjectID"},
		{name: "ObjectID 70000", doc: replace(">33000<", ">70000<"), object: -1, resource: -1, field: "ObjectID"},
		{name: "ObjectID negative", doc: replace(">33000<", ">-1<"), object: -1, resource: -1, field: "ObjectID"},
		{name: "missing Name", doc: replace("<Name>Thermostat</Name>", ""), object: 33000, resource: -1, field: "Name"},
		{name: "bad ObjectVersion", doc: replace("<ObjectVersion>1.1</ObjectVersion>", "<ObjectVersion>one</ObjectVersion>"), object: 33000, resource: -1, field: "ObjectVersion"},
		{name: "bad LWM2MVersion", doc: replace("<ObjectVersion>", "<LWM2MVersion>1</LWM2MVersion><ObjectVersion>"), object: 33000, resource: -1, field: "LWM2MVersion"},
		{name: "bad MultipleInstances", doc: replace(">Multiple<", ">Many<"), object: 33000, resource: -1, field: "MultipleInstances", contains: `"Many"`},
		{name: "missing Mandatory", doc: replace("<Mandatory>Optional</Mandatory>", ""), object: 33000, resource: -1, field: "Mandatory"},
		{name: "bad ObjectType", doc: strings.Replace(ddfObjectXML(validObjectFields, validItem), "MODefinition", "Template", 1), object: 33000, resource: -1, field: "ObjectType"},
		{name: "missing Item ID", doc: ddfObjectXML(validObjectFields, strings.Replace(validItem, ` ID="0"`, "", 1)), object: 33000, resource: -1, field: "Item ID"},
		{name: "Item ID 65535", doc: ddfObjectXML(validObjectFields, strings.Replace(validItem, `"0"`, `"65535"`, 1)), object: 33000, resource: -1, field: "Item ID"},
		{name: "duplicate Item ID", doc: ddfObjectXML(validObjectFields, validItem+validItem), object: 33000, resource: 0, field: "Item ID", contains: "twice"},
		{name: "unknown type", doc: ddfObjectXML(validObjectFields, item0("Type", "Integr")), object: 33000, resource: 0, field: "Type", contains: `"Integr"`},
		{name: "bad operations", doc: ddfObjectXML(validObjectFields, item0("Operations", "RE")), object: 33000, resource: 0, field: "Operations"},
		{name: "missing item name", doc: ddfObjectXML(validObjectFields, item0("Name", " ")), object: 33000, resource: 0, field: "Name"},
		{name: "bad item MultipleInstances", doc: ddfObjectXML(validObjectFields, item0("MultipleInstances", "single")), object: 33000, resource: 0, field: "MultipleInstances"},
		{name: "bad item Mandatory", doc: ddfObjectXML(validObjectFields, item0("Mandatory", "Yes")), object: 33000, resource: 0, field: "Mandatory"},
		{name: "object twice", doc: strings.Replace(ddfObjectXML(validObjectFields, validItem), "</LWM2M>",
			`<Object>`+validObjectFields+`<Resources/></Object></LWM2M>`, 1), object: 33000, resource: -1, field: "ObjectVersion", contains: "twice"},
		{name: "unknown encoding", doc: `<?xml version="1.0" encoding="EBCDIC"?><LWM2M/>`, object: -1, resource: -1, contains: "EBCDIC"},
		{name: "oversize", doc: ddfObjectXML(validObjectFields, validItem) + "<!--" + strings.Repeat("x", MaxDDFSize) + "-->",
			object: -1, resource: -1, contains: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defs, err := ParseDDF(strings.NewReader(tt.doc))
			var de *DefinitionError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("ParseDDF() = %v, %v; want a *DefinitionError", dump(defs), err)
			}
			if de.Object != tt.object || de.Resource != tt.resource || de.Field != tt.field {
				t.Fatalf("error %q: object %d resource %d field %q; want %d %d %q",
					err, de.Object, de.Resource, de.Field, tt.object, tt.resource, tt.field)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("error %q does not mention %q", err, tt.contains)
			}
		})
	}
}

func TestParseDDFEncodings(t *testing.T) {
	doc := ddfObjectXML(strings.Replace(validObjectFields, "Thermostat", "Thermostat \xe9t\xe9", 1), validItem)
	latin1 := strings.Replace(doc, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1)
	defs, err := ParseDDF(strings.NewReader(latin1))
	if err != nil {
		t.Fatal(err)
	}
	if defs[0].Name != "Thermostat été" {
		t.Errorf("Latin-1 name = %q", defs[0].Name)
	}

	bom := "\xef\xbb\xbf" + ddfObjectXML(validObjectFields, validItem)
	if _, err := ParseDDF(strings.NewReader(bom)); err != nil {
		t.Errorf("file with a byte order mark: %v", err)
	}
}

// writeDir creates files in a fresh folder for LoadDDFDir.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDDFDir(t *testing.T) {
	thermo := string(readTestdata(t, "33000-thermostat.xml"))
	valve := string(readTestdata(t, "33001-valve.xml"))
	fw11 := string(readTestdata(t, "5-1_1.xml"))
	dir := writeDir(t, map[string]string{
		"33000.xml":         thermo,
		"33001.XML":         valve, // extension case does not matter
		"fw.xml":            fw11,  // redefines a built-in version: replaces it
		"notes.txt":         "not a DDF",
		"sub/ignored.xml":   "not even XML", // subfolders are not read
		"README.md":         "# objects",
		"33002-backup.xml~": "editor backup",
	})

	m := NewModel()
	before := len(m.Objects())
	n, err := m.LoadDDFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("LoadDDFDir loaded %d definitions, want 4", n)
	}
	if got := len(m.Objects()); got != before+3 {
		t.Errorf("model has %d definitions, want %d (3 new, 1 replaced)", got, before+3)
	}
	if typ, ok := m.ResourceType(33000, 0); !ok || typ != TypeFloat {
		t.Errorf("ResourceType(33000, 0) = %v, %v", typ, ok)
	}
	if d, _ := m.Object(33001, ""); d.Version != "1.1" {
		t.Errorf("newest 33001 = %s", d.Version)
	}
}

func TestLoadDDFDirBadFilesChangeNothing(t *testing.T) {
	thermo := string(readTestdata(t, "33000-thermostat.xml"))
	dir := writeDir(t, map[string]string{
		"a-good.xml":     thermo,
		"b-notxml.xml":   "{\"json\": true}",
		"c-badtype.xml":  ddfObjectXML(strings.Replace(validObjectFields, "33000", "33005", 1), item0("Type", "Integr")),
		"d-noid.xml":     ddfObjectXML(strings.Replace(validObjectFields, "<ObjectID>33000</ObjectID>", "", 1), validItem),
		"e-good-too.xml": strings.Replace(thermo, "33000", "33010", -1),
	})
	m := NewModel()
	before := len(m.Objects())
	n, err := m.LoadDDFDir(dir)
	if err == nil || n != 0 {
		t.Fatalf("LoadDDFDir = %d, %v; want 0 and an error", n, err)
	}
	if !errors.Is(err, ErrInvalidDefinition) {
		t.Errorf("error %v does not match ErrInvalidDefinition", err)
	}
	for _, want := range []string{"b-notxml.xml", "c-badtype.xml: object 33005 v1.1: resource 0: Type", "d-noid.xml: ObjectID: missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "a-good.xml") {
		t.Errorf("error blames a good file:\n%v", err)
	}
	if got := len(m.Objects()); got != before {
		t.Errorf("a folder with bad files changed the model: %d -> %d definitions", before, got)
	}
	if _, ok := m.Object(33000, ""); ok {
		t.Error("good file of a bad folder was loaded")
	}
}

func TestLoadDDFDirDuplicateAcrossFiles(t *testing.T) {
	thermo := string(readTestdata(t, "33000-thermostat.xml"))
	dir := writeDir(t, map[string]string{"one.xml": thermo, "two.xml": thermo})
	var m Model
	_, err := m.LoadDDFDir(dir)
	var de *DefinitionError
	if !errors.As(err, &de) || de.Field != "ObjectVersion" || !strings.Contains(err.Error(), "one.xml") ||
		!strings.HasSuffix(de.File, "two.xml") {
		t.Fatalf("LoadDDFDir = %v; want two.xml blamed for repeating one.xml", err)
	}
}

func TestLoadDDFDirMissingFolder(t *testing.T) {
	var m Model
	if _, err := m.LoadDDFDir(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadDDFDir(missing) = %v, want os.ErrNotExist", err)
	}
	n, err := m.LoadDDFDir(t.TempDir())
	if n != 0 || err != nil {
		t.Fatalf("LoadDDFDir(empty) = %d, %v", n, err)
	}
}

func FuzzParseDDF(f *testing.F) {
	for _, name := range []string{"33000-thermostat.xml", "33001-valve.xml", "5-1_1.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "ddf", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(ddfObjectXML(validObjectFields, validItem)))
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseDDF(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("error %v is not a DefinitionError", err)
			}
			return
		}
		// Whatever parses is valid: the model accepts it, and it survives a write and re-read.
		var m Model
		if err := m.Add(defs...); err != nil {
			t.Fatalf("parsed definitions rejected by Add: %v", err)
		}
		var buf bytes.Buffer
		if err := WriteDDF(&buf, defs...); err != nil {
			t.Fatalf("WriteDDF: %v", err)
		}
		back, err := ParseDDF(&buf)
		if err != nil {
			t.Fatalf("re-parse of written DDF: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(back, defs) {
			t.Fatalf("round trip changed definitions:\n%s\nwant\n%s", dump(back), dump(defs))
		}
	})
}

// dump renders definitions readably for failure messages.
func dump(defs []*ObjectDef) string {
	var b bytes.Buffer
	if err := WriteDDF(&b, defs...); err != nil {
		return "(unwritable: " + err.Error() + ")"
	}
	return b.String()
}
