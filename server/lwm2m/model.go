package lwm2m

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Operations is the set of operations a resource allows, as the DDF <Operations> element
// spells it: "R", "W", "RW", "E", or "" (bootstrap-only, as in the Security object).
type Operations uint8

// The operation bits. The DDF never combines Execute with Read or Write.
const (
	OpRead Operations = 1 << iota
	OpWrite
	OpExecute
)

const opAll = OpRead | OpWrite | OpExecute

// ParseOperations reads a DDF <Operations> value. Surrounding space is ignored; any other
// spelling is an error because a typo here would silently make a resource unreadable.
func ParseOperations(s string) (Operations, error) {
	switch strings.TrimSpace(s) {
	case "":
		return 0, nil
	case "R":
		return OpRead, nil
	case "W":
		return OpWrite, nil
	case "RW":
		return OpRead | OpWrite, nil
	case "E":
		return OpExecute, nil
	}
	return 0, fmt.Errorf("unknown operations %q (want R, W, RW, E or empty)", s)
}

// String renders the DDF spelling.
func (o Operations) String() string {
	var b strings.Builder
	if o&OpRead != 0 {
		b.WriteByte('R')
	}
	if o&OpWrite != 0 {
		b.WriteByte('W')
	}
	if o&OpExecute != 0 {
		b.WriteByte('E')
	}
	return b.String()
}

// CanRead reports whether Read (and so Observe) is allowed.
func (o Operations) CanRead() bool { return o&OpRead != 0 }

// CanWrite reports whether Write is allowed.
func (o Operations) CanWrite() bool { return o&OpWrite != 0 }

// CanExecute reports whether Execute is allowed.
func (o Operations) CanExecute() bool { return o&OpExecute != 0 }

// valid rejects unknown bits and the combinations no DDF can express.
func (o Operations) valid() bool {
	if o&^opAll != 0 {
		return false
	}
	return o&OpExecute == 0 || o == OpExecute
}

// ResourceDef describes one resource of an object, as one DDF <Item> does.
type ResourceDef struct {
	ID               uint16
	Name             string
	Operations       Operations
	Multiple         bool // multiple-instance resource (/O/I/R/RI paths)
	Mandatory        bool
	Type             Type // TypeNone for executable resources
	RangeEnumeration string
	Units            string
}

// ObjectDef describes one version of one object, as one DDF <Object> does. Definitions held
// by a Model are shared between goroutines: treat them as read-only.
type ObjectDef struct {
	ID           uint16
	Name         string
	Version      string // object version, "1.0", "1.1", ...
	LwM2MVersion string // the enabler version the object was written for
	URN          string
	Multiple     bool // multiple-instance object
	Mandatory    bool
	Resources    map[uint16]*ResourceDef
}

// Resource returns the definition of resource id in this object version.
func (d *ObjectDef) Resource(id uint16) (*ResourceDef, bool) {
	r, ok := d.Resources[id]
	return r, ok
}

// ResourceIDs returns the defined resource ids in ascending order (maps have no order,
// and discovery output and DDF files should be stable).
func (d *ObjectDef) ResourceIDs() []uint16 {
	return slices.Sorted(maps.Keys(d.Resources))
}

// clone deep-copies d so that a Model never shares memory with its caller.
func (d *ObjectDef) clone() *ObjectDef {
	c := *d
	c.Resources = make(map[uint16]*ResourceDef, len(d.Resources))
	for id, r := range d.Resources {
		if r == nil {
			c.Resources[id] = nil // validate reports it
			continue
		}
		rc := *r
		c.Resources[id] = &rc
	}
	return &c
}

// objectVersion is a parsed "major.minor" version, ordered numerically so "1.10" > "1.9".
type objectVersion struct{ major, minor uint16 }

func parseObjectVersion(s string) (objectVersion, bool) {
	maj, min, ok := strings.Cut(s, ".")
	if !ok {
		return objectVersion{}, false
	}
	a, err1 := parseDecimal16(maj)
	b, err2 := parseDecimal16(min)
	if err1 != nil || err2 != nil {
		return objectVersion{}, false
	}
	return objectVersion{a, b}, true
}

// parseDecimal16 accepts only plain digits: strconv alone would also take "+1".
func parseDecimal16(s string) (uint16, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err
}

