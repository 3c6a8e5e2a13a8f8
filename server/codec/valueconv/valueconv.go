// Package valueconv holds what every codec shares: the record limit and the rules for
// turning a value the wire typed one way into the type the object model declares.
package valueconv

import (
	"math"
	"strconv"
	"strings"

	"github.com/lwota/lwota/server/lwm2m"
)

// MaxRecords bounds how many records one payload may decode into, so a hostile payload
// cannot make the server allocate without limit.
const MaxRecords = 10000

// Coerce converts v to the model's type want when the wire form is compatible
// (an integer for a Time, "3:0" for an Objlnk, ...). TypeNone means the model does
// not constrain the value, so v is kept. It reports false when the kinds do not fit.
func Coerce(v lwm2m.Value, want lwm2m.Type) (lwm2m.Value, bool) {
	if want == lwm2m.TypeNone || v.Type == want || v.Type == lwm2m.TypeNone {
		return v, true
	}
	switch want {
	case lwm2m.TypeString:
		if v.Type == lwm2m.TypeCorelnk {
			return lwm2m.String(v.Str), true
		}
	case lwm2m.TypeCorelnk:
		if v.Type == lwm2m.TypeString {
			return lwm2m.Corelnk(v.Str), true
		}
	case lwm2m.TypeObjlnk:
		if v.Type == lwm2m.TypeString {
			if l, ok := ParseObjlnk(v.Str); ok {
				return lwm2m.Value{Type: lwm2m.TypeObjlnk, Link: l}, true
			}
		}
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		if i, ok := asInt(v); ok {
			return lwm2m.Value{Type: want, Int: i}, true
		}
	case lwm2m.TypeUnsignedInteger:
		if u, ok := asUint(v); ok {
			return lwm2m.Unsigned(u), true
		}
	case lwm2m.TypeFloat:
		switch v.Type {
		case lwm2m.TypeInteger:
			return lwm2m.Float(float64(v.Int)), true
		case lwm2m.TypeUnsignedInteger:
			return lwm2m.Float(float64(v.Uint)), true
		}
	}
	return v, false
}

// asInt accepts any number that is integral and fits int64; a float like 3.0 counts
// because JSON writers cannot always tell 3 from 3.0.
func asInt(v lwm2m.Value) (int64, bool) {
	switch v.Type {
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		return v.Int, true
	case lwm2m.TypeUnsignedInteger:
		if v.Uint <= math.MaxInt64 {
			return int64(v.Uint), true
		}
	case lwm2m.TypeFloat:
		if v.Float == math.Trunc(v.Float) && v.Float >= -(1<<63) && v.Float < 1<<63 {
			return int64(v.Float), true
		}
	}
	return 0, false
}

func asUint(v lwm2m.Value) (uint64, bool) {
	switch v.Type {
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		if v.Int >= 0 {
			return uint64(v.Int), true
		}
	case lwm2m.TypeFloat:
		if v.Float == math.Trunc(v.Float) && v.Float >= 0 && v.Float < 1<<64 {
			return uint64(v.Float), true
		}
	}
	return 0, false
}

// ParseObjlnk reads "obj:inst". Both ids may be 65535: "65535:65535" is the spec's null link.
func ParseObjlnk(s string) (lwm2m.ObjLink, bool) {
	o, i, ok := strings.Cut(s, ":")
	if !ok {
		return lwm2m.ObjLink{}, false
	}
	ov, err1 := strconv.ParseUint(o, 10, 16)
	iv, err2 := strconv.ParseUint(i, 10, 16)
	if err1 != nil || err2 != nil {
		return lwm2m.ObjLink{}, false
	}
	return lwm2m.ObjLink{ObjectID: uint16(ov), InstanceID: uint16(iv)}, true
}

// ModelType asks r for the type of the resource at p; r may be nil and p may be
// shallower than a resource, both meaning "unknown".
func ModelType(r interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}, p lwm2m.Path) (lwm2m.Type, bool) {
	if r == nil || p.Len() < 3 {
		return lwm2m.TypeNone, false
	}
	return r.ResourceType(p.ObjectID(), p.ResourceID())
}
