package senml

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// relativeTimeLimit is RFC 8428 §4.5.3's 2**28: smaller times count from now.
const relativeTimeLimit = 1 << 28

// maxSeconds keeps times within what time.Time and our clients can mean.
const maxSeconds = 3000 * 365 * 24 * 3600

// resolve applies base fields and turns SenML records into LwM2M records under base.
func resolve(base lwm2m.Path, recs []record, r Resolver, now time.Time) ([]lwm2m.Record, error) {
	out := make([]lwm2m.Record, 0, len(recs))
	var bn string
	var bt, bv number
	var hasBT, hasBV bool
	for i, rec := range recs {
		if rec.hasBN {
			bn = rec.bn
		}
		if rec.hasBT {
			bt, hasBT = rec.bt, true
		}
		if rec.hasBV {
			bv, hasBV = rec.bv, true
		}
		name := bn + rec.n
		p, err := parseName(name)
		if err != nil {
			return nil, fmt.Errorf("senml: record %d: %w", i, err)
		}
		if !p.HasPrefix(base) {
			return nil, fmt.Errorf("senml: record %d: %s under %s: %w", i, p, base, ErrNotUnderBase)
		}
		v, err := wireValue(rec, bv, hasBV)
		if err != nil {
			return nil, fmt.Errorf("senml: %s: %w", p, err)
		}
		if v.Type != lwm2m.TypeNone {
			if p.Len() < 3 {
				return nil, fmt.Errorf("senml: %s: %w", p, ErrNotResource)
			}
			if want, ok := valueconv.ModelType(r, p); ok {
				c, ok := valueconv.Coerce(v, want)
				if !ok {
					return nil, fmt.Errorf("senml: %s: %s for %s resource: %w", p, v.Type, want, ErrWrongKind)
				}
				v = c
			}
		}
		out = append(out, lwm2m.Record{Path: p, Value: v})
		if rec.hasT || hasBT {
			ts, err := recordTime(bt, rec.t, now)
			if err != nil {
				return nil, fmt.Errorf("senml: %s: %w", p, err)
			}
			out[len(out)-1].Time = ts
		}
	}
	return out, nil
}

// parseName insists on an absolute path: LwM2M names always start at the root.
func parseName(name string) (lwm2m.Path, error) {
	if !strings.HasPrefix(name, "/") || strings.Contains(name, "//") {
		return lwm2m.Path{}, fmt.Errorf("%q: %w", clip(name), ErrBadName)
	}
	p, err := lwm2m.ParsePath(name)
	if err != nil {
		return lwm2m.Path{}, fmt.Errorf("%q: %w: %w", clip(name), ErrBadName, err)
	}
	return p, nil
}

func wireValue(rec record, bv number, hasBV bool) (lwm2m.Value, error) {
	count := 0
	for _, has := range []bool{rec.hasV, rec.hasVS, rec.hasVB, rec.hasVD, rec.hasVLO} {
		if has {
			count++
		}
	}
	if count > 1 {
		return lwm2m.Value{}, ErrMultipleValues
	}
	switch {
	case rec.hasV:
		if hasBV {
			return add(bv, rec.v).value(), nil
		}
		return rec.v.value(), nil
	case rec.hasVS:
		return lwm2m.String(rec.vs), nil
	case rec.hasVB:
		return lwm2m.Boolean(rec.vb), nil
	case rec.hasVD:
		return lwm2m.Opaque(rec.vd), nil
	case rec.hasVLO:
		l, ok := valueconv.ParseObjlnk(rec.vlo)
		if !ok {
			return lwm2m.Value{}, fmt.Errorf("vlo %q: %w", clip(rec.vlo), ErrWrongKind)
		}
		return lwm2m.Value{Type: lwm2m.TypeObjlnk, Link: l}, nil
	}
	return lwm2m.Value{}, nil
}

// add sums a base value and a value, staying integral when both are.
func add(a, b number) number {
	if a.kind == lwm2m.TypeInteger && b.kind == lwm2m.TypeInteger {
		if s := a.i + b.i; (s > a.i) == (b.i > 0) {
			return number{kind: lwm2m.TypeInteger, i: s}
		}
	}
	return number{kind: lwm2m.TypeFloat, f: a.float() + b.float()}
}

func recordTime(bt, t number, now time.Time) (time.Time, error) {
	s := bt.float() + t.float()
	if math.IsNaN(s) || math.Abs(s) > maxSeconds {
		return time.Time{}, fmt.Errorf("%v: %w", s, ErrBadTime)
	}
	if bt.kind == lwm2m.TypeInteger && t.kind == lwm2m.TypeInteger && bt.kind == t.kind {
		// Integral times keep full precision beyond float64's 53 bits.
		if sum := add(bt, t); sum.kind == lwm2m.TypeInteger && sum.i >= relativeTimeLimit {
			return time.Unix(sum.i, 0), nil
		}
	}
	sec, frac := math.Modf(s)
	ts := time.Unix(int64(sec), int64(math.Round(frac*1e9)))
	if s < relativeTimeLimit {
		return now.Add(ts.Sub(time.Unix(0, 0))), nil
	}
	return ts, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
