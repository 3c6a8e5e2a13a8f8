package senml

import (
	"fmt"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwota/lwota/server/codec/cbormode"
	"github.com/lwota/lwota/server/lwm2m"
)

// The RFC 8428 §6 integer labels. LwM2M's objlnk label has no integer and travels
// as the text "vlo".
const (
	labelBaseVersion = -1
	labelBaseName    = -2
	labelBaseTime    = -3
	labelBaseValue   = -5
	labelName        = 0
	labelValue       = 2
	labelString      = 3
	labelBool        = 4
	labelTime        = 6
	labelData        = 8
	labelObjlnk      = "vlo"
)

// DecodeCBOR reads a SenML CBOR pack; see DecodeJSON for the rules.
func DecodeCBOR(base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	recs, err := parseCBOR(data)
	if err != nil {
		return nil, err
	}
	return resolve(base, recs, r, time.Now())
}

func parseCBOR(data []byte) ([]record, error) {
	dm, err := cbormode.Dec()
	if err != nil {
		return nil, fmt.Errorf("senml: %w", err)
	}
	var pack []map[any]cbor.RawMessage
	if err := dm.Unmarshal(data, &pack); err != nil {
		if cbormode.IsLimit(err) {
			return nil, fmt.Errorf("senml: %w: %v", ErrTooMany, err)
		}
		return nil, fmt.Errorf("senml: %w: %v", ErrSyntax, err)
	}
	recs := make([]record, 0, len(pack))
	for i, m := range pack {
		if m == nil {
			return nil, fmt.Errorf("senml: record %d: %w: not a map", i, ErrSyntax)
		}
		rec, err := cborRecord(dm, m)
		if err != nil {
			return nil, fmt.Errorf("senml: record %d: %w", i, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

func cborRecord(dm cbor.DecMode, m map[any]cbor.RawMessage) (record, error) {
	var rec record
	for k, raw := range m {
		var x any
		if err := dm.Unmarshal(raw, &x); err != nil {
			return rec, fmt.Errorf("label %v: %w: %v", k, ErrSyntax, err)
		}
		label, ok := labelOf(k)
		if !ok {
			if s, isText := k.(string); isText && strings.HasSuffix(s, "_") {
				return rec, fmt.Errorf("%q: %w", s, ErrMustUnderstand)
			}
			continue
		}
		var err error
		switch label {
		case labelBaseName:
			rec.bn, rec.hasBN, err = cborText(x)
		case labelName:
			rec.n, rec.hasN, err = cborText(x)
		case labelBaseTime:
			rec.bt, rec.hasBT, err = cborNumber(x)
		case labelTime:
			rec.t, rec.hasT, err = cborNumber(x)
		case labelBaseValue:
			rec.bv, rec.hasBV, err = cborNumber(x)
		case labelValue:
			rec.v, rec.hasV, err = cborNumber(x)
		case labelString:
			rec.vs, rec.hasVS, err = cborText(x)
		case labelBool:
			rec.vb, rec.hasVB = x.(bool)
			if !rec.hasVB {
				err = fmt.Errorf("%w: want a boolean, got %s", ErrSyntax, cbormode.Describe(x))
			}
		case labelData:
			rec.vd, rec.hasVD = x.([]byte)
			if !rec.hasVD {
				err = fmt.Errorf("%w: want a byte string, got %s", ErrSyntax, cbormode.Describe(x))
			}
		case labelObjlnkInt:
			rec.vlo, rec.hasVLO, err = cborText(x)
		}
		if err != nil {
			return rec, fmt.Errorf("label %v: %w", k, err)
		}
	}
	return rec, nil
}

// labelObjlnkInt stands for the "vlo" text label inside labelOf's integer space.
const labelObjlnkInt = 1 << 20

// labelOf maps a CBOR map key to the labels this decoder reads.
func labelOf(k any) (int64, bool) {
	switch k := k.(type) {
	case uint64:
		if k <= labelData {
			return int64(k), true
		}
	case int64:
		return k, k >= labelBaseValue
	case string:
		if k == labelObjlnk {
			return labelObjlnkInt, true
		}
	}
	return 0, false
}

func cborText(x any) (string, bool, error) {
	s, ok := x.(string)
	if !ok {
		return "", false, fmt.Errorf("%w: want a text string, got %s", ErrSyntax, cbormode.Describe(x))
	}
	return s, true, nil
}

func cborNumber(x any) (number, bool, error) {
	i, u, f, kind, ok := cbormode.Number(x)
	if !ok {
		return number{}, false, fmt.Errorf("%w: want a number, got %s", ErrSyntax, cbormode.Describe(x))
	}
	switch kind {
	case 'i':
		return number{kind: lwm2m.TypeInteger, i: i}, true, nil
	case 'u':
		return number{kind: lwm2m.TypeUnsignedInteger, u: u}, true, nil
	}
	return number{kind: lwm2m.TypeFloat, f: f}, true, nil
}

// EncodeCBOR writes recs (full paths under base) as a SenML CBOR pack.
func EncodeCBOR(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	srs, err := build(base, recs)
	if err != nil {
		return nil, err
	}
	em, err := cbormode.Enc()
	if err != nil {
		return nil, fmt.Errorf("senml: %w", err)
	}
	pack := make([]map[any]any, len(srs))
	for i, sr := range srs {
		m := make(map[any]any, 4)
		if sr.hasBN {
			m[labelBaseName] = sr.bn
		}
		if sr.hasN {
			m[labelName] = sr.n
		}
		if sr.hasT {
			m[labelTime] = cborNumberItem(sr.t)
		}
		switch {
		case sr.hasV:
			m[labelValue] = cborNumberItem(sr.v)
		case sr.hasVS:
			m[labelString] = sr.vs
		case sr.hasVB:
			m[labelBool] = sr.vb
		case sr.hasVD:
			m[labelData] = append([]byte{}, sr.vd...)
		case sr.hasVLO:
			m[labelObjlnk] = sr.vlo
		}
		pack[i] = m
	}
	out, err := em.Marshal(pack)
	if err != nil {
		return nil, fmt.Errorf("senml: %w", err)
	}
	return out, nil
}

func cborNumberItem(n number) any {
	switch n.kind {
	case lwm2m.TypeInteger:
		return n.i
	case lwm2m.TypeUnsignedInteger:
		return n.u
	}
	return n.f
}
