package send

import (
	"fmt"
	"slices"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
)

// Formats a Send payload may use (Core 1.1 §6.4.4): SenML JSON, SenML CBOR and LwM2M CBOR,
// the formats that carry absolute paths.
var Formats = []lwm2m.ContentFormat{lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatLwM2MCBOR}

// Decode reads a Send payload of format f: records with absolute paths, each a resource or a
// resource instance with a value, at most maxRecords of them (0: no limit). r types the values
// (it may be nil).
func Decode(f lwm2m.ContentFormat, payload []byte, r codec.Resolver, maxRecords int) ([]lwm2m.Record, error) {
	if !slices.Contains(Formats, f) {
		return nil, fmt.Errorf("%w: %d (%s); Send takes SenML CBOR (112), SenML JSON (110) or LwM2M CBOR (11544)", ErrFormat, f, f.Name())
	}
	if len(payload) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrPayload)
	}
	recs, err := codec.Decode(f, lwm2m.RootPath, payload, r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrPayload)
	}
	if maxRecords > 0 && len(recs) > maxRecords {
		return nil, fmt.Errorf("%w: %d records, the limit is %d", ErrTooLarge, len(recs), maxRecords)
	}
	for _, rec := range recs {
		if n := rec.Path.Len(); n < 3 {
			return nil, fmt.Errorf("%w: %s is not a resource or resource instance", ErrPayload, rec.Path)
		}
		if rec.Value.Type == lwm2m.TypeNone {
			return nil, fmt.Errorf("%w: %s has no value", ErrPayload, rec.Path)
		}
	}
	return recs, nil
}

// Group turns the records of one Send into latest values, one per resource: the records of a
// resource's instances stay together, and of several records for one path (a device that sends
// what it stored while offline, with timestamps) the newest is kept; records are in
// path order within each resource.
func Group(recs []lwm2m.Record) map[lwm2m.Path][]lwm2m.Record {
	newest := make(map[lwm2m.Path]lwm2m.Record, len(recs))
	for _, rec := range recs {
		if cur, ok := newest[rec.Path]; ok && rec.Time.Before(cur.Time) {
			continue
		}
		newest[rec.Path] = rec
	}
	out := make(map[lwm2m.Path][]lwm2m.Record)
	for p, rec := range newest {
		res := p
		for res.Len() > 3 {
			res = res.Parent()
		}
		out[res] = append(out[res], rec)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b lwm2m.Record) int { return comparePaths(a.Path, b.Path) })
	}
	return out
}

func comparePaths(a, b lwm2m.Path) int {
	for i := range min(a.Len(), b.Len()) {
		if a.ID(i) != b.ID(i) {
			return int(a.ID(i)) - int(b.ID(i))
		}
	}
	return a.Len() - b.Len()
}
