package lwm2m

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxID is the largest usable object, instance or resource id; 65535 is reserved by the spec.
const MaxID = 65534

// ErrInvalidPath is returned for a string that is not an LwM2M path.
var ErrInvalidPath = errors.New("lwm2m: invalid path")

// Path addresses the root, an object, an object instance, a resource or a resource instance
// (/3/0/3/1). It is a comparable value so it can key maps without allocation.
type Path struct {
	ids [4]uint16
	n   uint8
}

// RootPath is "/".
var RootPath = Path{}

// NewPath builds a path from up to four ids.
func NewPath(ids ...uint16) Path {
	var p Path
	if len(ids) > 4 {
		ids = ids[:4]
	}
	p.n = uint8(copy(p.ids[:], ids))
	return p
}

// ParsePath parses "/3/0/3", "3/0/3" or "/" (the root).
func ParsePath(s string) (Path, error) {
	s = strings.TrimPrefix(s, "/")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return RootPath, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) > 4 {
		return Path{}, fmt.Errorf("%w: %q has more than 4 levels", ErrInvalidPath, s)
	}
	var p Path
	for i, part := range parts {
		v, err := strconv.ParseUint(part, 10, 16)
		if err != nil || v > MaxID || (len(part) > 1 && part[0] == '0') {
			return Path{}, fmt.Errorf("%w: %q: bad id %q", ErrInvalidPath, s, part)
		}
		p.ids[i] = uint16(v)
	}
	p.n = uint8(len(parts))
	return p, nil
}

// MustParsePath is ParsePath for literals in code and tests; it panics on a bad literal.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Len is the number of ids: 0 root, 1 object, 2 instance, 3 resource, 4 resource instance.
func (p Path) Len() int { return int(p.n) }

// ID returns the id at level i (0 object, 1 instance, 2 resource, 3 resource instance).
func (p Path) ID(i int) uint16 { return p.ids[i] }

// ObjectID is the object id; meaningful when Len() >= 1.
func (p Path) ObjectID() uint16 { return p.ids[0] }

// InstanceID is the object instance id; meaningful when Len() >= 2.
func (p Path) InstanceID() uint16 { return p.ids[1] }

// ResourceID is the resource id; meaningful when Len() >= 3.
func (p Path) ResourceID() uint16 { return p.ids[2] }

// ResourceInstanceID is the resource instance id; meaningful when Len() == 4.
func (p Path) ResourceInstanceID() uint16 { return p.ids[3] }

// Append returns p with one more level; it returns p unchanged when p is already 4 deep.
func (p Path) Append(id uint16) Path {
	if p.n >= 4 {
		return p
	}
	p.ids[p.n] = id
	p.n++
	return p
}

// Parent returns p without its last level; the root's parent is the root.
func (p Path) Parent() Path {
	if p.n == 0 {
		return p
	}
	p.n--
	p.ids[p.n] = 0
	return p
}

// HasPrefix reports whether q is p or an ancestor of p.
func (p Path) HasPrefix(q Path) bool {
	if q.n > p.n {
		return false
	}
	for i := 0; i < int(q.n); i++ {
		if p.ids[i] != q.ids[i] {
			return false
		}
	}
	return true
}

// Segments returns the ids as decimal strings, as CoAP Uri-Path options carry them.
func (p Path) Segments() []string {
	out := make([]string, p.n)
	for i := 0; i < int(p.n); i++ {
		out[i] = strconv.Itoa(int(p.ids[i]))
	}
	return out
}

// String renders "/3/0/3"; the root is "/".
func (p Path) String() string {
	if p.n == 0 {
		return "/"
	}
	var b strings.Builder
	for i := 0; i < int(p.n); i++ {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.ids[i])))
	}
	return b.String()
}

// MarshalText makes paths render as strings in JSON.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses a path from JSON.
func (p *Path) UnmarshalText(b []byte) error {
	q, err := ParsePath(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
