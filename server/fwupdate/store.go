package fwupdate

import (
	"context"
	"time"
)

// Store persists jobs and their history. Implementations live in storage/. Every transition is
// stored before the driver acts on it, so that a restart resumes each job where it stood.
type Store interface {
	// CreateJob inserts a new job with its creation record (Seq 1). It fails with ErrActiveJob
	// when the endpoint already has an active job (Job.Active), checked atomically by the store.
	CreateJob(ctx context.Context, j *Job, created Transition) error
	// SaveTransition stores j as it is after tr and appends tr to its history, in one transaction.
	// It fails with ErrStaleJob when the stored job is not at tr.Seq-1, ErrJobNotFound when there is
	// no such job, and ErrActiveJob when tr revives a job while the endpoint has another active one.
	SaveTransition(ctx context.Context, j *Job, tr Transition) error
	// SaveProgress stores j's progress within its current state (BytesDelivered, DeviceState,
	// DeviceResult, ProtocolsTried, FromVersion, Delivery, UpdatedAt) without a history line. It
	// fails with ErrStaleJob when the stored job is no longer at j.Seq.
	SaveProgress(ctx context.Context, j *Job) error
	// GetJob returns one job, or ErrJobNotFound.
	GetJob(ctx context.Context, id string) (*Job, error)
	// JobsFor returns the endpoint's jobs, newest first, at most limit (0: all).
	JobsFor(ctx context.Context, endpoint string, limit int) ([]*Job, error)
	// ActiveJobs returns every active job (Job.Active), oldest first, to resume after a restart.
	ActiveJobs(ctx context.Context) ([]*Job, error)
	// CampaignJobs returns the jobs of a campaign changed at or after since, oldest change
	// first: how a campaign follows its devices' updates.
	CampaignJobs(ctx context.Context, campaignID string, since time.Time) ([]*Job, error)
	// History returns a job's transitions in order (Seq ascending).
	History(ctx context.Context, jobID string) ([]Transition, error)
}
