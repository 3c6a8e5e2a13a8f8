package api

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/credentials"
)

const credentialsImportPath = Prefix + "/credentials/import"

// maxReportedLines bounds the per-line problems a refused import lists; the message gives the total.
const maxReportedLines = 1000

// importAnswer is the body of a stored import.
type importAnswer struct {
	Imported int `json:"imported"`
	Created  int `json:"created"`
	Replaced int `json:"replaced"`
}

// importRefusal is the error body of a refused import: the usual error shape plus the lines.
type importRefusal struct {
	Error importRefusalDetail `json:"error"`
}

type importRefusalDetail struct {
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Lines   []importLineJSON `json:"lines"`
}

// importLineJSON is one bad line. Several credentials of a JSON body may start on one line; the
// endpoint tells them apart.
type importLineJSON struct {
	Line     int    `json:"line"`
	Endpoint string `json:"endpoint,omitempty"`
	Message  string `json:"message"`
}

// importCredentials: POST /credentials/import, a JSON {"credentials":[...]} or a CSV
// (endpoint,identity,key) body. Everything is checked first; one bad line refuses the whole file
// with 422 and the list of bad lines, and nothing is stored.
func (a *API) importCredentials(c echo.Context) error {
	store, err := a.credentialStore()
	if err != nil {
		return err
	}
	return a.importInto(c, store)
}

// importInto imports the body's credentials into store (device or bootstrap credentials).
func (a *API) importInto(c echo.Context, store Credentials) error {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	var parse func([]byte) ([]credentials.ImportEntry, []credentials.LineError, error)
	switch {
	case mt == "text/csv":
		parse = parseImportCSV
	case mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json"):
		parse = parseImportJSON
	default:
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
			Message: "an import is application/json or text/csv, not " + fmt.Sprintf("%q", c.Request().Header.Get(echo.HeaderContentType))}
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return mapError("request", err)
	}
	entries, parseProblems, err := parse(body)
	if err != nil {
		return err
	}
	if len(entries) == 0 && len(parseProblems) == 0 {
		return badRequest(codeInvalidRequest, "the import holds no credentials")
	}
	ctx := c.Request().Context()
	if len(parseProblems) > 0 {
		// Check what did parse too, so one answer lists every bad line.
		problems, err := store.Check(ctx, entries)
		if err != nil {
			return mapCredentialError("credentials import", err)
		}
		return refuseImport(c, len(entries)+len(parseProblems), append(parseProblems, problems...))
	}
	res, err := store.Import(ctx, entries)
	var ie *credentials.ImportError
	if errors.As(err, &ie) {
		return refuseImport(c, len(entries), ie.Lines)
	}
	if err != nil {
		return mapCredentialError("credentials import", err)
	}
	return c.JSON(http.StatusOK, importAnswer{Imported: res.Created + res.Replaced, Created: res.Created, Replaced: res.Replaced})
}

// refuseImport answers 422 with the bad lines, in file order.
func refuseImport(c echo.Context, total int, problems []credentials.LineError) error {
	slices.SortStableFunc(problems, func(a, b credentials.LineError) int { return a.Line - b.Line })
	msg := fmt.Sprintf("%d of %d credentials are invalid; nothing was stored", len(problems), total)
	if len(problems) > maxReportedLines {
		msg += fmt.Sprintf(" (the first %d are listed)", maxReportedLines)
		problems = problems[:maxReportedLines]
	}
	lines := make([]importLineJSON, len(problems))
	for i, p := range problems {
		lines[i] = importLineJSON{Line: p.Line, Endpoint: p.Endpoint, Message: p.Message}
	}
	c.Set(errorCodeKey, codeInvalidRequest) // for the audit entry
	return c.JSON(http.StatusUnprocessableEntity, importRefusal{Error: importRefusalDetail{Code: codeInvalidRequest, Message: msg, Lines: lines}})
}

// decodeKey reads a hex PSK; a problem is returned as a message for the line.
func decodeKey(s string) ([]byte, string) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, "key must be hex"
	}
	return key, ""
}

