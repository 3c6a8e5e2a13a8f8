// Package codec turns LwM2M payloads into flat records with full paths and back,
// dispatching on the content format to one sub-package per format.
package codec

import (
	"fmt"

	"github.com/lwota/lwota/server/codec/lwm2mcbor"
	"github.com/lwota/lwota/server/codec/senml"
	"github.com/lwota/lwota/server/codec/text"
	"github.com/lwota/lwota/server/codec/tlv"
	"github.com/lwota/lwota/server/lwm2m"
)

// Resolver types resources from the object model (the model package implements it).
type Resolver interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}

// Decode reads a payload of format f answering a request on base. Records carry full
// paths; r (which may be nil) types values the format leaves untyped or refines them.
func Decode(f lwm2m.ContentFormat, base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	switch f {
	case lwm2m.FormatTLV:
		return tlv.Decode(base, data, r)
	case lwm2m.FormatSenMLJSON:
		return senml.DecodeJSON(base, data, r)
	case lwm2m.FormatSenMLCBOR:
		return senml.DecodeCBOR(base, data, r)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Decode(base, data, r)
	case lwm2m.FormatCBOR:
		return lwm2mcbor.DecodeSingle(base, data, r)
	case lwm2m.FormatText:
		return text.Decode(base, data, r)
	case lwm2m.FormatOpaque:
		return text.DecodeOpaque(base, data)
	}
	return nil, fmt.Errorf("%w: %d (%s)", ErrUnsupportedFormat, f, name(f))
}

// Encode writes recs (full paths, all under base) in format f as the answer to, or the
// payload of, a request on base.
func Encode(f lwm2m.ContentFormat, base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	switch f {
	case lwm2m.FormatTLV:
		return tlv.Encode(base, recs)
	case lwm2m.FormatSenMLJSON:
		return senml.EncodeJSON(base, recs)
	case lwm2m.FormatSenMLCBOR:
		return senml.EncodeCBOR(base, recs)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Encode(base, recs)
	case lwm2m.FormatCBOR:
		return lwm2mcbor.EncodeSingle(base, recs)
	case lwm2m.FormatText:
		return text.Encode(base, recs)
	case lwm2m.FormatOpaque:
		return text.EncodeOpaque(base, recs)
	}
	return nil, fmt.Errorf("%w: %d (%s)", ErrUnsupportedFormat, f, name(f))
}

func name(f lwm2m.ContentFormat) string {
	if n := f.Name(); n != "" {
		return n
	}
	return "unknown"
}
