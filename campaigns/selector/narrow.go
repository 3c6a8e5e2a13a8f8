package selector

import "strings"

// Narrowing is what every device a selector matches must have, in terms a device store can
// filter on before the selector runs: a campaign start at a quarter-million devices should not
// read them all to pick ten. It only narrows: the selector still decides each device, so a field
// left empty here means "no constraint", never "must be empty".
type Narrowing struct {
	EndpointPrefix                  string
	Manufacturer, Model, DeviceType string
	Labels                          map[string]string // label key -> exact value
	// Exact: the selector is exactly these constraints (a conjunction of endpoint prefixes,
	// equalities of manufacturer, model, device type and labels), so a device meeting them is
	// selected and a store may select the devices itself instead of the selector deciding each.
	Exact bool
}

// Narrow returns the constraints of the selector's top-level conjunction: `endpoint ^= p` and
// `endpoint = e` give a prefix (the longest one), `manufacturer|model|device_type = v` an exact
// value, `labels.k = v` a label. Anything under or, not, in, a comparison or a version order
// is left to Match, and makes the narrowing inexact; so do `endpoint = e` (a prefix is less),
// an empty value, and two terms the narrowing cannot hold both of (`model = "a" and model = "b"`,
// prefixes neither of which extends the other).
func (s *Selector) Narrow() Narrowing {
	out := Narrowing{Exact: true}
	terms := []node{s.root}
	if and, ok := s.root.(*andNode); ok {
		terms = and.terms
	}
	var prefixes []string
	// equal sets *dst to v, and notes an inexact narrowing when *dst held another value.
	equal := func(dst *string, v string) {
		if *dst != "" && *dst != v {
			out.Exact = false
		}
		*dst = v
	}
	for _, t := range terms {
		c, ok := t.(*cmpNode)
		if !ok || (c.op != "=" && c.op != "^=") || c.value == "" {
			out.Exact = false
			continue
		}
		if c.op == "^=" && c.field.kind != fEndpoint || c.op == "=" && c.field.kind == fEndpoint || c.field.kind == fFirmware {
			out.Exact = false
		}
		switch c.field.kind {
		case fEndpoint:
			prefixes = append(prefixes, c.value)
			if len(c.value) > len(out.EndpointPrefix) && strings.HasPrefix(c.value, out.EndpointPrefix) {
				out.EndpointPrefix = c.value
			}
		case fManufacturer:
			if c.op == "=" {
				equal(&out.Manufacturer, c.value)
			}
		case fModel:
			if c.op == "=" {
				equal(&out.Model, c.value)
			}
		case fDeviceType:
			if c.op == "=" {
				equal(&out.DeviceType, c.value)
			}
		case fLabel:
			if c.op == "=" {
				if out.Labels == nil {
					out.Labels = map[string]string{}
				}
				if v, ok := out.Labels[c.field.label]; ok && v != c.value {
					out.Exact = false
				}
				out.Labels[c.field.label] = c.value
			}
		}
	}
	for _, p := range prefixes {
		if !strings.HasPrefix(out.EndpointPrefix, p) {
			out.Exact = false // two prefixes apart: the narrowing holds only one of them
		}
	}
	return out
}
