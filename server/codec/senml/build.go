package senml

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/lwota/lwota/server/lwm2m"
)

// build turns records into SenML records: the first carries bn (the base path, with a
// trailing '/' when names follow), the rest only n relative to it. Under the root
// there is no bn and every n is absolute.
func build(base lwm2m.Path, recs []lwm2m.Record) ([]record, error) {
	out := make([]record, 0, len(recs))
	single := len(recs) == 1 && recs[0].Path == base
	prefix := base.String()
	for i, rec := range recs {
		if !rec.Path.HasPrefix(base) {
			return nil, fmt.Errorf("senml: %s under %s: %w", rec.Path, base, ErrNotUnderBase)
		}
		var sr record
		if base.Len() == 0 {
			sr.n, sr.hasN = rec.Path.String(), true
		} else {
			if i == 0 {
				sr.bn, sr.hasBN = prefix, true
				if !single {
					sr.bn += "/"
				}
			}
			if n := strings.TrimPrefix(strings.TrimPrefix(rec.Path.String(), prefix), "/"); n != "" {
				sr.n, sr.hasN = n, true
			}
		}
		if err := setValue(&sr, rec.Value); err != nil {
			return nil, fmt.Errorf("senml: %s: %w", rec.Path, err)
		}
		if !rec.Time.IsZero() {
			sr.hasT = true
			if ns := rec.Time.Nanosecond(); ns == 0 {
				sr.t = number{kind: lwm2m.TypeInteger, i: rec.Time.Unix()}
			} else {
				sr.t = number{kind: lwm2m.TypeFloat, f: float64(rec.Time.Unix()) + float64(ns)/1e9}
			}
		}
		out = append(out, sr)
	}
	return out, nil
}

func setValue(sr *record, v lwm2m.Value) error {
	switch v.Type {
	case lwm2m.TypeNone:
		// A name without a value: Read-Composite and Observe-Composite requests.
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		sr.v, sr.hasV = number{kind: lwm2m.TypeInteger, i: v.Int}, true
	case lwm2m.TypeUnsignedInteger:
		if v.Uint <= 1<<63-1 {
			sr.v = number{kind: lwm2m.TypeInteger, i: int64(v.Uint)}
		} else {
			sr.v = number{kind: lwm2m.TypeUnsignedInteger, u: v.Uint}
		}
		sr.hasV = true
	case lwm2m.TypeFloat:
		sr.v, sr.hasV = number{kind: lwm2m.TypeFloat, f: v.Float}, true
	case lwm2m.TypeBoolean:
		sr.vb, sr.hasVB = v.Bool, true
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		if !utf8.ValidString(v.Str) {
			return fmt.Errorf("string is not UTF-8: %w", ErrNotRepresentable)
		}
		sr.vs, sr.hasVS = v.Str, true
	case lwm2m.TypeOpaque:
		sr.vd, sr.hasVD = v.Bytes, true
	case lwm2m.TypeObjlnk:
		sr.vlo, sr.hasVLO = v.Link.String(), true
	default:
		return fmt.Errorf("%s: %w", v.Type, ErrNotRepresentable)
	}
	return nil
}
