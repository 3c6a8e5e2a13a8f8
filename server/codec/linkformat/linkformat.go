// Package linkformat parses and writes CoRE Link Format (RFC 6690, content-format 40),
// as LwM2M uses it in Register/Update payloads and Discover answers.
package linkformat

// Bounds on what Parse accepts: Register payloads of real devices are a few hundred
// bytes, so these only stop hostile input from costing memory and time.
const (
	MaxSize  = 64 << 10
	MaxLinks = 4096
)

// Link is one link-value: a target URI and its parameters in wire order.
type Link struct {
	Target string
	Params []Param
}

// Param is one link parameter. HasValue is false for a bare name (";Q"); Value holds the
// unquoted, unescaped text.
type Param struct {
	Key, Value string
	HasValue   bool
}

// Param returns the value of the first parameter named key (case-sensitive, as LwM2M
// parameter names are), and whether it is present at all.
func (l Link) Param(key string) (string, bool) {
	for _, p := range l.Params {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}
