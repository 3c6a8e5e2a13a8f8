package registration

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits of an endpoint's labels: small enough that a device list joins them in cheaply, large
// enough for cells, regions, batches and channels.
const (
	MaxLabels        = 64  // labels per endpoint
	MaxLabelKeyLen   = 63  // bytes of a key: [a-z0-9_.-]
	MaxLabelValueLen = 256 // bytes of a value (UTF-8)
)

// ErrInvalidLabels is returned for labels over the limits or with a malformed key or value.
var ErrInvalidLabels = errors.New("invalid labels")

// ValidateLabels checks labels against the limits: at most MaxLabels, keys of 1 to
// MaxLabelKeyLen characters from a-z, 0-9, '_', '.' and '-', values of valid UTF-8 up to
// MaxLabelValueLen bytes (empty is allowed). The error names the first bad key in key order.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%w: %d labels, at most %d are allowed", ErrInvalidLabels, len(labels), MaxLabels)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := ValidateLabelKey(k); err != nil {
			return err
		}
		v := labels[k]
		if len(v) > MaxLabelValueLen {
			return fmt.Errorf("%w: the value of %q is %d bytes, at most %d are allowed", ErrInvalidLabels, k, len(v), MaxLabelValueLen)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: the value of %q is not valid UTF-8", ErrInvalidLabels, k)
		}
	}
	return nil
}

// ValidateLabelKey checks one label key: 1 to MaxLabelKeyLen characters from a-z, 0-9, '_', '.'
// and '-'. Keys are lower case so that "Region" and "region" cannot both exist.
func ValidateLabelKey(k string) error {
	if k == "" || len(k) > MaxLabelKeyLen {
		return fmt.Errorf("%w: key %q must be 1 to %d characters long", ErrInvalidLabels, k, MaxLabelKeyLen)
	}
	if i := strings.IndexFunc(k, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-')
	}); i >= 0 {
		return fmt.Errorf("%w: key %q may only hold a-z, 0-9, '_', '.' and '-'", ErrInvalidLabels, k)
	}
	return nil
}
