package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/lwm2m"
)

// recordJSON is a record as responses and events show it. Value is per type: a string for string and
// corelnk, a number for integer, unsigned and float ("NaN", "Infinity", "-Infinity" as strings), a bool,
// base64 (standard alphabet, padded) for opaque, "3:0" for objlnk, Unix seconds for time, null for none.
type recordJSON struct {
	Path  string    `json:"path"`
	Type  string    `json:"type"`
	Value any       `json:"value"`
	Time  time.Time `json:"time,omitzero"` // the record's timestamp when the format carried one (SenML)
}

func recordsJSON(rs []lwm2m.Record) []recordJSON {
	out := make([]recordJSON, len(rs))
	for i, r := range rs {
		out[i] = recordJSON{Path: r.Path.String(), Type: r.Value.Type.String(), Value: valueJSON(r.Value), Time: r.Time}
	}
	return out
}

func valueJSON(v lwm2m.Value) any {
	switch v.Type {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		return v.Str
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		return v.Int
	case lwm2m.TypeUnsignedInteger:
		return v.Uint
	case lwm2m.TypeFloat:
		switch {
		case math.IsNaN(v.Float):
			return "NaN"
		case math.IsInf(v.Float, 1):
			return "Infinity"
		case math.IsInf(v.Float, -1):
			return "-Infinity"
		}
		return v.Float
	case lwm2m.TypeBoolean:
		return v.Bool
	case lwm2m.TypeOpaque:
		return base64.StdEncoding.EncodeToString(v.Bytes)
	case lwm2m.TypeObjlnk:
		return v.Link.String()
	}
	return nil
}

// writeBody is the body of write, partial update and create: records, or one value for the target path.
type writeBody struct {
	Records []recordIn      `json:"records"`
	Value   json.RawMessage `json:"value"`
	Type    string          `json:"type"`
}

