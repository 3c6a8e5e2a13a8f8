package bootstrap

import (
	"context"
	"time"

	"github.com/lwota/lwota/server/credentials"
)

// Outcomes of a Session.
const (
	OutcomeRunning = "running"
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Step is one exchange of a session: the operation, the path, the device's answer.
type Step struct {
	At     time.Time `json:"at"`
	Op     string    `json:"op"`             // request, discover, delete, write, read, finish, refused
	Path   string    `json:"path,omitempty"` // "/0/1"
	Code   string    `json:"code,omitempty"` // the CoAP answer, "2.04"; "" when none came
	Detail string    `json:"detail,omitempty"`
}

// Session is one bootstrap of one device, kept for its history.
type Session struct {
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	Network   string    `json:"network"`            // udp or dtls
	Identity  string    `json:"identity,omitempty"` // the bootstrap PSK identity
	Peer      string    `json:"peer,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"` // why it failed, for people
	// Config names the configuration used ("endpoint:dev1", "prefix:batch-7-").
	Config string `json:"config,omitempty"`
	// DMIdentity is the PSK identity written for the DM server; Rotated says it came with a new
	// key, stored for the DM server when the session succeeded.
	DMIdentity string `json:"dm_identity,omitempty"`
	Rotated    bool   `json:"rotated,omitempty"`
	Steps      []Step `json:"steps"`
}

// Store persists configurations and sessions. Lookups of a missing configuration fail with an
// error matching ErrNotFound.
type Store interface {
	SaveBootstrapConfig(ctx context.Context, c *Config) error
	BootstrapConfig(ctx context.Context, scope Scope, name string) (*Config, error)
	DeleteBootstrapConfig(ctx context.Context, scope Scope, name string) error
	ListBootstrapConfigs(ctx context.Context) ([]*Config, error)
	// ResolveBootstrapConfig returns the configuration that applies to endpoint: its own, else
	// one of a label it carries (the first by label key), else the longest matching prefix.
	ResolveBootstrapConfig(ctx context.Context, endpoint string) (*Config, error)

	// SaveBootstrapSession inserts or replaces a session.
	SaveBootstrapSession(ctx context.Context, s *Session) error
	// FinishBootstrapSession stores the ended session and, when dm is not nil, the device's
	// new DM credential (replacing its old one), in one transaction: both or neither.
	FinishBootstrapSession(ctx context.Context, s *Session, dm *credentials.Sealed) error
	// BootstrapSessions returns endpoint's sessions, newest first, at most limit (0: all).
	BootstrapSessions(ctx context.Context, endpoint string, limit int) ([]*Session, error)
}
