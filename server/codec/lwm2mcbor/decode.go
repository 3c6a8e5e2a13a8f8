package lwm2mcbor

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwota/lwota/server/codec/cbormode"
	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// Decode reads an LwM2M CBOR payload. Paths in it are absolute and must lie under base
// (the root accepts all). A null value gives a record with no value. Records come back
// sorted by path, since CBOR map order carries no meaning.
func Decode(base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	dm, err := cbormode.Dec()
	if err != nil {
		return nil, fmt.Errorf("lwm2mcbor: %w", err)
	}
	d := decoder{dm: dm, r: r, base: base, seen: make(map[lwm2m.Path]struct{})}
	if err := d.walk(lwm2m.RootPath, data); err != nil {
		return nil, err
	}
	sort.Slice(d.out, func(i, j int) bool { return less(d.out[i].Path, d.out[j].Path) })
	// Sorted, a value's sub-paths follow it directly: a resource cannot hold both a
	// value and resource instances.
	for i := 1; i < len(d.out); i++ {
		if d.out[i].Path.HasPrefix(d.out[i-1].Path) {
			return nil, fmt.Errorf("lwm2mcbor: %s and %s: %w", d.out[i-1].Path, d.out[i].Path, ErrDuplicate)
		}
	}
	return d.out, nil
}

type decoder struct {
	dm   cbor.DecMode
	r    Resolver
	base lwm2m.Path
	out  []lwm2m.Record
	seen map[lwm2m.Path]struct{}
}

func (d *decoder) walk(prefix lwm2m.Path, data []byte) error {
	var m map[key]cbor.RawMessage
	if err := d.dm.Unmarshal(data, &m); err != nil {
		if cbormode.IsLimit(err) {
			return fmt.Errorf("lwm2mcbor: %s: %w: %v", prefix, ErrTooMany, err)
		}
		return fmt.Errorf("lwm2mcbor: %s: %w", prefix, wrapSyntax(err))
	}
	if m == nil {
		return fmt.Errorf("lwm2mcbor: %s: %w: want a map", prefix, ErrSyntax)
	}
	for k, raw := range m {
		p := prefix
		for _, id := range k.ids[:k.n] {
			if p.Len() == 4 {
				return fmt.Errorf("lwm2mcbor: %s + %d: %w", p, id, ErrTooDeep)
			}
			p = p.Append(id)
		}
		if len(raw) > 0 && raw[0]>>5 == 5 { // major type 5: a map, one level deeper
			if err := d.walk(p, raw); err != nil {
				return err
			}
			continue
		}
		if err := d.leaf(p, raw); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) leaf(p lwm2m.Path, raw []byte) error {
	if len(d.out) == valueconv.MaxRecords {
		return fmt.Errorf("lwm2mcbor: more than %d records: %w", valueconv.MaxRecords, ErrTooMany)
	}
	if p.Len() < 3 {
		return fmt.Errorf("lwm2mcbor: %s: %w", p, ErrNotResource)
	}
	if !p.HasPrefix(d.base) {
		return fmt.Errorf("lwm2mcbor: %s under %s: %w", p, d.base, ErrNotUnderBase)
	}
	if _, dup := d.seen[p]; dup {
		return fmt.Errorf("lwm2mcbor: %s: %w", p, ErrDuplicate)
	}
	d.seen[p] = struct{}{}
	var x any
	if err := d.dm.Unmarshal(raw, &x); err != nil {
		return fmt.Errorf("lwm2mcbor: %s: %w", p, wrapSyntax(err))
	}
	v, err := fromItem(x)
	if err != nil {
		return fmt.Errorf("lwm2mcbor: %s: %w", p, err)
	}
	if want, ok := valueconv.ModelType(d.r, p); ok {
		c, ok := valueconv.Coerce(v, want)
		if !ok {
			return fmt.Errorf("lwm2mcbor: %s: %s for %s resource: %w", p, v.Type, want, ErrWrongKind)
		}
		v = c
	}
	d.out = append(d.out, lwm2m.Record{Path: p, Value: v})
	return nil
}

// fromItem types a decoded CBOR item by its own kind; the model refines it later.
func fromItem(x any) (lwm2m.Value, error) {
	if i, u, f, kind, ok := cbormode.Number(x); ok {
		switch kind {
		case 'i':
			return lwm2m.Integer(i), nil
		case 'u':
			return lwm2m.Unsigned(u), nil
		}
		return lwm2m.Float(f), nil
	}
	switch x := x.(type) {
	case nil:
		return lwm2m.Value{}, nil
	case string:
		return lwm2m.String(x), nil
	case []byte:
		return lwm2m.Opaque(x), nil
	case bool:
		return lwm2m.Boolean(x), nil
	case time.Time:
		return lwm2m.Value{Type: lwm2m.TypeTime, Int: x.Unix()}, nil
	}
	return lwm2m.Value{}, fmt.Errorf("%w: %s is not a resource value", ErrSyntax, cbormode.Describe(x))
}

// wrapSyntax keeps our own key errors recognisable and files the library's under ErrSyntax.
func wrapSyntax(err error) error {
	if errors.Is(err, ErrBadKey) || errors.Is(err, ErrTooDeep) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrSyntax, err)
}

func less(a, b lwm2m.Path) bool {
	for i := 0; i < a.Len() && i < b.Len(); i++ {
		if a.ID(i) != b.ID(i) {
			return a.ID(i) < b.ID(i)
		}
	}
	return a.Len() < b.Len()
}
