package codec

import (
	"errors"
	"fmt"

	"github.com/lwota/lwota/server/codec/senml"
	"github.com/lwota/lwota/server/lwm2m"
)

// MaxPaths bounds a composite path list: a Read-Composite or Observe-Composite naming more
// paths than this is refused before anything is sent or read.
const MaxPaths = 64

// ErrPathList is a composite path list that is empty, too long, or carries values.
var ErrPathList = errors.New("codec: bad path list")

// PathListFormat reports whether f can carry a composite path list (Core §5.4.3, §6.3.1 of
// LwM2M 1.1): SenML JSON and SenML CBOR records that hold a name and no value.
func PathListFormat(f lwm2m.ContentFormat) bool {
	return f == lwm2m.FormatSenMLJSON || f == lwm2m.FormatSenMLCBOR
}

// EncodePaths writes the body of a Read-Composite or Observe-Composite request (a FETCH):
// one SenML record per path, with an absolute name and no value.
func EncodePaths(f lwm2m.ContentFormat, paths []lwm2m.Path) ([]byte, error) {
	if !PathListFormat(f) {
		return nil, fmt.Errorf("%w: %d (%s) for a path list", ErrUnsupportedFormat, f, name(f))
	}
	if len(paths) == 0 || len(paths) > MaxPaths {
		return nil, fmt.Errorf("%w: %d paths (1 to %d)", ErrPathList, len(paths), MaxPaths)
	}
	recs := make([]lwm2m.Record, len(paths))
	for i, p := range paths {
		if p.Len() == 0 {
			return nil, fmt.Errorf("%w: path %d is the root", ErrPathList, i)
		}
		recs[i] = lwm2m.Record{Path: p}
	}
	return Encode(f, lwm2m.RootPath, recs)
}

// DecodePaths reads a composite path list (the device's side of EncodePaths). A record that
// carries a value, names the root, or a list longer than MaxPaths is refused.
func DecodePaths(f lwm2m.ContentFormat, data []byte) ([]lwm2m.Path, error) {
	var recs []lwm2m.Record
	var err error
	switch f {
	case lwm2m.FormatSenMLJSON:
		recs, err = senml.DecodeJSON(lwm2m.RootPath, data, nil)
	case lwm2m.FormatSenMLCBOR:
		recs, err = senml.DecodeCBOR(lwm2m.RootPath, data, nil)
	default:
		return nil, fmt.Errorf("%w: %d (%s) for a path list", ErrUnsupportedFormat, f, name(f))
	}
	if err != nil {
		return nil, fmt.Errorf("path list: %w", err)
	}
	if len(recs) == 0 || len(recs) > MaxPaths {
		return nil, fmt.Errorf("%w: %d paths (1 to %d)", ErrPathList, len(recs), MaxPaths)
	}
	paths := make([]lwm2m.Path, len(recs))
	for i, r := range recs {
		if r.Value.Type != lwm2m.TypeNone {
			return nil, fmt.Errorf("%w: %s carries a value", ErrPathList, r.Path)
		}
		if r.Path.Len() == 0 {
			return nil, fmt.Errorf("%w: record %d names the root", ErrPathList, i)
		}
		paths[i] = r.Path
	}
	return paths, nil
}
