// Package cbormode builds the fxamacker/cbor modes the CBOR codecs share: strict,
// bounded decoding and deterministic, lossless encoding.
package cbormode

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwota/lwota/server/codec/valueconv"
)

// MaxItems bounds arrays and maps so a hostile length header cannot make the decoder
// allocate more than the record limit needs.
const MaxItems = valueconv.MaxRecords

// maxNesting is generous for LwM2M (pack > record > value, or four path levels of maps)
// yet stops stack-hungry inputs early.
const maxNesting = 16

// Dec returns the decoding mode. Modes are cheap enough to build per payload, which
// keeps package-level state out of the codecs.
func Dec() (cbor.DecMode, error) {
	return cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  maxNesting,
		MaxArrayElements: MaxItems,
		MaxMapPairs:      MaxItems,
		UTF8:             cbor.UTF8RejectInvalid,
		IntDec:           cbor.IntDecConvertNone,
	}.DecMode()
}

// Enc returns the encoding mode: sorted map keys so output is reproducible, and floats
// in the shortest width that keeps every bit, NaN payloads included.
func Enc() (cbor.EncMode, error) {
	return cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		ShortestFloat: cbor.ShortestFloat16,
		NaNConvert:    cbor.NaNConvertPreserveSignal,
		InfConvert:    cbor.InfConvertFloat16,
	}.EncMode()
}

// IsLimit reports whether err came from one of the decoder's size limits.
func IsLimit(err error) bool {
	var a *cbor.MaxArrayElementsError
	var m *cbor.MaxMapPairsError
	var n *cbor.MaxNestedLevelError
	return errors.As(err, &a) || errors.As(err, &m) || errors.As(err, &n)
}

// Number classifies a decoded CBOR item as an integer, an unsigned integer too big for
// int64, or a float; ok is false for anything else.
func Number(x any) (i int64, u uint64, f float64, kind byte, ok bool) {
	switch x := x.(type) {
	case uint64:
		if x <= 1<<63-1 {
			return int64(x), 0, 0, 'i', true
		}
		return 0, x, 0, 'u', true
	case int64:
		return x, 0, 0, 'i', true
	case float64:
		return 0, 0, x, 'f', true
	case float32:
		return 0, 0, float64(x), 'f', true
	}
	return 0, 0, 0, 0, false
}

// Describe names the kind of a decoded item for error messages.
func Describe(x any) string {
	switch x.(type) {
	case nil:
		return "null"
	case string:
		return "text string"
	case []byte:
		return "byte string"
	case bool:
		return "boolean"
	case uint64, int64, float32, float64:
		return "number"
	case []any:
		return "array"
	case map[any]any:
		return "map"
	}
	return fmt.Sprintf("%T", x)
}
