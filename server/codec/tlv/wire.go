package tlv

import (
	"encoding/binary"
	"fmt"

	"github.com/lwota/lwota/server/lwm2m"
)

// entry is one TLV with its value still raw; for the container kinds the value holds
// the nested TLVs.
type entry struct {
	kind  kind
	id    uint16
	value []byte
}

// readEntries splits data into the TLVs that follow one another at one level.
func readEntries(data []byte) ([]entry, error) {
	var out []entry
	for len(data) > 0 {
		e, rest, err := readEntry(data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		data = rest
	}
	return out, nil
}

func readEntry(data []byte) (entry, []byte, error) {
	t := data[0]
	e := entry{kind: kind(t >> 6)}
	i := 1
	idLen := 1
	if t&0x20 != 0 {
		idLen = 2
	}
	if len(data) < i+idLen {
		return e, nil, fmt.Errorf("tlv: header of %s: %w", e.kind, ErrTruncated)
	}
	var id uint32
	if idLen == 2 {
		id = uint32(binary.BigEndian.Uint16(data[i:]))
	} else {
		id = uint32(data[i])
	}
	i += idLen
	if id > lwm2m.MaxID {
		return e, nil, fmt.Errorf("tlv: %s %d: %w", e.kind, id, ErrInvalidID)
	}
	e.id = uint16(id)
	// Bits 4-3 say how many bytes of length follow; 0 means bits 2-0 are the length.
	lenBytes := int(t>>3) & 3
	n := int(t & 7)
	if lenBytes > 0 {
		if len(data) < i+lenBytes {
			return e, nil, fmt.Errorf("tlv: length of %s %d: %w", e.kind, e.id, ErrTruncated)
		}
		n = 0
		for _, b := range data[i : i+lenBytes] {
			n = n<<8 | int(b)
		}
		i += lenBytes
	}
	if len(data)-i < n {
		return e, nil, fmt.Errorf("tlv: %s %d: length %d past end (%d left): %w", e.kind, e.id, n, len(data)-i, ErrTruncated)
	}
	e.value = data[i : i+n]
	return e, data[i+n:], nil
}

// appendEntry writes one TLV choosing the shortest identifier and length fields.
func appendEntry(dst []byte, k kind, id uint16, value []byte) ([]byte, error) {
	n := len(value)
	if n > maxLength {
		return dst, fmt.Errorf("tlv: %s %d: %d bytes: %w", k, id, n, ErrTooLarge)
	}
	t := byte(k) << 6
	if id > 0xFF {
		t |= 0x20
	}
	var lenBytes int
	switch {
	case n < 8:
		t |= byte(n)
	case n <= 0xFF:
		lenBytes = 1
	case n <= 0xFFFF:
		lenBytes = 2
	default:
		lenBytes = 3
	}
	t |= byte(lenBytes) << 3
	dst = append(dst, t)
	if id > 0xFF {
		dst = binary.BigEndian.AppendUint16(dst, id)
	} else {
		dst = append(dst, byte(id))
	}
	for s := (lenBytes - 1) * 8; s >= 0; s -= 8 {
		dst = append(dst, byte(n>>s))
	}
	return append(dst, value...), nil
}
