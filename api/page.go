package api

import (
	"encoding/base64"
	"net/url"
	"strconv"
)

// page is a list request's cursor and size. Cursors are opaque to clients: the last key of the
// previous page, base64url-encoded.
type page struct {
	after string
	limit int
}

// parsePage reads ?cursor= and ?limit= (lowered to MaxPageSize).
func (a *API) parsePage(q url.Values) (page, error) {
	p := page{limit: a.cfg.DefaultPageSize}
	if s := q.Get("cursor"); s != "" {
		after, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(after) == 0 {
			return p, badRequest(codeInvalidQuery, "cursor %q is not one this server gave out", s)
		}
		p.after = string(after)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return p, badRequest(codeInvalidQuery, "limit must be a positive integer, not %q", s)
		}
		p.limit = min(n, a.cfg.MaxPageSize)
	}
	return p, nil
}

// fetch is the limit to ask the store for: one more tells whether there is a next page.
func (p page) fetch() int { return p.limit + 1 }

// cursor encodes the key a next page starts after.
func cursor(lastKey string) string { return base64.RawURLEncoding.EncodeToString([]byte(lastKey)) }
