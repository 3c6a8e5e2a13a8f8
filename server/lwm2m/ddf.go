package lwm2m

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxDDFSize bounds one DDF file. The largest registry files are a few tens of KiB; the bound
// keeps a stray file in the objects folder from holding the server's memory.
const MaxDDFSize = 4 << 20

// The OMA DDF layout (schema LWM2M-v1_1.xsd). Every value is read as a string so that a bad
// value gets an error naming its element, instead of encoding/xml's generic parse error.
type ddfFile struct {
	XMLName xml.Name    `xml:"LWM2M"`
	Objects []ddfObject `xml:"Object"`
}

type ddfObject struct {
	XMLName           xml.Name     `xml:"Object"`
	ObjectType        string       `xml:"ObjectType,attr"`
	Name              string       `xml:"Name"`
	Description1      string       `xml:"Description1"`
	ObjectID          string       `xml:"ObjectID"`
	ObjectURN         string       `xml:"ObjectURN"`
	LWM2MVersion      string       `xml:"LWM2MVersion"`
	ObjectVersion     string       `xml:"ObjectVersion"`
	MultipleInstances string       `xml:"MultipleInstances"`
	Mandatory         string       `xml:"Mandatory"`
	Resources         ddfResources `xml:"Resources"`
	Description2      string       `xml:"Description2"`
}

type ddfResources struct {
	Items []ddfItem `xml:"Item"`
}

type ddfItem struct {
	ID                string `xml:"ID,attr"`
	Name              string `xml:"Name"`
	Operations        string `xml:"Operations"`
	MultipleInstances string `xml:"MultipleInstances"`
	Mandatory         string `xml:"Mandatory"`
	Type              string `xml:"Type"`
	RangeEnumeration  string `xml:"RangeEnumeration"`
	Units             string `xml:"Units"`
	Description       string `xml:"Description"`
}

// ParseDDF reads one OMA DDF file (an <LWM2M> element holding one or more <Object>s) and
// returns its validated definitions. Errors are *DefinitionError naming the element at fault.
// A DDF without <ObjectVersion> or <LWM2MVersion>, as the LwM2M 1.0 files are, means 1.0.
func ParseDDF(r io.Reader) ([]*ObjectDef, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDDFSize+1))
	if err != nil {
		return nil, fmt.Errorf("lwm2m: read DDF: %w", err)
	}
	return parseDDF(data, "")
}

// LoadDDFDir parses every *.xml file in dir (not its subfolders) and adds their definitions
// to m, returning how many it added. Every file is checked before anything is added: on any
// error m is unchanged and the error lists each bad file. One object version defined by two
// files is an error; a file may redefine a built-in version, which it then replaces.
func (m *Model) LoadDDFDir(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("lwm2m: load DDF folder: %w", err)
	}
	type versionKey struct {
		id      uint16
		version string
	}
	var (
		defs   []*ObjectDef
		errs   []error
		origin = make(map[versionKey]string)
	)
	for _, e := range entries { // os.ReadDir sorts by name, so errors come in a stable order
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fileDefs, err := parseDDFFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range fileDefs {
			k := versionKey{d.ID, d.Version}
			if prev, dup := origin[k]; dup {
				errs = append(errs, &DefinitionError{File: path, Object: int(d.ID), Version: d.Version, Resource: -1,
					Field: "ObjectVersion", Err: fmt.Errorf("also defined in %s", prev)})
				continue
			}
			origin[k] = path
			defs = append(defs, d)
		}
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	if err := m.Add(defs...); err != nil {
		return 0, err
	}
	return len(defs), nil
}

func parseDDFFile(path string) ([]*ObjectDef, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &DefinitionError{File: path, Object: -1, Resource: -1, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDDFSize+1))
	if err != nil {
		return nil, &DefinitionError{File: path, Object: -1, Resource: -1, Err: err}
	}
	return parseDDF(data, path)
}

