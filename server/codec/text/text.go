// Package text reads and writes the single-value content formats of LwM2M:
// plain text (0) and opaque (42), for one resource or resource instance.
package text

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// Resolver types resources from the object model; plain text carries no type.
type Resolver interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}

func checkBase(base lwm2m.Path) error {
	if base.Len() < 3 {
		return fmt.Errorf("text: base %s: %w", base, ErrBadBase)
	}
	return nil
}

// Decode parses a plain-text payload as the model's type for base; an unknown resource
// (or a nil r) gives a string.
func Decode(base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	if err := checkBase(base); err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("text: %s: %w: not UTF-8", base, ErrBadValue)
	}
	typ, _ := valueconv.ModelType(r, base)
	v, err := Parse(string(data), typ)
	if err != nil {
		return nil, fmt.Errorf("text: %s: %w", base, err)
	}
	return []lwm2m.Record{{Path: base, Value: v}}, nil
}

// Parse reads s as LwM2M plain text of type typ (TypeNone reads as a string).
// Numbers tolerate surrounding whitespace; strings are kept exactly.
func Parse(s string, typ lwm2m.Type) (lwm2m.Value, error) {
	t := strings.TrimSpace(s)
	bad := func() (lwm2m.Value, error) {
		return lwm2m.Value{}, fmt.Errorf("%w: %q is not %s", ErrBadValue, clip(s), typ)
	}
	switch typ {
	case lwm2m.TypeNone, lwm2m.TypeString:
		return lwm2m.String(s), nil
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk(s), nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		i, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return bad()
		}
		return lwm2m.Value{Type: typ, Int: i}, nil
	case lwm2m.TypeUnsignedInteger:
		u, err := strconv.ParseUint(t, 10, 64)
		if err != nil {
			return bad()
		}
		return lwm2m.Unsigned(u), nil
	case lwm2m.TypeFloat:
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return bad()
		}
		return lwm2m.Float(f), nil
	case lwm2m.TypeBoolean:
		switch t {
		case "1", "true":
			return lwm2m.Boolean(true), nil
		case "0", "false":
			return lwm2m.Boolean(false), nil
		}
		return bad()
	case lwm2m.TypeOpaque:
		// LwM2M 1.1 carries opaque in plain text as base64.
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return bad()
		}
		return lwm2m.Opaque(b), nil
	case lwm2m.TypeObjlnk:
		l, ok := valueconv.ParseObjlnk(t)
		if !ok {
			return bad()
		}
		return lwm2m.Value{Type: lwm2m.TypeObjlnk, Link: l}, nil
	}
	return bad()
}

// Encode writes the one record at base as plain text.
func Encode(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	v, err := single(base, recs)
	if err != nil {
		return nil, err
	}
	if v.Type == lwm2m.TypeNone {
		return nil, fmt.Errorf("text: %s: %w", base, ErrNoValue)
	}
	return []byte(v.Text()), nil
}

// DecodeOpaque returns the payload as the opaque value of base.
func DecodeOpaque(base lwm2m.Path, data []byte) ([]lwm2m.Record, error) {
	if err := checkBase(base); err != nil {
		return nil, err
	}
	return []lwm2m.Record{{Path: base, Value: lwm2m.Opaque(append([]byte{}, data...))}}, nil
}

// EncodeOpaque writes the one opaque record at base as raw bytes.
func EncodeOpaque(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	v, err := single(base, recs)
	if err != nil {
		return nil, err
	}
	if v.Type != lwm2m.TypeOpaque {
		return nil, fmt.Errorf("text: %s: %s as opaque: %w", base, v.Type, ErrNoValue)
	}
	return v.Bytes, nil
}

func single(base lwm2m.Path, recs []lwm2m.Record) (lwm2m.Value, error) {
	if err := checkBase(base); err != nil {
		return lwm2m.Value{}, err
	}
	if len(recs) != 1 || recs[0].Path != base {
		return lwm2m.Value{}, fmt.Errorf("text: %d records for %s: %w", len(recs), base, ErrRecords)
	}
	return recs[0].Value, nil
}

// clip keeps error messages short when a hostile payload is large.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
