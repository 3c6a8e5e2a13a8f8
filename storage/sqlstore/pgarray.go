package sqlstore

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// encodedArray is a one-dimensional PostgreSQL array in the binary wire format, the parameter
// of a merged statement (arrays): built straight from the writes' args and sent by pgx as it is
// (arrayCodec), where a []string or []*int64 went through pgx's array codec element by element,
// each boxed into an interface (and a *int64 through reflection) for an encode plan. That was
// most of the writer's encoding CPU for a batch of touches.
type encodedArray []byte

// PostgreSQL's element OIDs (pg_type) of the columns arrays builds.
const (
	boolOID = 16
	int8OID = 20
	textOID = 25
)

// arrayHeader is the size of a one-dimensional array's header: ndim, has-null flag, element
// OID, the dimension's length and its lower bound, an int32 each.
const arrayHeader = 20

// appendHeader appends the header of a one-dimensional array of n elements of type oid.
func appendHeader(buf []byte, oid uint32, n int, hasNull bool) []byte {
	null := uint32(0)
	if hasNull {
		null = 1
	}
	if n == 0 { // PostgreSQL's empty array has no dimension
		buf = binary.BigEndian.AppendUint32(buf, 0)
		buf = binary.BigEndian.AppendUint32(buf, 0)
		return binary.BigEndian.AppendUint32(buf, oid)
	}
	buf = binary.BigEndian.AppendUint32(buf, 1)
	buf = binary.BigEndian.AppendUint32(buf, null)
	buf = binary.BigEndian.AppendUint32(buf, oid)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1)
}

// encodeColumn encodes column col of statement i of ops as an array of the type of the first
// write's value there: text for string, int8 for int64 and sql.NullInt64 (NULL when not
// Valid), bool for bool. A write whose value has another type makes it an error: every write
// of a group has the same statement and so the same column types.
func encodeColumn(ops []*write, i, col int) (encodedArray, error) {
	n := len(ops)
	switch ops[0].stmts[i].args[col].(type) {
	case string:
		size := arrayHeader + 4*n
		for _, op := range ops {
			s, _ := op.stmts[i].args[col].(string)
			size += len(s)
		}
		buf := appendHeader(make([]byte, 0, size), textOID, n, false)
		for _, op := range ops {
			s, ok := op.stmts[i].args[col].(string)
			if !ok {
				return nil, columnTypeError(op, i, col, "string")
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
		return buf, nil
	case int64:
		buf := appendHeader(make([]byte, 0, arrayHeader+12*n), int8OID, n, false)
		for _, op := range ops {
			v, ok := op.stmts[i].args[col].(int64)
			if !ok {
				return nil, columnTypeError(op, i, col, "int64")
			}
			buf = binary.BigEndian.AppendUint32(buf, 8)
			buf = binary.BigEndian.AppendUint64(buf, uint64(v))
		}
		return buf, nil
	case sql.NullInt64:
		hasNull := false
		for _, op := range ops {
			if v, _ := op.stmts[i].args[col].(sql.NullInt64); !v.Valid {
				hasNull = true
				break
			}
		}
		buf := appendHeader(make([]byte, 0, arrayHeader+12*n), int8OID, n, hasNull)
		for _, op := range ops {
			v, ok := op.stmts[i].args[col].(sql.NullInt64)
			switch {
			case !ok:
				return nil, columnTypeError(op, i, col, "sql.NullInt64")
			case !v.Valid:
				buf = binary.BigEndian.AppendUint32(buf, 0xffffffff) // -1: NULL
			default:
				buf = binary.BigEndian.AppendUint32(buf, 8)
				buf = binary.BigEndian.AppendUint64(buf, uint64(v.Int64))
			}
		}
		return buf, nil
	case bool:
		buf := appendHeader(make([]byte, 0, arrayHeader+5*n), boolOID, n, false)
		for _, op := range ops {
			v, ok := op.stmts[i].args[col].(bool)
			if !ok {
				return nil, columnTypeError(op, i, col, "bool")
			}
			b := byte(0)
			if v {
				b = 1
			}
			buf = binary.BigEndian.AppendUint32(buf, 1)
			buf = append(buf, b)
		}
		return buf, nil
	}
	return nil, fmt.Errorf("merged statement's arg %d is a %T, which no array holds", col+1, ops[0].stmts[i].args[col])
}

func columnTypeError(op *write, i, col int, want string) error {
	return fmt.Errorf("merged write of %s: arg %d is a %T, not a %s as the group's first", op.key, col+1, op.stmts[i].args[col], want)
}

// arrayCodec is the codec of an array type on the writer's connections: an encodedArray whose
// element type is the array's goes out as it is; every other value, and every scan, is the
// wrapped codec's (pgx's ArrayCodec).
type arrayCodec struct {
	pgtype.Codec
	elem uint32 // the array's element OID
}

func (c arrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(encodedArray); ok {
		// A plan in the text format too, one that fails: pgx tries the other format when the
		// first fails, and without a plan of ours it would find one for the bytes underneath.
		return encodedArrayPlan{elem: c.elem, text: format != pgtype.BinaryFormatCode}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// encodedArrayPlan appends an encodedArray after checking that its elements are of the type
// the statement's parameter holds: a mismatch fails the batch, which is then retried write by
// write, rather than send PostgreSQL values of another type.
type encodedArrayPlan struct {
	elem uint32
	text bool // asked for the text format, which an encodedArray is not
}

func (p encodedArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.(encodedArray)
	if p.text {
		return nil, errors.New("an encoded array has the binary format only")
	}
	if len(a) < 12 {
		return nil, fmt.Errorf("encoded array of %d bytes has no header", len(a))
	}
	if oid := binary.BigEndian.Uint32(a[8:12]); oid != p.elem {
		return nil, fmt.Errorf("encoded array of element type %d for a parameter of element type %d", oid, p.elem)
	}
	return append(buf, a...), nil
}

// arrayTypes are the array types a merged statement's parameters take (bigint[], text[],
// boolean[]) and their element types.
var arrayTypes = [...]struct {
	name string
	elem uint32
}{{"_int8", int8OID}, {"_text", textOID}, {"_bool", boolOID}}

// useEncodedArrays makes m, a writer connection's type map, send encodedArrays as they are
// (arrayCodec). It registers the codecs once per connection: a later call finds them.
func useEncodedArrays(m *pgtype.Map) {
	for _, at := range arrayTypes {
		t, ok := m.TypeForName(at.name)
		if !ok {
			continue // unknown to pgx: the encodedArray fails to encode and the batch is retried alone
		}
		if _, done := t.Codec.(arrayCodec); done {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: arrayCodec{Codec: t.Codec, elem: at.elem}})
	}
}
