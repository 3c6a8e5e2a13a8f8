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
}

// Narrow returns the constraints of the selector's top-level conjunction: `endpoint ^= p` and
// `endpoint = e` give a prefix (the longest one), `manufacturer|model|device_type = v` an exact
// value, `labels.k = v` a label. Anything under or, not, in, a comparison or a version order
// is left to Match.
func (s *Selector) Narrow() Narrowing {
	var out Narrowing
	terms := []node{s.root}
	if and, ok := s.root.(*andNode); ok {
		terms = and.terms
	}
	for _, t := range terms {
		c, ok := t.(*cmpNode)
		if !ok || (c.op != "=" && c.op != "^=") || c.value == "" {
			continue
		}
		switch c.field.kind {
		case fEndpoint:
			if len(c.value) > len(out.EndpointPrefix) && strings.HasPrefix(c.value, out.EndpointPrefix) {
				out.EndpointPrefix = c.value
			}
		case fManufacturer:
			if c.op == "=" {
				out.Manufacturer = c.value
			}
		case fModel:
			if c.op == "=" {
				out.Model = c.value
			}
		case fDeviceType:
			if c.op == "=" {
				out.DeviceType = c.value
			}
		case fLabel:
			if c.op == "=" {
				if out.Labels == nil {
					out.Labels = map[string]string{}
				}
				out.Labels[c.field.label] = c.value
			}
		}
	}
	return out
}