// parseDDF does the work of ParseDDF; file names the source in errors.
func parseDDF(data []byte, file string) ([]*ObjectDef, error) {
	fileErr := func(field string, err error) error {
		return &DefinitionError{File: file, Object: -1, Resource: -1, Field: field, Err: err}
	}
	if len(data) > MaxDDFSize {
		return nil, fileErr("", fmt.Errorf("larger than %d bytes", MaxDDFSize))
	}
	// Editors on Windows like to start files with a byte order mark; encoding/xml does not
	// skip it.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = charsetReader
	var doc ddfFile
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("no XML element")
		}
		return nil, fileErr("", fmt.Errorf("not an LwM2M DDF: %w", err))
	}
	if len(doc.Objects) == 0 {
		return nil, fileErr("Object", errors.New("no <Object> element"))
	}
	defs := make([]*ObjectDef, 0, len(doc.Objects))
	seen := make(map[string]bool, len(doc.Objects))
	for i := range doc.Objects {
		d, err := doc.Objects[i].toDef()
		if err == nil {
			err = validate(d)
		}
		if err != nil {
			var de *DefinitionError
			if errors.As(err, &de) {
				de.File = file
			}
			return nil, err
		}
		key := fmt.Sprintf("%d@%s", d.ID, d.Version)
		if seen[key] {
			return nil, &DefinitionError{File: file, Object: int(d.ID), Version: d.Version, Resource: -1,
				Field: "ObjectVersion", Err: errors.New("object version defined twice in the file")}
		}
		seen[key] = true
		defs = append(defs, d)
	}
	return defs, nil
}

// toDef converts one <Object>; validate then checks what the Go form can express.
func (o *ddfObject) toDef() (*ObjectDef, error) {
	id, err := parseDDFID(o.ObjectID)
	if err != nil {
		return nil, &DefinitionError{Object: -1, Resource: -1, Field: "ObjectID", Err: err}
	}
	d := &ObjectDef{
		ID:           id,
		Name:         strings.TrimSpace(o.Name),
		Version:      strings.TrimSpace(o.ObjectVersion),
		LwM2MVersion: strings.TrimSpace(o.LWM2MVersion),
		URN:          strings.TrimSpace(o.ObjectURN),
		Resources:    make(map[uint16]*ResourceDef, len(o.Resources.Items)),
	}
	objErr := func(field string, err error) error {
		return &DefinitionError{Object: int(id), Version: d.Version, Resource: -1, Field: field, Err: err}
	}
	if t := strings.TrimSpace(o.ObjectType); t != "" && t != "MODefinition" {
		return nil, objErr("ObjectType", fmt.Errorf("%q is not MODefinition", t))
	}
	if d.Multiple, err = parseChoice(o.MultipleInstances, "Multiple", "Single"); err != nil {
		return nil, objErr("MultipleInstances", err)
	}
	if d.Mandatory, err = parseChoice(o.Mandatory, "Mandatory", "Optional"); err != nil {
		return nil, objErr("Mandatory", err)
	}
	for i := range o.Resources.Items {
		it := &o.Resources.Items[i]
		rid, err := parseDDFID(it.ID)
		if err != nil {
			return nil, objErr("Item ID", err)
		}
		resErr := func(field string, err error) error {
			return &DefinitionError{Object: int(id), Version: d.Version, Resource: int(rid), Field: field, Err: err}
		}
		if _, dup := d.Resources[rid]; dup {
			return nil, resErr("Item ID", errors.New("defined twice"))
		}
		r := &ResourceDef{
			ID:               rid,
			Name:             strings.TrimSpace(it.Name),
			RangeEnumeration: strings.TrimSpace(it.RangeEnumeration),
			Units:            strings.TrimSpace(it.Units),
		}
		if r.Operations, err = ParseOperations(it.Operations); err != nil {
			return nil, resErr("Operations", err)
		}
		if r.Multiple, err = parseChoice(it.MultipleInstances, "Multiple", "Single"); err != nil {
			return nil, resErr("MultipleInstances", err)
		}
		if r.Mandatory, err = parseChoice(it.Mandatory, "Mandatory", "Optional"); err != nil {
			return nil, resErr("Mandatory", err)
		}
		// lwm2m.ParseType owns the type spellings, for DDF and JSON alike.
		typeName := strings.TrimSpace(it.Type)
		if r.Type, err = ParseType(typeName); err != nil {
			return nil, resErr("Type", fmt.Errorf("unknown data type %q", typeName))
		}
		d.Resources[rid] = r
	}
	return d, nil
}

