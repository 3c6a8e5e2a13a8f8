package lwm2mcbor

import (
	"fmt"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwota/lwota/server/codec/cbormode"
	"github.com/lwota/lwota/server/lwm2m"
)

// node is one level of the path tree Encode builds before choosing keys.
type node struct {
	children map[uint16]*node
	order    []uint16
	leaf     bool
	value    lwm2m.Value
}

// Encode writes recs (full paths, all under base and at least resource deep) as LwM2M
// CBOR. Paths are written from the root, and every chain of single-child levels
// collapses into one array key, the compression LwM2M 1.2 allows:
// /3/0/0 and /3/0/1 become {[3, 0]: {0: ..., 1: ...}}.
func Encode(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	root := &node{}
	for _, rec := range recs {
		if !rec.Path.HasPrefix(base) {
			return nil, fmt.Errorf("lwm2mcbor: %s under %s: %w", rec.Path, base, ErrNotUnderBase)
		}
		if rec.Path.Len() < 3 {
			return nil, fmt.Errorf("lwm2mcbor: %s: %w", rec.Path, ErrNotResource)
		}
		if _, err := toItem(rec.Value); err != nil {
			return nil, fmt.Errorf("lwm2mcbor: %s: %w", rec.Path, err)
		}
		if err := root.insert(rec.Path, rec.Value); err != nil {
			return nil, err
		}
	}
	em, err := cbormode.Enc()
	if err != nil {
		return nil, fmt.Errorf("lwm2mcbor: %w", err)
	}
	out, err := em.Marshal(root.tree())
	if err != nil {
		return nil, fmt.Errorf("lwm2mcbor: %w", err)
	}
	return out, nil
}

func (n *node) insert(p lwm2m.Path, v lwm2m.Value) error {
	cur := n
	for i := 0; i < p.Len(); i++ {
		if cur.leaf {
			return fmt.Errorf("lwm2mcbor: %s: below a value: %w", p, ErrDuplicate)
		}
		id := p.ID(i)
		next, ok := cur.children[id]
		if !ok {
			if cur.children == nil {
				cur.children = make(map[uint16]*node)
			}
			next = &node{}
			cur.children[id] = next
			cur.order = append(cur.order, id)
		}
		cur = next
	}
	if cur.leaf || len(cur.children) > 0 {
		return fmt.Errorf("lwm2mcbor: %s: %w", p, ErrDuplicate)
	}
	cur.leaf, cur.value = true, v
	return nil
}

// tree renders n's children as a CBOR map, folding single-child chains into array keys.
func (n *node) tree() map[key]any {
	m := make(map[key]any, len(n.order))
	for _, id := range n.order {
		k := key{}
		k.ids[0], k.n = id, 1
		c := n.children[id]
		for !c.leaf && len(c.order) == 1 && k.n < len(k.ids) {
			k.ids[k.n] = c.order[0]
			k.n++
			c = c.children[c.order[0]]
		}
		if c.leaf {
			item, _ := toItem(c.value) // checked in Encode
			m[k] = item
		} else {
			m[k] = c.tree()
		}
	}
	return m
}

// toItem maps a value to the CBOR item LwM2M CBOR uses for its type. Time is tagged
// epoch seconds (tag 1) so it reads back as Time without the model's help.
func toItem(v lwm2m.Value) (any, error) {
	switch v.Type {
	case lwm2m.TypeNone:
		return nil, nil
	case lwm2m.TypeInteger:
		return v.Int, nil
	case lwm2m.TypeUnsignedInteger:
		return v.Uint, nil
	case lwm2m.TypeFloat:
		return v.Float, nil
	case lwm2m.TypeBoolean:
		return v.Bool, nil
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		if !utf8.ValidString(v.Str) {
			return nil, fmt.Errorf("string is not UTF-8: %w", ErrNotRepresentable)
		}
		return v.Str, nil
	case lwm2m.TypeOpaque:
		if v.Bytes == nil {
			return []byte{}, nil
		}
		return v.Bytes, nil
	case lwm2m.TypeTime:
		return cbor.Tag{Number: 1, Content: v.Int}, nil
	case lwm2m.TypeObjlnk:
		return v.Link.String(), nil
	}
	return nil, fmt.Errorf("%s: %w", v.Type, ErrNotRepresentable)
}
