// Package selector reads and evaluates campaign target selectors: a small query language over a
// device's endpoint, model, firmware version, labels and presence, or an explicit endpoint list.
package selector

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Device is what a selector sees of a device.
type Device struct {
	Endpoint, Manufacturer, Model, DeviceType, FirmwareVersion string
	Labels                                                     map[string]string
	Online                                                     bool
	RegisteredAt                                               time.Time
}

// Selector is a parsed query. It is immutable and safe for concurrent use.
type Selector struct {
	root node
}

// Match reports whether d is selected.
func (s *Selector) Match(d Device) bool { return s.root.match(&d) }

// String is the canonical form of the selector: single spaces, double-quoted values with the
// escapes of the language, and parentheses only where precedence needs them. Parse(s.String())
// gives a selector with the same String.
func (s *Selector) String() string {
	var b strings.Builder
	s.root.write(&b, precOr)
	return b.String()
}

// Explicit returns the endpoints of a selector that is exactly an endpoint list (built by
// Endpoints, or a query `endpoint in (...)`), so that callers can store and show it as a list.
func (s *Selector) Explicit() ([]string, bool) {
	n, ok := s.root.(*inNode)
	if !ok || n.negate || n.field.kind != fEndpoint {
		return nil, false
	}
	return append([]string(nil), n.values...), true
}

// Endpoints is the selector of exactly these endpoints, in the order given, duplicates dropped.
// It refuses an empty list, an empty or non-UTF-8 endpoint, and more than MaxEndpoints.
func Endpoints(eps []string) (*Selector, error) {
	if len(eps) == 0 {
		return nil, fmt.Errorf("selector: empty endpoint list")
	}
	if len(eps) > MaxEndpoints {
		return nil, fmt.Errorf("%w: %d endpoints, more than %d", ErrLimit, len(eps), MaxEndpoints)
	}
	n := &inNode{field: field{kind: fEndpoint}}
	seen := make(map[string]bool, len(eps))
	for i, ep := range eps {
		if ep == "" || !utf8.ValidString(ep) {
			return nil, fmt.Errorf("selector: endpoints[%d]: %q is not an endpoint name", i, ep)
		}
		if !seen[ep] {
			seen[ep] = true
			n.values = append(n.values, ep)
		}
	}
	n.index()
	return &Selector{root: n}, nil
}

// Operator precedence, loosest first; write wraps a node in parentheses when its own precedence
// is looser than its place needs.
const (
	precOr = iota + 1
	precAnd
	precNot
	precPrimary
)

type node interface {
	match(d *Device) bool
	prec() int
	write(b *strings.Builder, need int)
}

type fieldKind int

const (
	fEndpoint fieldKind = iota + 1
	fManufacturer
	fModel
	fDeviceType
	fFirmware
	fLabel
)

var fieldNames = map[string]fieldKind{
	"endpoint": fEndpoint, "manufacturer": fManufacturer, "model": fModel,
	"device_type": fDeviceType, "firmware": fFirmware,
}

type field struct {
	kind  fieldKind
	label string // fLabel: the key
}