type recordIn struct {
	Path  string          `json:"path"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// decodeWrite turns a write body into typed records under target. A record's type is its "type" field
// when given, else the object model's (types), else guessed from the JSON: string, boolean, integer when
// the number has no fraction or exponent, float otherwise. Every record must address a resource or resource
// instance at or below target. Errors are *apiError (400 invalid_json, invalid_path or invalid_value).
func decodeWrite(body []byte, target lwm2m.Path, types Resolver) ([]lwm2m.Record, error) {
	var wb writeBody
	if err := decodeStrict(body, &wb); err != nil {
		return nil, err
	}
	switch {
	case wb.Records != nil && wb.Value != nil:
		return nil, badRequest(codeInvalidJSON, `give either "records" or "value", not both`)
	case wb.Records != nil && wb.Type != "":
		return nil, badRequest(codeInvalidJSON, `"type" at the top level goes with "value"; give each record its own`)
	case wb.Value != nil:
		if target.Len() < 3 {
			return nil, badRequest(codeInvalidPath, `a single "value" needs a resource path, not %s; send "records"`, target)
		}
		v, err := decodeValue(wb.Value, wb.Type, target, types)
		if err != nil {
			return nil, err
		}
		return []lwm2m.Record{{Path: target, Value: v}}, nil
	case len(wb.Records) == 0:
		return nil, badRequest(codeInvalidJSON, `body needs "records" (a non-empty list) or "value"`)
	}
	out := make([]lwm2m.Record, 0, len(wb.Records))
	for i, r := range wb.Records {
		p, err := lwm2m.ParsePath(r.Path)
		if err != nil {
			return nil, badRequest(codeInvalidPath, "records[%d]: %q is not an LwM2M path", i, r.Path)
		}
		if p.Len() < 3 || !p.HasPrefix(target) {
			return nil, badRequest(codeInvalidPath, "records[%d]: %s is not a resource under %s", i, p, target)
		}
		v, err := decodeValue(r.Value, r.Type, p, types)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				ae.Message = "records[" + strconv.Itoa(i) + "]: " + ae.Message
			}
			return nil, err
		}
		out = append(out, lwm2m.Record{Path: p, Value: v})
	}
	return out, nil
}

// decodeValue types one JSON value for the resource at p.
func decodeValue(raw json.RawMessage, typeName string, p lwm2m.Path, types Resolver) (lwm2m.Value, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return lwm2m.Value{}, badRequest(codeInvalidValue, "%s: value is missing", p)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return lwm2m.Value{}, badRequest(codeInvalidJSON, "%s: %s", p, trimPkg(err.Error()))
	}
	var t lwm2m.Type
	switch {
	case typeName != "":
		var err error
		if t, err = lwm2m.ParseType(typeName); err != nil {
			return lwm2m.Value{}, badRequest(codeInvalidValue, "%s: unknown type %q", p, typeName)
		}
		if t == lwm2m.TypeNone {
			return lwm2m.Value{}, badRequest(codeInvalidValue, "%s: type %q cannot be written", p, typeName)
		}
	default:
		var known bool
		if types != nil {
			t, known = types.ResourceType(p.ObjectID(), p.ResourceID())
		}
		if known && t == lwm2m.TypeNone {
			return lwm2m.Value{}, badRequest(codeInvalidValue, "%s is executable, it has no value", p)
		}
		if !known {
			t = guessType(x)
		}
	}
	v, ok := valueOf(x, t)
	if !ok {
		return lwm2m.Value{}, badRequest(codeInvalidValue, "%s: %s does not fit type %s%s", p, describe(raw), t, typeHint(t))
	}
	return v, nil
}

func guessType(x any) lwm2m.Type {
	switch x := x.(type) {
	case string:
		return lwm2m.TypeString
	case bool:
		return lwm2m.TypeBoolean
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return lwm2m.TypeFloat
		}
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return lwm2m.TypeInteger
		}
		if _, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return lwm2m.TypeUnsignedInteger
		}
		return lwm2m.TypeFloat
	}
	return lwm2m.TypeNone // objects and arrays: valueOf refuses them
}

// valueOf converts a decoded JSON value (numbers as json.Number) to a Value of type t.
func valueOf(x any, t lwm2m.Type) (lwm2m.Value, bool) {
	s, isStr := x.(string)
	n, isNum := x.(json.Number)
	switch t {
	case lwm2m.TypeString:
		return lwm2m.String(s), isStr
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk(s), isStr
	case lwm2m.TypeInteger:
		i, err := strconv.ParseInt(string(n), 10, 64)
		return lwm2m.Integer(i), isNum && err == nil
	case lwm2m.TypeUnsignedInteger:
		u, err := strconv.ParseUint(string(n), 10, 64)
		return lwm2m.Unsigned(u), isNum && err == nil
	case lwm2m.TypeFloat:
		if isStr {
			switch s {
			case "NaN":
				return lwm2m.Float(math.NaN()), true
			case "Infinity":
				return lwm2m.Float(math.Inf(1)), true
			case "-Infinity":
				return lwm2m.Float(math.Inf(-1)), true
			}
			return lwm2m.Value{}, false
		}
		f, err := strconv.ParseFloat(string(n), 64)
		return lwm2m.Float(f), isNum && err == nil
	case lwm2m.TypeBoolean:
		b, ok := x.(bool)
		return lwm2m.Boolean(b), ok
	case lwm2m.TypeOpaque:
		if !isStr {
			return lwm2m.Value{}, false
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(s)
		}
		return lwm2m.Opaque(b), err == nil
	case lwm2m.TypeTime:
		if isNum {
			i, err := strconv.ParseInt(string(n), 10, 64)
			return lwm2m.Value{Type: lwm2m.TypeTime, Int: i}, err == nil
		}
		tm, err := time.Parse(time.RFC3339, s)
		return lwm2m.Time(tm), isStr && err == nil
	case lwm2m.TypeObjlnk:
		o, i, ok := strings.Cut(s, ":")
		obj, err1 := strconv.ParseUint(o, 10, 16)
		inst, err2 := strconv.ParseUint(i, 10, 16)
		return lwm2m.Objlnk(uint16(obj), uint16(inst)), isStr && ok && err1 == nil && err2 == nil
	}
	return lwm2m.Value{}, false
}

func typeHint(t lwm2m.Type) string {
	switch t {
	case lwm2m.TypeOpaque:
		return " (want a base64 string)"
	case lwm2m.TypeTime:
		return ` (want Unix seconds or an RFC 3339 string)`
	case lwm2m.TypeObjlnk:
		return ` (want "object:instance", like "3:0")`
	case lwm2m.TypeFloat:
		return ` (want a number, "NaN", "Infinity" or "-Infinity")`
	case lwm2m.TypeNone:
		return " (objects and arrays are not values)"
	}
	return ""
}

// describe quotes a JSON value for an error message, shortened.
func describe(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return strconv.Quote(s)
}

// attributesBody is the body of write-attributes.
type attributesBody struct {
	Pmin  *uint32  `json:"pmin"`
	Pmax  *uint32  `json:"pmax"`
	Gt    *float64 `json:"gt"`
	Lt    *float64 `json:"lt"`
	St    *float64 `json:"st"`
	Epmin *uint32  `json:"epmin"`
	Epmax *uint32  `json:"epmax"`
	Clear []string `json:"clear"`
}

var attributeNames = map[string]bool{"pmin": true, "pmax": true, "gt": true, "lt": true, "st": true, "epmin": true, "epmax": true}

// executeBody is the optional body of execute.
type executeBody struct {
	Args string `json:"args"`
}

// readBody reads the request body (bounded by limitBody) after checking that it claims to be JSON.
// An absent Content-Type is taken as JSON, so `curl -d` with -H is not required for tools that omit it.
func readBody(c echo.Context) ([]byte, error) {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != echo.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
				Message: "request body must be application/json, not " + strconv.Quote(ct)}
		}
	}
	if c.Request().Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return nil, mapError("request", err)
	}
	return b, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest(codeInvalidJSON, "request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(codeInvalidJSON, "request body: %s", trimPkg(err.Error()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest(codeInvalidJSON, "request body: data after the JSON value")
	}
	return nil
}