func (v objectVersion) String() string {
	return strconv.Itoa(int(v.major)) + "." + strconv.Itoa(int(v.minor))
}

func (v objectVersion) compare(w objectVersion) int {
	if c := cmp.Compare(v.major, w.major); c != 0 {
		return c
	}
	return cmp.Compare(v.minor, w.minor)
}

// DefaultVersion is the object and enabler version a DDF without <ObjectVersion> or
// <LWM2MVersion> declares: the LwM2M 1.0 files predate both elements.
const DefaultVersion = "1.0"

// Model is the set of object definitions the server knows: the built-in core objects plus
// whatever was loaded from DDF files. Reads never block: they load an immutable snapshot that
// Add replaces whole, which suits a model read on every decoded payload and written only at
// start-up or on an operator's reload. The zero Model is empty and ready to use.
type Model struct {
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[snapshot]
}

// snapshot is one immutable state of a Model.
type snapshot struct {
	byID   map[uint16][]*ObjectDef // versions of one object, oldest first
	newest map[uint32]*ResourceDef // objectID<<16|resourceID -> newest version's definition
	all    []*ObjectDef            // every definition, by id then version
}

// NewModel returns a model holding the built-in definitions (see README.md for the list).
func NewModel() *Model {
	m := new(Model)
	if err := m.Add(builtinObjects()...); err != nil {
		// The tables are code; a bad entry is a programming error that TestBuiltinsValid catches.
		panic(err)
	}
	return m
}

func (m *Model) load() *snapshot {
	if s := m.snap.Load(); s != nil {
		return s
	}
	return &snapshot{}
}

// Object returns one version of an object; version "" means the newest version known.
func (m *Model) Object(id uint16, version string) (*ObjectDef, bool) {
	versions := m.load().byID[id]
	if len(versions) == 0 {
		return nil, false
	}
	if version == "" {
		return versions[len(versions)-1], true
	}
	want, ok := parseObjectVersion(version)
	if !ok {
		return nil, false
	}
	for _, d := range versions {
		if v, _ := parseObjectVersion(d.Version); v == want {
			return d, true
		}
	}
	return nil, false
}

// Resource returns a resource's definition from the newest version of the object that
// defines it. Callers that know the device's object version should use Object instead;
// across the core objects' versions only a few ranges, units and integer signedness differ.
func (m *Model) Resource(objectID, resourceID uint16) (*ResourceDef, bool) {
	r, ok := m.load().newest[resourceKey(objectID, resourceID)]
	return r, ok
}

// ResourceType gives the data type codecs decode a resource's values into; it satisfies
// codec.Resolver. ok is false when the resource is unknown or has no data type (executable
// resources), so the codec falls back to its own untyped decoding.
func (m *Model) ResourceType(objectID, resourceID uint16) (Type, bool) {
	r, ok := m.Resource(objectID, resourceID)
	if !ok || r.Type == TypeNone {
		return TypeNone, false
	}
	return r.Type, true
}

// Multiple reports whether a resource is multiple-instance; server/dm asks it to choose a
// format that can carry resource instances.
func (m *Model) Multiple(objectID, resourceID uint16) bool {
	r, ok := m.Resource(objectID, resourceID)
	return ok && r.Multiple
}

// Objects returns every definition, all versions, ordered by object id then version.
func (m *Model) Objects() []*ObjectDef {
	return slices.Clone(m.load().all)
}

