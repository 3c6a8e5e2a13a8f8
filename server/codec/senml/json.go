package senml

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lwota/lwota/server/codec/valueconv"
	"github.com/lwota/lwota/server/lwm2m"
)

// DecodeJSON reads a SenML JSON pack. Every record's path must lie under base (the
// root accepts all). Record times are absolute; RFC 8428 relative times count from now.
func DecodeJSON(base lwm2m.Path, data []byte, r Resolver) ([]lwm2m.Record, error) {
	recs, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	return resolve(base, recs, r, time.Now())
}

func parseJSON(data []byte) ([]record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("senml: %w: pack must be a JSON array", ErrSyntax)
	}
	var recs []record
	for dec.More() {
		if len(recs) == valueconv.MaxRecords {
			return nil, fmt.Errorf("senml: more than %d records: %w", valueconv.MaxRecords, ErrTooMany)
		}
		var m map[string]json.RawMessage
		if err := dec.Decode(&m); err != nil || m == nil {
			return nil, fmt.Errorf("senml: record %d: %w: not a JSON object", len(recs), ErrSyntax)
		}
		rec, err := jsonRecord(m)
		if err != nil {
			return nil, fmt.Errorf("senml: record %d: %w", len(recs), err)
		}
		recs = append(recs, rec)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("senml: %w: %v", ErrSyntax, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("senml: %w: data after the pack", ErrSyntax)
	}
	return recs, nil
}

func jsonRecord(m map[string]json.RawMessage) (record, error) {
	var rec record
	var err error
	for k, raw := range m {
		switch k {
		case "bn":
			rec.bn, err = jsonString(raw)
			rec.hasBN = true
		case "n":
			rec.n, err = jsonString(raw)
			rec.hasN = true
		case "bt":
			rec.bt, err = jsonNumber(raw)
			rec.hasBT = true
		case "t":
			rec.t, err = jsonNumber(raw)
			rec.hasT = true
		case "bv":
			rec.bv, err = jsonNumber(raw)
			rec.hasBV = true
		case "v":
			rec.v, err = jsonNumber(raw)
			rec.hasV = true
		case "vs":
			rec.vs, err = jsonString(raw)
			rec.hasVS = true
		case "vb":
			if err = strictUnmarshal(raw, &rec.vb); err != nil {
				err = fmt.Errorf("vb: %w: want a boolean", ErrSyntax)
			}
			rec.hasVB = true
		case "vd":
			var s string
			if s, err = jsonString(raw); err == nil {
				rec.vd, err = decodeBase64(s)
			}
			rec.hasVD = true
		case "vlo":
			rec.vlo, err = jsonString(raw)
			rec.hasVLO = true
		default:
			if strings.HasSuffix(k, "_") {
				err = fmt.Errorf("%q: %w", k, ErrMustUnderstand)
			}
		}
		if err != nil {
			return rec, fmt.Errorf("%s: %w", k, err)
		}
	}
	return rec, nil
}

// strictUnmarshal refuses null, which encoding/json would silently skip.
func strictUnmarshal(raw json.RawMessage, v any) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return ErrSyntax
	}
	return json.Unmarshal(raw, v)
}

func jsonString(raw json.RawMessage) (string, error) {
	var s string
	if err := strictUnmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: want a string", ErrSyntax)
	}
	return s, nil
}

// jsonNumber keeps integers exact: a literal without '.' or exponent is an integer
// (unsigned when it passes int64), anything else a float.
func jsonNumber(raw json.RawMessage) (number, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return number{}, fmt.Errorf("%w: want a number", ErrSyntax)
	}
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return number{kind: lwm2m.TypeInteger, i: i}, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return number{kind: lwm2m.TypeUnsignedInteger, u: u}, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return number{}, fmt.Errorf("%w: bad or out-of-range number", ErrSyntax)
	}
	return number{kind: lwm2m.TypeFloat, f: f}, nil
}

// decodeBase64 takes RFC 8428's base64url without padding, and the padded and
// standard alphabets some clients send instead.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: vd is not base64", ErrSyntax)
}

// EncodeJSON writes recs (full paths under base) as a SenML JSON pack.
func EncodeJSON(base lwm2m.Path, recs []lwm2m.Record) ([]byte, error) {
	srs, err := build(base, recs)
	if err != nil {
		return nil, err
	}
	b := []byte{'['}
	for i, sr := range srs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSONRecord(b, sr); err != nil {
			return nil, fmt.Errorf("senml: %s: %w", recs[i].Path, err)
		}
	}
	return append(b, ']'), nil
}

func appendJSONRecord(b []byte, sr record) ([]byte, error) {
	b = append(b, '{')
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
	}
	var err error
	if sr.hasBN {
		key("bn")
		b = appendJSONString(b, sr.bn)
	}
	if sr.hasN {
		key("n")
		b = appendJSONString(b, sr.n)
	}
	if sr.hasT {
		key("t")
		if b, err = appendJSONNumber(b, sr.t); err != nil {
			return nil, err
		}
	}
	switch {
	case sr.hasV:
		key("v")
		if b, err = appendJSONNumber(b, sr.v); err != nil {
			return nil, err
		}
	case sr.hasVS:
		key("vs")
		b = appendJSONString(b, sr.vs)
	case sr.hasVB:
		key("vb")
		b = strconv.AppendBool(b, sr.vb)
	case sr.hasVD:
		key("vd")
		b = appendJSONString(b, base64.RawURLEncoding.EncodeToString(sr.vd))
	case sr.hasVLO:
		key("vlo")
		b = appendJSONString(b, sr.vlo)
	}
	return append(b, '}'), nil
}

func appendJSONString(b []byte, s string) []byte {
	// Marshalling a string cannot fail; invalid UTF-8 becomes U+FFFD.
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// appendJSONNumber marks floats with ".0" when needed so the decoder reads them back
// as floats, not integers.
func appendJSONNumber(b []byte, n number) ([]byte, error) {
	switch n.kind {
	case lwm2m.TypeInteger:
		return strconv.AppendInt(b, n.i, 10), nil
	case lwm2m.TypeUnsignedInteger:
		return strconv.AppendUint(b, n.u, 10), nil
	}
	if math.IsNaN(n.f) || math.IsInf(n.f, 0) {
		return nil, fmt.Errorf("%v in JSON: %w", n.f, ErrNotRepresentable)
	}
	start := len(b)
	b = strconv.AppendFloat(b, n.f, 'g', -1, 64)
	if !bytes.ContainsAny(b[start:], ".e") {
		b = append(b, '.', '0')
	}
	return b, nil
}
