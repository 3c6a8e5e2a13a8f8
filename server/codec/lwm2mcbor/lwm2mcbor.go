// Package lwm2mcbor reads and writes LwM2M CBOR (11544, LwM2M 1.2 Core §7.4.6): nested
// maps keyed by path ids from the root, where a key may be an array of ids.
package lwm2mcbor

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwota/lwota/server/lwm2m"
)

// Resolver types resources from the object model; it refines the kind CBOR carries
// (an integer into Time or Unsigned, a text string into Objlnk or Corelnk).
type Resolver interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}

// key is one map key: a path fragment of one to four ids. It is comparable so it can
// key the Go map fxamacker/cbor decodes into, which an []any array key could not.
type key struct {
	ids [4]uint16
	n   int
}

// UnmarshalCBOR accepts an unsigned id or an array of them. The outer decode already
// checked the payload against the size limits, so the default mode is safe here.
func (k *key) UnmarshalCBOR(b []byte) error {
	var x any
	if err := cbor.Unmarshal(b, &x); err != nil {
		return fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch x := x.(type) {
	case uint64:
		return k.push(x)
	case []any:
		if len(x) == 0 {
			return fmt.Errorf("%w: empty array", ErrBadKey)
		}
		for _, e := range x {
			id, ok := e.(uint64)
			if !ok {
				return fmt.Errorf("%w: array element is not an unsigned integer", ErrBadKey)
			}
			if err := k.push(id); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: want an id or array of ids", ErrBadKey)
}

func (k *key) push(id uint64) error {
	if id > lwm2m.MaxID {
		return fmt.Errorf("%w: id %d above %d", ErrBadKey, id, lwm2m.MaxID)
	}
	if k.n == len(k.ids) {
		return fmt.Errorf("%w: more than 4 ids", ErrTooDeep)
	}
	k.ids[k.n] = uint16(id)
	k.n++
	return nil
}

// MarshalCBOR writes one id as an integer and longer fragments as an array.
func (k key) MarshalCBOR() ([]byte, error) {
	if k.n == 1 {
		return cbor.Marshal(k.ids[0])
	}
	return cbor.Marshal(k.ids[:k.n])
}