// Add validates defs and adds them in one step: if any is invalid, nothing changes. A
// definition with the same object id and version as one already held replaces it, so a DDF
// folder can correct or extend a built-in; two such definitions within one call are an error.
func (m *Model) Add(defs ...*ObjectDef) error {
	type versionKey struct {
		id uint16
		v  objectVersion
	}
	seen := make(map[versionKey]bool, len(defs))
	copies := make([]*ObjectDef, 0, len(defs))
	for _, d := range defs {
		if d == nil {
			return &DefinitionError{Object: -1, Resource: -1, Err: errors.New("nil definition")}
		}
		c := d.clone()
		if err := validate(c); err != nil {
			return err
		}
		v, _ := parseObjectVersion(c.Version)
		key := versionKey{c.ID, v}
		if seen[key] {
			return &DefinitionError{Object: int(c.ID), Version: c.Version, Resource: -1, Field: "ObjectVersion",
				Err: errors.New("defined twice")}
		}
		seen[key] = true
		copies = append(copies, c)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap.Store(m.load().with(copies))
	return nil
}

// with returns a new snapshot holding s's definitions plus defs, defs winning on a clash.
func (s *snapshot) with(defs []*ObjectDef) *snapshot {
	byID := make(map[uint16][]*ObjectDef, len(s.byID)+len(defs))
	for id, vs := range s.byID {
		byID[id] = slices.Clone(vs)
	}
	for _, d := range defs {
		v, _ := parseObjectVersion(d.Version)
		vs := byID[d.ID]
		i, found := slices.BinarySearchFunc(vs, v, func(e *ObjectDef, v objectVersion) int {
			ev, _ := parseObjectVersion(e.Version)
			return ev.compare(v)
		})
		if found {
			vs[i] = d
		} else {
			vs = slices.Insert(vs, i, d)
		}
		byID[d.ID] = vs
	}

	n := &snapshot{byID: byID, newest: make(map[uint32]*ResourceDef)}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		vs := byID[id]
		n.all = append(n.all, vs...)
		// Oldest first, so a newer version's definition overwrites an older one.
		for _, d := range vs {
			for rid, r := range d.Resources {
				n.newest[resourceKey(id, rid)] = r
			}
		}
	}
	return n
}

func resourceKey(objectID, resourceID uint16) uint32 {
	return uint32(objectID)<<16 | uint32(resourceID)
}

// validate checks what the rest of the server relies on: ids in range, ids matching their
// map keys, names present, versions parseable, operations and types known. It normalises
// empty versions to DefaultVersion, as a DDF without them means.
func validate(d *ObjectDef) error {
	objErr := func(field string, err error) error {
		return &DefinitionError{Object: int(d.ID), Version: d.Version, Resource: -1, Field: field, Err: err}
	}
	if d.ID > MaxID {
		return &DefinitionError{Object: int(d.ID), Resource: -1, Field: "ObjectID",
			Err: fmt.Errorf("%d is above the largest usable id %d", d.ID, MaxID)}
	}
	if d.Version == "" {
		d.Version = DefaultVersion
	}
	if d.LwM2MVersion == "" {
		d.LwM2MVersion = DefaultVersion
	}
	// Versions are stored in canonical form ("01.1" becomes "1.1") so that lookups,
	// duplicate checks and written DDFs agree with each other.
	v, ok := parseObjectVersion(d.Version)
	if !ok {
		return objErr("ObjectVersion", fmt.Errorf("%q is not a major.minor version", d.Version))
	}
	d.Version = v.String()
	lv, ok := parseObjectVersion(d.LwM2MVersion)
	if !ok {
		return objErr("LWM2MVersion", fmt.Errorf("%q is not a major.minor version", d.LwM2MVersion))
	}
	d.LwM2MVersion = lv.String()
	if err := checkName(d.Name); err != nil {
		return objErr("Name", err)
	}
	if !utf8.ValidString(d.URN) {
		return objErr("ObjectURN", errors.New("not valid UTF-8"))
	}
	for _, key := range d.ResourceIDs() {
		r := d.Resources[key]
		resErr := func(field string, err error) error {
			return &DefinitionError{Object: int(d.ID), Version: d.Version, Resource: int(key), Field: field, Err: err}
		}
		switch {
		case r == nil:
			return resErr("Item", errors.New("nil definition"))
		case key > MaxID:
			return resErr("Item ID", fmt.Errorf("%d is above the largest usable id %d", key, MaxID))
		case r.ID != key:
			return resErr("Item ID", fmt.Errorf("definition says %d but is filed under %d", r.ID, key))
		case !r.Operations.valid():
			return resErr("Operations", fmt.Errorf("invalid operation set %#x", uint8(r.Operations)))
		case int(r.Type) >= len(typeNames):
			return resErr("Type", fmt.Errorf("unknown data type %d", r.Type))
		case !utf8.ValidString(r.RangeEnumeration):
			return resErr("RangeEnumeration", errors.New("not valid UTF-8"))
		case !utf8.ValidString(r.Units):
			return resErr("Units", errors.New("not valid UTF-8"))
		}
		if err := checkName(r.Name); err != nil {
			return resErr("Name", err)
		}
	}
	return nil
}

func checkName(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("missing")
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	return nil
}
