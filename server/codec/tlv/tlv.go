// Package tlv reads and writes the OMA TLV content format (11542) of LwM2M 1.0-1.2:
// object instances, resources, multiple resources and resource instances.
package tlv

import "github.com/lwota/lwota/server/lwm2m"

// Resolver types resources from the object model; TLV carries no types of its own.
type Resolver interface {
	ResourceType(objectID, resourceID uint16) (lwm2m.Type, bool)
}

// kind is the TLV type held in bits 7-6 of the type byte.
type kind uint8

const (
	kindObjectInstance   kind = 0
	kindResourceInstance kind = 1
	kindMultipleResource kind = 2
	kindResource         kind = 3
)

func (k kind) String() string {
	switch k {
	case kindObjectInstance:
		return "object instance"
	case kindResourceInstance:
		return "resource instance"
	case kindMultipleResource:
		return "multiple resource"
	}
	return "resource"
}

// maxLength is the largest value a 24-bit length field can describe.
const maxLength = 1<<24 - 1
