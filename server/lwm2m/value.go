package lwm2m

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Type is a resource data type from the LwM2M object model.
type Type uint8

// The resource data types of LwM2M 1.1/1.2 (Core, appendix C).
const (
	TypeNone Type = iota // executable resources and values whose type is not known
	TypeString
	TypeInteger
	TypeUnsignedInteger
	TypeFloat
	TypeBoolean
	TypeOpaque
	TypeTime
	TypeObjlnk
	TypeCorelnk
)

var typeNames = [...]string{"none", "string", "integer", "unsigned", "float", "boolean", "opaque", "time", "objlnk", "corelnk"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType reads the names used in JSON and in OMA DDF files ("Integer", "Unsigned Integer", "Objlnk", ...).
func ParseType(s string) (Type, error) {
	switch s {
	case "", "none", "None":
		return TypeNone, nil
	case "string", "String":
		return TypeString, nil
	case "integer", "Integer":
		return TypeInteger, nil
	case "unsigned", "Unsigned Integer", "unsigned integer", "Unsigned":
		return TypeUnsignedInteger, nil
	case "float", "Float":
		return TypeFloat, nil
	case "boolean", "Boolean":
		return TypeBoolean, nil
	case "opaque", "Opaque":
		return TypeOpaque, nil
	case "time", "Time":
		return TypeTime, nil
	case "objlnk", "Objlnk", "Objlink":
		return TypeObjlnk, nil
	case "corelnk", "Corelnk", "CoreLnk":
		return TypeCorelnk, nil
	}
	return TypeNone, fmt.Errorf("lwm2m: unknown data type %q", s)
}

// ObjLink is an Objlnk value: a reference to an object instance ("3:0").
type ObjLink struct {
	ObjectID   uint16
	InstanceID uint16
}

func (l ObjLink) String() string { return fmt.Sprintf("%d:%d", l.ObjectID, l.InstanceID) }

// Value is one typed resource value. Only the field for Type is meaningful; a zero Value is TypeNone.
type Value struct {
	Type  Type
	Int   int64   // TypeInteger; TypeTime as Unix seconds
	Uint  uint64  // TypeUnsignedInteger
	Float float64 // TypeFloat
	Bool  bool    // TypeBoolean
	Str   string  // TypeString, TypeCorelnk
	Bytes []byte  // TypeOpaque
	Link  ObjLink // TypeObjlnk
}

// Constructors keep call sites short and the Type field right.
func String(s string) Value         { return Value{Type: TypeString, Str: s} }
func Integer(i int64) Value         { return Value{Type: TypeInteger, Int: i} }
func Unsigned(u uint64) Value       { return Value{Type: TypeUnsignedInteger, Uint: u} }
func Float(f float64) Value         { return Value{Type: TypeFloat, Float: f} }
func Boolean(b bool) Value          { return Value{Type: TypeBoolean, Bool: b} }
func Opaque(b []byte) Value         { return Value{Type: TypeOpaque, Bytes: b} }
func Time(t time.Time) Value        { return Value{Type: TypeTime, Int: t.Unix()} }
func Objlnk(obj, inst uint16) Value { return Value{Type: TypeObjlnk, Link: ObjLink{obj, inst}} }
func Corelnk(s string) Value        { return Value{Type: TypeCorelnk, Str: s} }

// Text renders the value as LwM2M plain text (content-format 0) would; opaque becomes base64.
func (v Value) Text() string {
	switch v.Type {
	case TypeString, TypeCorelnk:
		return v.Str
	case TypeInteger, TypeTime:
		return strconv.FormatInt(v.Int, 10)
	case TypeUnsignedInteger:
		return strconv.FormatUint(v.Uint, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case TypeBoolean:
		if v.Bool {
			return "1"
		}
		return "0"
	case TypeOpaque:
		return base64.StdEncoding.EncodeToString(v.Bytes)
	case TypeObjlnk:
		return v.Link.String()
	}
	return ""
}

// Equal compares type and the meaningful field (floats bit-for-bit so NaN equals itself).
func (v Value) Equal(w Value) bool {
	if v.Type != w.Type {
		return false
	}
	switch v.Type {
	case TypeFloat:
		return math.Float64bits(v.Float) == math.Float64bits(w.Float)
	case TypeOpaque:
		return string(v.Bytes) == string(w.Bytes)
	}
	return v.Text() == w.Text()
}

func (v Value) String() string { return v.Type.String() + ":" + v.Text() }

// Record is one value at a full path: the flat form every content format decodes into
// (SenML's view of the data), so callers never walk format-specific trees.
type Record struct {
	Path  Path
	Value Value
	// Time is the record's timestamp when the format carried one (SenML bt/t); zero otherwise.
	Time time.Time
}
