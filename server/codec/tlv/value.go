package tlv

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// decodeValue types raw bytes by the model; without a model the bytes stay opaque,
// because TLV alone cannot tell "1" the string from 0x31 the integer.
func decodeValue(p lwm2m.Path, raw []byte, r Resolver) (lwm2m.Value, error) {
	typ, ok := valueconv.ModelType(r, p)
	if !ok || typ == lwm2m.TypeNone {
		return lwm2m.Opaque(clone(raw)), nil
	}
	bad := func(why string) (lwm2m.Value, error) {
		return lwm2m.Value{}, fmt.Errorf("tlv: %s: %s of %d bytes: %w: %s", p, typ, len(raw), ErrBadValue, why)
	}
	switch typ {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		if !utf8.Valid(raw) {
			return bad("not UTF-8")
		}
		return lwm2m.Value{Type: typ, Str: string(raw)}, nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		i, ok := signed(raw)
		if !ok {
			return bad("length must be 1, 2, 4 or 8")
		}
		return lwm2m.Value{Type: typ, Int: i}, nil
	case lwm2m.TypeUnsignedInteger:
		u, ok := unsigned(raw)
		if !ok {
			return bad("length must be 1, 2, 4 or 8")
		}
		return lwm2m.Unsigned(u), nil
	case lwm2m.TypeFloat:
		switch len(raw) {
		case 4:
			return lwm2m.Float(float64(math.Float32frombits(binary.BigEndian.Uint32(raw)))), nil
		case 8:
			return lwm2m.Float(math.Float64frombits(binary.BigEndian.Uint64(raw))), nil
		}
		return bad("length must be 4 or 8")
	case lwm2m.TypeBoolean:
		if len(raw) != 1 || raw[0] > 1 {
			return bad("must be one byte 0 or 1")
		}
		return lwm2m.Boolean(raw[0] == 1), nil
	case lwm2m.TypeObjlnk:
		if len(raw) != 4 {
			return bad("length must be 4")
		}
		return lwm2m.Objlnk(binary.BigEndian.Uint16(raw), binary.BigEndian.Uint16(raw[2:])), nil
	}
	return lwm2m.Opaque(clone(raw)), nil
}

func signed(b []byte) (int64, bool) {
	switch len(b) {
	case 1:
		return int64(int8(b[0])), true
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b))), true
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), true
	case 8:
		return int64(binary.BigEndian.Uint64(b)), true
	}
	return 0, false
}

func unsigned(b []byte) (uint64, bool) {
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), true
	case 8:
		return binary.BigEndian.Uint64(b), true
	}
	return 0, false
}

// encodeValue writes the shortest form the spec allows for the value's type.
func encodeValue(v lwm2m.Value) ([]byte, error) {
	switch v.Type {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		return []byte(v.Str), nil
	case lwm2m.TypeOpaque:
		return v.Bytes, nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		i := v.Int
		switch {
		case i >= math.MinInt8 && i <= math.MaxInt8:
			return []byte{byte(i)}, nil
		case i >= math.MinInt16 && i <= math.MaxInt16:
			return binary.BigEndian.AppendUint16(nil, uint16(i)), nil
		case i >= math.MinInt32 && i <= math.MaxInt32:
			return binary.BigEndian.AppendUint32(nil, uint32(i)), nil
		}
		return binary.BigEndian.AppendUint64(nil, uint64(i)), nil
	case lwm2m.TypeUnsignedInteger:
		u := v.Uint
		switch {
		case u <= math.MaxUint8:
			return []byte{byte(u)}, nil
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(nil, uint16(u)), nil
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(nil, uint32(u)), nil
		}
		return binary.BigEndian.AppendUint64(nil, u), nil
	case lwm2m.TypeFloat:
		// Four bytes only when they give back the very same bits, NaN payloads included.
		if f32 := float32(v.Float); math.Float64bits(float64(f32)) == math.Float64bits(v.Float) {
			return binary.BigEndian.AppendUint32(nil, math.Float32bits(f32)), nil
		}
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(v.Float)), nil
	case lwm2m.TypeBoolean:
		if v.Bool {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case lwm2m.TypeObjlnk:
		b := binary.BigEndian.AppendUint16(nil, v.Link.ObjectID)
		return binary.BigEndian.AppendUint16(b, v.Link.InstanceID), nil
	}
	return nil, ErrNoValue
}

func clone(b []byte) []byte {
	return append([]byte{}, b...)
}
