package credentials

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// ImportEntry is one PSK credential of a bulk import (factory provisioning), with the line of
// the file it was read from so that problems can be reported by line. (Several entries of a
// JSON file may share a line; LineError.Index tells them apart.)
type ImportEntry struct {
	Line     int
	Endpoint string
	Identity string
	Key      []byte
}

// LineError is what is wrong with one line of an import.
type LineError struct {
	Line     int // ImportEntry.Line
	Index    int // position of the entry in the entries checked, from 0
	Endpoint string
	Message  string
}

// ImportError refuses an import as a whole: nothing was stored. Lines lists every problem found,
// in line order. It matches ErrInvalid.
type ImportError struct {
	Lines []LineError
}

func (e *ImportError) Error() string {
	if len(e.Lines) == 0 {
		return "credentials: import refused"
	}
	first := e.Lines[0]
	return fmt.Sprintf("credentials: import refused, %d bad line(s); line %d: %s", len(e.Lines), first.Line, first.Message)
}

// Is makes an ImportError match ErrInvalid.
func (e *ImportError) Is(target error) bool { return target == ErrInvalid }

// ImportResult counts a stored import.
type ImportResult struct {
	// Created is the number of endpoints that had no credential before, Replaced the number
	// whose credential the import replaced (a rotation).
	Created, Replaced int
}

// refChunk bounds the names of one CredentialRefs call, so that a store can put them in one
// query (SQLite and PostgreSQL bound the parameters of a statement).
const refChunk = 500

// Check validates entries without storing anything: the limits Put applies, an endpoint or an
// identity given twice in the import, and an identity a stored credential of an endpoint outside
// the import holds. It returns the problems in line order (none: the import would be stored).
func (m *Manager) Check(ctx context.Context, entries []ImportEntry) ([]LineError, error) {
	problems, _, err := m.check(ctx, entries)
	return problems, err
}

// check is Check, also returning the stored credentials of the import's endpoints.
func (m *Manager) check(ctx context.Context, entries []ImportEntry) ([]LineError, map[string]Ref, error) {
	var problems []LineError
	bad := func(i int, format string, args ...any) {
		e := entries[i]
		problems = append(problems, LineError{Line: e.Line, Index: i, Endpoint: e.Endpoint, Message: fmt.Sprintf(format, args...)})
	}
	// The first entry of each endpoint and identity, by index.
	epFirst := make(map[string]int, len(entries))
	idFirst := make(map[string]int, len(entries))
	for i, e := range entries {
		if err := validate(e.Endpoint, e.Identity, e.Key); err != nil {
			bad(i, "%s", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
			continue
		}
		if j, dup := epFirst[e.Endpoint]; dup {
			bad(i, "endpoint %q is also on line %d", e.Endpoint, entries[j].Line)
		} else {
			epFirst[e.Endpoint] = i
		}
		if j, dup := idFirst[e.Identity]; dup {
			bad(i, "identity %q is also on line %d", e.Identity, entries[j].Line)
		} else {
			idFirst[e.Identity] = i
		}
	}
	stored, err := m.refs(ctx, epFirst, idFirst)
	if err != nil {
		return nil, nil, err
	}
	byEndpoint := make(map[string]Ref, len(stored))
	owner := make(map[string]string, len(stored))
	for _, r := range stored {
		byEndpoint[r.Endpoint] = r
		owner[r.Identity] = r.Endpoint
	}
	for i, e := range entries {
		if j, ok := idFirst[e.Identity]; !ok || j != i {
			continue // invalid or a duplicate: reported above
		}
		// An identity stored for an endpoint that this import also re-keys is free once the
		// import is stored: SaveCredentials replaces those endpoints together.
		if ep, held := owner[e.Identity]; held && ep != e.Endpoint {
			if _, moving := epFirst[ep]; !moving {
				bad(i, "identity %q belongs to endpoint %q", e.Identity, ep)
			}
		}
	}
	slices.SortStableFunc(problems, func(a, b LineError) int { return a.Index - b.Index })
	return problems, byEndpoint, nil
}

// refs looks up, in chunks, the stored credentials of these endpoints and identities.
func (m *Manager) refs(ctx context.Context, endpoints, identities map[string]int) ([]Ref, error) {
	eps, ids := mapKeys(endpoints), mapKeys(identities)
	var out []Ref
	for len(eps) > 0 || len(ids) > 0 {
		n, k := min(len(eps), refChunk), min(len(ids), refChunk)
		rs, err := m.store.CredentialRefs(ctx, eps[:n], ids[:k])
		if err != nil {
			return nil, fmt.Errorf("credentials: import: %w", err)
		}
		out = append(out, rs...)
		eps, ids = eps[n:], ids[k:]
	}
	return out, nil
}

func mapKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Import stores entries all together or not at all, replacing the credentials the endpoints had
// (CreatedAt kept). Anything Check finds refuses the whole import with an *ImportError.
func (m *Manager) Import(ctx context.Context, entries []ImportEntry) (*ImportResult, error) {
	if len(entries) == 0 {
		return nil, &ImportError{Lines: []LineError{{Message: "the import holds no credentials"}}}
	}
	problems, stored, err := m.check(ctx, entries)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, &ImportError{Lines: problems}
	}
	now := m.now().UTC()
	res := &ImportResult{}
	sealed := make([]*Sealed, len(entries))
	for i, e := range entries {
		created := now
		if old, ok := stored[e.Endpoint]; ok {
			created = old.CreatedAt
			res.Replaced++
		} else {
			res.Created++
		}
		if sealed[i], err = m.seal(e.Endpoint, e.Identity, e.Key, created, now); err != nil {
			return nil, err
		}
	}
	if err := m.store.SaveCredentials(ctx, sealed); err != nil {
		// ErrIdentityTaken here: another writer took an identity between the check and the save.
		return nil, fmt.Errorf("credentials: import of %d credentials: %w", len(entries), err)
	}
	m.log.Info("psk credentials imported", "created", res.Created, "replaced", res.Replaced)
	return res, nil
}
