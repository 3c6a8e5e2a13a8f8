package api

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/lwota/lwota/server/registration"
)

// The device list's search: version comparisons on the firmware filter and a sort order.

// maxFirmwareFilterLen bounds the firmware filter; versions are at most 64 bytes.
const maxFirmwareFilterLen = 128

// firmwareOps are the comparisons of the firmware filter, longest first so that "<=" is not
// read as "<" and "=...".
var firmwareOps = []string{"<=", ">=", "!=", "==", "<", ">", "="}

// parseFirmwareFilter reads the firmware filter of the device list: a version alone (exact
// match, as before), or a comparison and a version, optionally after the word "firmware":
// "1.4.2", "= 1.4.2", "< 1.4.2", "firmware >= 1.10", "!=1.0-beta". Ordering comparisons need a
// version registration.VersionKey understands; "=" and "!=" compare the exact text.
func parseFirmwareFilter(s string) (op, version string, err error) {
	if len(s) > maxFirmwareFilterLen {
		return "", "", badRequest(codeInvalidQuery, "firmware filter is %d bytes long (at most %d)", len(s), maxFirmwareFilterLen)
	}
	rest := strings.TrimSpace(s)
	const word = "firmware"
	if len(rest) >= len(word) && strings.EqualFold(rest[:len(word)], word) {
		if r := rest[len(word):]; r == "" || r[0] == ' ' || startsWithOp(r) {
			rest = strings.TrimSpace(r)
		}
	}
	for _, o := range firmwareOps {
		if r, found := strings.CutPrefix(rest, o); found {
			op, rest = o, strings.TrimSpace(r)
			break
		}
	}
	if op == "==" {
		op = "="
	}
	switch {
	case rest == "":
		return "", "", badRequest(codeInvalidQuery, "firmware filter %q has no version: write e.g. 1.4.2, < 1.4.2 or >= 1.10", s)
	case strings.ContainsAny(rest, " \t\r\n"):
		return "", "", badRequest(codeInvalidQuery, "firmware filter %q: a version has no white space (write one comparison: < 1.4.2)", s)
	case startsWithOp(rest):
		return "", "", badRequest(codeInvalidQuery, "firmware filter %q has two comparisons", s)
	}
	switch op {
	case "<", "<=", ">", ">=":
		if _, ok := registration.VersionKey(rest); !ok {
			return "", "", badRequest(codeInvalidQuery,
				"firmware %s %q: only dotted-number versions (1.4.2, v2.0, 1.5.0-rc.1) order; use = or != for other text", op, rest)
		}
	}
	return op, rest, nil
}

func startsWithOp(s string) bool {
	return strings.HasPrefix(s, "<") || strings.HasPrefix(s, ">") || strings.HasPrefix(s, "=") || strings.HasPrefix(s, "!")
}

// parseSort reads the sort parameter: a registration.SortKey, "-" first for descending.
func parseSort(s string) (registration.SortKey, bool, error) {
	if s == "" {
		return "", false, nil
	}
	name, desc := strings.CutPrefix(s, "-")
	for _, k := range registration.SortKeys {
		if string(k) == name {
			return k, desc, nil
		}
	}
	names := make([]string, len(registration.SortKeys))
	for i, k := range registration.SortKeys {
		names[i] = string(k)
	}
	return "", false, badRequest(codeInvalidQuery, "sort must be one of %s (with - first for descending), not %q", strings.Join(names, ", "), s)
}

// sortCursor is the cursor of a sorted device list: the last row's sort value and endpoint.
func sortCursor(r *registration.Registration, k registration.SortKey) string {
	b, _ := json.Marshal([2]string{registration.SortValue(r, k), r.Endpoint}) // two strings always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseSortCursor reads a sortCursor; page.after holds its base64-decoded bytes already.
func parseSortCursor(after string) (value, endpoint string, err error) {
	var v [2]string
	if err := json.Unmarshal([]byte(after), &v); err != nil || v[1] == "" {
		return "", "", badRequest(codeInvalidQuery, "cursor is not one this server gave out for this sort")
	}
	return v[0], v[1], nil
}
