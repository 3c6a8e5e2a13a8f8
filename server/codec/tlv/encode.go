package tlv

import (
	"fmt"

	"github.com/lwota/lwota/server/lwm2m"
)

// Encode writes recs (full paths, all under base) as the TLV answer to a request on
// base: object-instance TLVs for an object, resource TLVs for an instance, a
// multiple-resource TLV for a multi-instance resource, a resource-instance TLV for one
// resource instance. Records keep their order; resources group at first appearance.
func Encode(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	if base.Len() == 0 {
		return nil, fmt.Errorf("tlv: base %s: %w", base, ErrBadBase)
	}
	seen := make(map[lwm2m.Path]struct{}, len(recs))
	for _, rec := range recs {
		if !rec.Path.HasPrefix(base) || rec.Path.Len() < 3 {
			return nil, fmt.Errorf("tlv: %s under base %s: %w", rec.Path, base, ErrNotUnderBase)
		}
		if _, dup := seen[rec.Path]; dup {
			return nil, fmt.Errorf("tlv: %s: %w", rec.Path, ErrDuplicate)
		}
		seen[rec.Path] = struct{}{}
	}
	switch base.Len() {
	case 1:
		var out []byte
		for _, g := range group(recs, 1) {
			body, err := encodeResources(g)
			if err != nil {
				return nil, err
			}
			if out, err = appendEntry(out, kindObjectInstance, g[0].Path.InstanceID(), body); err != nil {
				return nil, err
			}
		}
		return out, nil
	case 2:
		return encodeResources(recs)
	case 3:
		if len(recs) == 1 && recs[0].Path.Len() == 3 {
			return appendValue(nil, kindResource, recs[0])
		}
		return encodeMultiple(nil, base, recs)
	default:
		if len(recs) != 1 {
			return nil, fmt.Errorf("tlv: %d records for resource instance %s: %w", len(recs), base, ErrBadBase)
		}
		return appendValue(nil, kindResourceInstance, recs[0])
	}
}

// group splits recs by the id at level, keeping the order in which ids first appear.
func group(recs []lwm2m.Record, level int) [][]lwm2m.Record {
	var out [][]lwm2m.Record
	index := make(map[uint16]int)
	for _, rec := range recs {
		id := rec.Path.ID(level)
		i, ok := index[id]
		if !ok {
			i = len(out)
			index[id] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], rec)
	}
	return out
}

func encodeResources(recs []lwm2m.Record) ([]byte, error) {
	var out []byte
	var err error
	for _, g := range group(recs, 2) {
		if len(g) == 1 && g[0].Path.Len() == 3 {
			out, err = appendValue(out, kindResource, g[0])
		} else {
			p := g[0].Path
			out, err = encodeMultiple(out, lwm2m.NewPath(p.ObjectID(), p.InstanceID(), p.ResourceID()), g)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func encodeMultiple(dst []byte, res lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	var body []byte
	for _, rec := range recs {
		if rec.Path.Len() != 4 {
			return nil, fmt.Errorf("tlv: %s: %w", res, ErrMixed)
		}
		var err error
		if body, err = appendValue(body, kindResourceInstance, rec); err != nil {
			return nil, err
		}
	}
	return appendEntry(dst, kindMultipleResource, res.ResourceID(), body)
}

func appendValue(dst []byte, k kind, rec lwm2m.Record) ([]byte, error) {
	b, err := encodeValue(rec.Value)
	if err != nil {
		return nil, fmt.Errorf("tlv: %s: %s: %w", rec.Path, rec.Value.Type, err)
	}
	return appendEntry(dst, k, rec.Path.ID(rec.Path.Len()-1), b)
}
