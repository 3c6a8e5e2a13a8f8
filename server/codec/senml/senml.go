// Package senml reads and writes SenML JSON (110) and SenML CBOR (112), RFC 8428, the
// way LwM2M 1.1/1.2 uses them: names are bn+n absolute paths, objlnk travels as "vlo".
package senml

import "github.com/lwota/lwota/server/lwm2m"

// Resolver types resources from the object model; it refines the kind SenML carries
// (a number into Time, Unsigned or Float; a string into Objlnk or Corelnk).
type Resolver interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}

// number is a SenML numeric value as the wire gave it: integer, unsigned or float.
type number struct {
	kind lwm2m.Type // TypeInteger, TypeUnsignedInteger or TypeFloat
	i    int64
	u    uint64
	f    float64
}

func (n number) value() lwm2m.Value {
	switch n.kind {
	case lwm2m.TypeInteger:
		return lwm2m.Integer(n.i)
	case lwm2m.TypeUnsignedInteger:
		return lwm2m.Unsigned(n.u)
	}
	return lwm2m.Float(n.f)
}

func (n number) float() float64 {
	switch n.kind {
	case lwm2m.TypeInteger:
		return float64(n.i)
	case lwm2m.TypeUnsignedInteger:
		return float64(n.u)
	}
	return n.f
}

// record is one SenML record with the labels LwM2M uses; has* say which were present.
type record struct {
	bn, n       string
	hasBN, hasN bool
	bt, t       number
	hasBT, hasT bool
	bv          number
	hasBV       bool
	v           number
	hasV        bool
	vs          string
	hasVS       bool
	vb          bool
	hasVB       bool
	vd          []byte
	hasVD       bool
	vlo         string
	hasVLO      bool
}