// fieldOf reads a field from a word: a name of fieldNames or labels.<key>.
func fieldOf(t token) (field, bool) {
	if t.kind != tWord {
		return field{}, false
	}
	if k, ok := fieldNames[t.text]; ok {
		return field{kind: k}, true
	}
	key, ok := strings.CutPrefix(t.text, "labels.")
	if !ok || key == "" || !isAlnum(key[0]) {
		return field{}, false
	}
	return field{kind: fLabel, label: key}, true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (f field) String() string {
	if f.kind == fLabel {
		return "labels." + f.label
	}
	for name, k := range fieldNames {
		if k == f.kind {
			return name
		}
	}
	return "?"
}

// value returns the field of d and whether d has it; only labels can be absent.
func (f field) value(d *Device) (string, bool) {
	switch f.kind {
	case fEndpoint:
		return d.Endpoint, true
	case fManufacturer:
		return d.Manufacturer, true
	case fModel:
		return d.Model, true
	case fDeviceType:
		return d.DeviceType, true
	case fFirmware:
		return d.FirmwareVersion, true
	}
	v, ok := d.Labels[f.label]
	return v, ok
}

type andNode struct{ terms []node }

func (n *andNode) match(d *Device) bool {
	for _, t := range n.terms {
		if !t.match(d) {
			return false
		}
	}
	return true
}
func (n *andNode) prec() int { return precAnd }
func (n *andNode) write(b *strings.Builder, need int) {
	writeJoined(b, n, need, " and ", n.terms)
}

type orNode struct{ terms []node }

func (n *orNode) match(d *Device) bool {
	for _, t := range n.terms {
		if t.match(d) {
			return true
		}
	}
	return false
}
func (n *orNode) prec() int { return precOr }
func (n *orNode) write(b *strings.Builder, need int) {
	writeJoined(b, n, need, " or ", n.terms)
}

func writeJoined(b *strings.Builder, n node, need int, sep string, terms []node) {
	open(b, n, need)
	for i, t := range terms {
		if i > 0 {
			b.WriteString(sep)
		}
		// A term of the same kind cannot occur (flatten), so one level tighter is what a term needs.
		t.write(b, n.prec()+1)
	}
	closeParen(b, n, need)
}

func open(b *strings.Builder, n node, need int) {
	if n.prec() < need {
		b.WriteByte('(')
	}
}

func closeParen(b *strings.Builder, n node, need int) {
	if n.prec() < need {
		b.WriteByte(')')
	}
}

type notNode struct{ x node }

func (n *notNode) match(d *Device) bool { return !n.x.match(d) }
func (n *notNode) prec() int            { return precNot }
func (n *notNode) write(b *strings.Builder, need int) {
	open(b, n, need)
	b.WriteString("not ")
	n.x.write(b, precNot)
	closeParen(b, n, need)
}

type onlineNode struct{}

func (onlineNode) match(d *Device) bool            { return d.Online }
func (onlineNode) prec() int                       { return precPrimary }
func (onlineNode) write(b *strings.Builder, _ int) { b.WriteString("online") }

type hasNode struct{ key string }

func (n *hasNode) match(d *Device) bool {
	_, ok := d.Labels[n.key]
	return ok
}
func (n *hasNode) prec() int                       { return precPrimary }
func (n *hasNode) write(b *strings.Builder, _ int) { b.WriteString("has labels." + n.key) }

type cmpNode struct {
	field field
	op    string
	value string
}

// match: '=' and '^=' need the field present, '!=' is exactly 'not =' (so a device without
// the label matches labels.x != "v"), and the version orderings need a non-empty firmware
// version: a device that has not reported one is never older or newer than anything.
func (n *cmpNode) prec() int { return precPrimary }

func (n *cmpNode) write(b *strings.Builder, _ int) {
	fmt.Fprintf(b, "%s %s %s", n.field, n.op, quote(n.value))
}

func (n *cmpNode) match(d *Device) bool {
	v, ok := n.field.value(d)
	switch n.op {
	case "=":
		return ok && v == n.value
	case "!=":
		return !ok || v != n.value
	case "^=":
		return ok && strings.HasPrefix(v, n.value)
	}
	if v == "" {
		return false
	}
	c := CompareVersions(v, n.value)
	switch n.op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0 // ">="
}

type inNode struct {
	field  field
	negate bool
	values []string
	set    map[string]struct{}
}

// index builds the set Match looks values up in: lists may hold MaxEndpoints entries.
func (n *inNode) index() {
	n.set = make(map[string]struct{}, len(n.values))
	for _, v := range n.values {
		n.set[v] = struct{}{}
	}
}

// match: a device without the label is not in any list, so it matches 'not in'.
func (n *inNode) match(d *Device) bool {
	v, ok := n.field.value(d)
	if ok {
		_, ok = n.set[v]
	}
	return ok != n.negate
}

func (n *inNode) prec() int { return precPrimary }

func (n *inNode) write(b *strings.Builder, _ int) {
	b.WriteString(n.field.String())
	if n.negate {
		b.WriteString(" not in (")
	} else {
		b.WriteString(" in (")
	}
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(v))
	}
	b.WriteByte(')')
}

// quote writes s as a literal of the language: printable characters as they are, the rest as
// escapes that the lexer reads back.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
