package lwm2mcbor

import (
	"fmt"

	"github.com/lwota/lwota/server/codec/cbormode"
	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// DecodeSingle reads plain CBOR (content-format 60, LwM2M 1.1): one bare CBOR item
// holding the value of the resource or resource instance at base.
func DecodeSingle(base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	if base.Len() < 3 {
		return nil, fmt.Errorf("cbor: base %s: %w", base, ErrNotResource)
	}
	dm, err := cbormode.Dec()
	if err != nil {
		return nil, fmt.Errorf("cbor: %w", err)
	}
	var x any
	if err := dm.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("cbor: %s: %w", base, wrapSyntax(err))
	}
	v, err := fromItem(x)
	if err != nil {
		return nil, fmt.Errorf("cbor: %s: %w", base, err)
	}
	if want, ok := valueconv.ModelType(r, base); ok {
		c, ok := valueconv.Coerce(v, want)
		if !ok {
			return nil, fmt.Errorf("cbor: %s: %s for %s resource: %w", base, v.Type, want, ErrWrongKind)
		}
		v = c
	}
	return []lwm2m.Record{{Path: base, Value: v}}, nil
}

// EncodeSingle writes the one record at base as plain CBOR (content-format 60).
func EncodeSingle(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	if base.Len() < 3 || len(recs) != 1 || recs[0].Path != base {
		return nil, fmt.Errorf("cbor: %d records for base %s: %w", len(recs), base, ErrNotResource)
	}
	item, err := toItem(recs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("cbor: %s: %w", base, err)
	}
	em, err := cbormode.Enc()
	if err != nil {
		return nil, fmt.Errorf("cbor: %w", err)
	}
	return em.Marshal(item)
}
