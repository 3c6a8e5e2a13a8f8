package tlv

import (
	"fmt"

	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// Decode reads a TLV payload answering a request on base (an object, object instance,
// resource or resource instance) and returns one record per value, with full paths.
func Decode(base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	d := decoder{r: r, seen: make(map[lwm2m.Path]struct{})}
	if base.Len() == 0 {
		return nil, fmt.Errorf("tlv: base %s: %w", base, ErrBadBase)
	}
	entries, err := readEntries(data)
	if err != nil {
		return nil, err
	}
	switch base.Len() {
	case 1:
		ids := make(map[uint16]struct{}, len(entries))
		for _, e := range entries {
			if e.kind != kindObjectInstance {
				return nil, fmt.Errorf("tlv: %s %d under object %s: %w", e.kind, e.id, base, ErrNesting)
			}
			if _, dup := ids[e.id]; dup {
				return nil, fmt.Errorf("tlv: %s: %w", base.Append(e.id), ErrDuplicate)
			}
			ids[e.id] = struct{}{}
			if err := d.instance(base.Append(e.id), e.value); err != nil {
				return nil, err
			}
		}
	case 2:
		// Some clients wrap an instance's resources in the instance TLV even when the
		// request named the instance; accept it when the ids agree.
		if len(entries) == 1 && entries[0].kind == kindObjectInstance {
			if entries[0].id != base.InstanceID() {
				return nil, fmt.Errorf("tlv: object instance %d for base %s: %w", entries[0].id, base, ErrBadBase)
			}
			entries, err = readEntries(entries[0].value)
			if err != nil {
				return nil, fmt.Errorf("tlv: object instance %s: %w", base, err)
			}
		}
		if err := d.resources(base, entries); err != nil {
			return nil, err
		}
	case 3:
		if err := d.resource(base, entries); err != nil {
			return nil, err
		}
	case 4:
		if len(entries) > 1 || (len(entries) == 1 && (entries[0].kind != kindResourceInstance || entries[0].id != base.ResourceInstanceID())) {
			return nil, fmt.Errorf("tlv: base %s wants one resource instance %d: %w", base, base.ResourceInstanceID(), ErrBadBase)
		}
		for _, e := range entries {
			if err := d.add(base, e.value); err != nil {
				return nil, err
			}
		}
	}
	return d.out, nil
}

type decoder struct {
	r    Resolver
	out  []lwm2m.Record
	seen map[lwm2m.Path]struct{}
}

func (d *decoder) instance(p lwm2m.Path, data []byte) error {
	entries, err := readEntries(data)
	if err != nil {
		return fmt.Errorf("tlv: object instance %s: %w", p, err)
	}
	return d.resources(p, entries)
}

func (d *decoder) resources(inst lwm2m.Path, entries []entry) error {
	// A resource id may appear once per instance, whether single or multiple;
	// otherwise /R and /R/RI could both come out.
	ids := make(map[uint16]struct{}, len(entries))
	for _, e := range entries {
		p := inst.Append(e.id)
		if _, dup := ids[e.id]; dup {
			return fmt.Errorf("tlv: %s: %w", p, ErrDuplicate)
		}
		ids[e.id] = struct{}{}
		switch e.kind {
		case kindResource:
			if err := d.add(p, e.value); err != nil {
				return err
			}
		case kindMultipleResource:
			if err := d.multiple(p, e.value); err != nil {
				return err
			}
		default:
			return fmt.Errorf("tlv: %s %d inside object instance %s: %w", e.kind, e.id, inst, ErrNesting)
		}
	}
	return nil
}

// resource handles a request on one resource: the answer is the resource TLV itself,
// its multiple-resource wrapper, or bare resource instances.
func (d *decoder) resource(p lwm2m.Path, entries []entry) error {
	if len(entries) == 1 && entries[0].kind != kindResourceInstance {
		e := entries[0]
		if e.id != p.ResourceID() {
			return fmt.Errorf("tlv: %s %d for base %s: %w", e.kind, e.id, p, ErrBadBase)
		}
		switch e.kind {
		case kindResource:
			return d.add(p, e.value)
		case kindMultipleResource:
			return d.multiple(p, e.value)
		}
		return fmt.Errorf("tlv: %s %d for base %s: %w", e.kind, e.id, p, ErrNesting)
	}
	return d.instances(p, entries)
}

func (d *decoder) multiple(p lwm2m.Path, data []byte) error {
	entries, err := readEntries(data)
	if err != nil {
		return fmt.Errorf("tlv: multiple resource %s: %w", p, err)
	}
	return d.instances(p, entries)
}

func (d *decoder) instances(p lwm2m.Path, entries []entry) error {
	for _, e := range entries {
		if e.kind != kindResourceInstance {
			return fmt.Errorf("tlv: %s %d inside resource %s: %w", e.kind, e.id, p, ErrNesting)
		}
		if err := d.add(p.Append(e.id), e.value); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) add(p lwm2m.Path, raw []byte) error {
	if len(d.out) >= valueconv.MaxRecords {
		return fmt.Errorf("tlv: more than %d records: %w", valueconv.MaxRecords, ErrTooMany)
	}
	if _, dup := d.seen[p]; dup {
		return fmt.Errorf("tlv: %s: %w", p, ErrDuplicate)
	}
	v, err := decodeValue(p, raw, d.r)
	if err != nil {
		return err
	}
	d.seen[p] = struct{}{}
	d.out = append(d.out, lwm2m.Record{Path: p, Value: v})
	return nil
}