// csvHeader is the first line of an import CSV.
var csvHeader = []string{"endpoint", "identity", "key"}

// parseImportCSV reads "endpoint,identity,key" lines after that header. Lines are numbered as
// in the file (the header is line 1). A line that is not three fields is a problem of its line;
// a file that is not CSV at all, or lacks the header, is 400.
func parseImportCSV(body []byte) ([]credentials.ImportEntry, []credentials.LineError, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, badRequest(codeInvalidRequest, "CSV import: no header line %q", strings.Join(csvHeader, ","))
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(header[i]))
	}
	if !slices.Equal(header, csvHeader) {
		return nil, nil, badRequest(codeInvalidRequest, "CSV import: the header must be %q, not %q", strings.Join(csvHeader, ","), strings.Join(header, ","))
	}
	var (
		entries  []credentials.ImportEntry
		problems []credentials.LineError
	)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, nil, badRequest(codeInvalidRequest, "CSV import: line %d: %v", pe.Line, pe.Err)
		}
		if err != nil {
			return nil, nil, mapError("request", err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(csvHeader) {
			problems = append(problems, credentials.LineError{Line: line,
				Message: fmt.Sprintf("%d fields, want %d (%s)", len(rec), len(csvHeader), strings.Join(csvHeader, ","))})
			continue
		}
		e := credentials.ImportEntry{Line: line, Endpoint: strings.TrimSpace(rec[0]), Identity: strings.TrimSpace(rec[1])}
		var msg string
		if e.Key, msg = decodeKey(rec[2]); msg != "" {
			problems = append(problems, credentials.LineError{Line: line, Endpoint: e.Endpoint, Message: msg})
			continue
		}
		entries = append(entries, e)
	}
	return entries, problems, nil
}

// importJSONItem is one element of {"credentials": [...]}.
type importJSONItem struct {
	Endpoint string   `json:"endpoint"`
	PSK      *pskJSON `json:"psk"`
}

// parseImportJSON reads {"credentials": [{"endpoint", "psk": {"identity", "key"}}, ...]},
// numbering each credential with the line its object starts on. A body that is not that shape
// is 400; a missing psk or a key that is not hex is a problem of its line.
func parseImportJSON(body []byte) ([]credentials.ImportEntry, []credentials.LineError, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	shape := func(format string, args ...any) error {
		return badRequest(codeInvalidJSON, "request body: "+format, args...)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, shape(`want {"credentials": [...]}`)
	}
	var (
		entries  []credentials.ImportEntry
		problems []credentials.LineError
		seen     bool
	)
	// Lines are counted incrementally: offsets only grow.
	line, counted := 1, 0
	lineAt := func(off int) int {
		for off < len(body) && strings.IndexByte(" \t\r\n,", body[off]) >= 0 {
			off++
		}
		line += bytes.Count(body[counted:off], []byte("\n"))
		counted = off
		return line
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, shape("%s", trimPkg(err.Error()))
		}
		if tok != "credentials" || seen {
			return nil, nil, shape("unexpected field %v", tok)
		}
		seen = true
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, nil, shape("credentials must be an array")
		}
		for dec.More() {
			at := lineAt(int(dec.InputOffset()))
			var it importJSONItem
			if err := dec.Decode(&it); err != nil {
				return nil, nil, shape("credential at line %d: %s", at, trimPkg(err.Error()))
			}
			if it.PSK == nil {
				problems = append(problems, credentials.LineError{Line: at, Endpoint: it.Endpoint, Message: "psk is missing"})
				continue
			}
			e := credentials.ImportEntry{Line: at, Endpoint: it.Endpoint, Identity: it.PSK.Identity}
			var msg string
			if e.Key, msg = decodeKey(it.PSK.Key); msg != "" {
				problems = append(problems, credentials.LineError{Line: at, Endpoint: e.Endpoint, Message: msg})
				continue
			}
			entries = append(entries, e)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, nil, shape("%s", trimPkg(err.Error()))
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, nil, shape("%s", trimPkg(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, shape("data after the JSON value")
	}
	if !seen {
		return nil, nil, shape("credentials is missing")
	}
	return entries, problems, nil
}