// parseDDFID reads an ObjectID element or an Item ID attribute.
func parseDDFID(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("missing")
	}
	v, err := parseDecimal16(s)
	if err != nil || v > MaxID {
		return 0, fmt.Errorf("%q is not an id from 0 to %d", s, MaxID)
	}
	return v, nil
}

// parseChoice reads the DDF's two-valued elements (Multiple/Single, Mandatory/Optional).
func parseChoice(s, yes, no string) (bool, error) {
	switch strings.TrimSpace(s) {
	case yes:
		return true, nil
	case no:
		return false, nil
	case "":
		return false, errors.New("missing")
	}
	return false, fmt.Errorf("%q is neither %s nor %s", strings.TrimSpace(s), yes, no)
}

// charsetReader lets the decoder read the encodings DDF files are found in besides UTF-8.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1":
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		// Latin-1 bytes are the first 256 Unicode code points.
		var out strings.Builder
		out.Grow(len(b))
		for _, c := range b {
			out.WriteRune(rune(c))
		}
		return strings.NewReader(out.String()), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

// ddfTypeName is the DDF spelling of a data type; ParseType reads each one back.
func ddfTypeName(t Type) string {
	switch t {
	case TypeString:
		return "String"
	case TypeInteger:
		return "Integer"
	case TypeUnsignedInteger:
		return "Unsigned Integer"
	case TypeFloat:
		return "Float"
	case TypeBoolean:
		return "Boolean"
	case TypeOpaque:
		return "Opaque"
	case TypeTime:
		return "Time"
	case TypeObjlnk:
		return "Objlnk"
	case TypeCorelnk:
		return "Corelnk"
	}
	return "" // TypeNone: executable resources have an empty <Type>
}

// WriteDDF writes defs as one OMA DDF file that ParseDDF and other LwM2M tools read back.
// Descriptions are left empty: the model does not keep them.
func WriteDDF(w io.Writer, defs ...*ObjectDef) error {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString(`<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ` +
		`xsi:noNamespaceSchemaLocation="http://www.openmobilealliance.org/tech/profiles/LWM2M-v1_1.xsd">` + "\n")
	for _, d := range defs {
		if d == nil {
			return &DefinitionError{Object: -1, Resource: -1, Err: errors.New("nil definition")}
		}
		c := d.clone()
		if err := validate(c); err != nil {
			return err
		}
		o := ddfObject{
			ObjectType:        "MODefinition",
			Name:              c.Name,
			ObjectID:          strconv.Itoa(int(c.ID)),
			ObjectURN:         c.URN,
			LWM2MVersion:      c.LwM2MVersion,
			ObjectVersion:     c.Version,
			MultipleInstances: choice(c.Multiple, "Multiple", "Single"),
			Mandatory:         choice(c.Mandatory, "Mandatory", "Optional"),
		}
		for _, id := range c.ResourceIDs() {
			r := c.Resources[id]
			o.Resources.Items = append(o.Resources.Items, ddfItem{
				ID:                strconv.Itoa(int(r.ID)),
				Name:              r.Name,
				Operations:        r.Operations.String(),
				MultipleInstances: choice(r.Multiple, "Multiple", "Single"),
				Mandatory:         choice(r.Mandatory, "Mandatory", "Optional"),
				Type:              ddfTypeName(r.Type),
				RangeEnumeration:  r.RangeEnumeration,
				Units:             r.Units,
			})
		}
		out, err := xml.MarshalIndent(o, "  ", "  ")
		if err != nil {
			return fmt.Errorf("lwm2m: write DDF: object %d: %w", c.ID, err)
		}
		buf.Write(out)
		buf.WriteByte('\n')
	}
	buf.WriteString("</LWM2M>\n")
	_, err := w.Write(buf.Bytes())
	return err
}

func choice(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
