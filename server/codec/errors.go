package codec

import "errors"

// ErrUnsupportedFormat is a content format Decode or Encode cannot handle (link format
// carries links, not records: use package linkformat).
var ErrUnsupportedFormat = errors.New("codec: unsupported content format")
