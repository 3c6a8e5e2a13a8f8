package campaigns

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Errors callers branch on (the API maps each to an HTTP status).
var (
	ErrNotFound          = errors.New("campaigns: campaign not found")
	ErrStale             = errors.New("campaigns: campaign changed meanwhile")
	ErrInvalidTransition = errors.New("campaigns: not allowed in this state")
	ErrNotRunning        = errors.New("campaigns: manager not running")
)

// InvalidError refuses a campaign before anything runs; each problem names its field.
type InvalidError struct {
	Problems []Problem
}

// Problem is one reason a campaign is refused.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "campaigns: invalid campaign: " + strings.Join(parts, "; ")
}

func invalid(field, format string, args ...any) *InvalidError {
	return &InvalidError{Problems: []Problem{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// ConflictError refuses a campaign whose devices are already in another active campaign.
type ConflictError struct {
	Claimed map[string]string // endpoint -> the campaign holding it
}

func (e *ConflictError) Error() string {
	var eps []string
	for _, ep := range slices.Sorted(maps.Keys(e.Claimed)) {
		if len(eps) == 10 {
			eps = append(eps, "...")
			break
		}
		eps = append(eps, ep+" (in "+e.Claimed[ep]+")")
	}
	return fmt.Sprintf("campaigns: %d devices are already in an active campaign: %s", len(e.Claimed), strings.Join(eps, ", "))
}
