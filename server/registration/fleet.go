package registration

import (
	"context"
	"time"
)

// Fleet is the device side of the fleet overview: how many devices lwota knows, how many are
// online, and how many run each firmware version on each model.
type Fleet struct {
	Known  int // every stored registration, de-registered ones included
	Online int // registered and not expired at the time asked
	// Versions are the largest groups, most devices first; MoreVersions tells that smaller
	// ones were left out.
	Versions     []FleetVersion
	MoreVersions bool
}

// FleetVersion is how many devices of one model run one firmware version ("" when unknown).
type FleetVersion struct {
	FirmwareVersion string
	Model           string
	Devices         int
	Online          int
}

// FleetCounter is the optional capability of a Store to count the fleet in the database (one
// aggregate query, not a walk over every device). maxVersions bounds Fleet.Versions.
type FleetCounter interface {
	FleetCounts(ctx context.Context, now time.Time, maxVersions int) (*Fleet, error)
}
