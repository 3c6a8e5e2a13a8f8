package campaigns

import (
	"context"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
)

// Store persists campaigns, their members and their history. Implementations live in storage/.
type Store interface {
	// CreateCampaign stores c, its creation event, its members and the events after creation
	// (a start given with it) in one transaction, and claims every member's device for c. It
	// fails with a *ConflictError when a device is already claimed by another campaign that has
	// not ended.
	CreateCampaign(ctx context.Context, c *Campaign, created Event, members []Member, after ...Event) error
	// SaveCampaign stores c, if the stored copy is at c.Version-1, and appends events to its
	// history (the store numbers them). When c has ended, its devices are released. It fails
	// with ErrStale when the stored copy moved on, ErrNotFound when there is none.
	SaveCampaign(ctx context.Context, c *Campaign, events ...Event) error
	// SaveTick is SaveCampaign together with the members a tick changed (already stored; as
	// SaveMembers), in one transaction: nobody sees a decision (completed, a new wave) without
	// the member states it was taken from, and a stale save writes no member either.
	SaveTick(ctx context.Context, c *Campaign, members []Member, events ...Event) error
	// GetCampaign returns one campaign, or ErrNotFound.
	GetCampaign(ctx context.Context, id string) (*Campaign, error)
	// ListCampaigns returns the campaigns in one of states (all when empty), newest first.
	ListCampaigns(ctx context.Context, states ...State) ([]*Campaign, error)
	// FollowedCampaigns returns the campaigns that were Followed when last saved, oldest first.
	FollowedCampaigns(ctx context.Context) ([]*Campaign, error)
	// Members returns a campaign's members matching f, ordered by wave, rank and endpoint.
	Members(ctx context.Context, campaignID string, f MemberFilter) ([]Member, error)
	// MemberSummary counts a campaign's members per wave (of waves) and state, and its failed
	// members per reason, in the store: a campaign of 10,000 devices shows without reading them.
	MemberSummary(ctx context.Context, campaignID string, waves int) (MemberSummary, error)
	// SaveMembers updates members already stored (state, job, reason, attempts, times).
	SaveMembers(ctx context.Context, members []Member) error
	// AddMembers stores new members of c and claims their devices, skipping any device claimed
	// by another campaign, in one transaction; it returns the members added. When it fails it
	// has claimed nothing.
	AddMembers(ctx context.Context, c *Campaign, members []Member) ([]Member, error)
	// Claim claims endpoints of c's members for c (a retry), skipping any claimed by another
	// campaign, and returns the endpoints c now holds. A store may release a campaign's claims
	// through its members: a device that is no member of c is not to be claimed for it.
	Claim(ctx context.Context, campaignID string, endpoints []string) ([]string, error)
	// Claimed returns, of endpoints, those claimed by a campaign that has not ended, with the
	// campaign's id.
	Claimed(ctx context.Context, endpoints []string) (map[string]string, error)
	// CampaignHistory returns a campaign's events in order.
	CampaignHistory(ctx context.Context, campaignID string) ([]Event, error)
	// Lease takes or renews the named lease for holder until now+ttl, if it is free, expired or
	// already holder's; it reports whether holder has it.
	Lease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
}

// ExactSelector is a Store that also selects devices itself, for a selector whose narrowing is
// exact (selector.Narrowing.Exact): the manager then reads no registration it does not select
// and none whole, and the store checks the image's target in the same pass. Found by type
// assertion; without it, or for any other selector, the fleet lists and the selector decides.
type ExactSelector interface {
	SelectExact(ctx context.Context, q ExactQuery) (*ExactSelection, error)
}

// ExactQuery is what SelectExact selects.
type ExactQuery struct {
	// Filter holds the selector's exact narrowing (its endpoint prefix, manufacturer, model,
	// device type and labels); its other fields are unset.
	Filter registration.Filter
	// Target is the image's target: the selected devices it does not fit are returned apart.
	Target firmware.Selector
	// Labels are the label keys returned with each device (the plan's spread and cap keys).
	Labels []string
}

// ExactSelection is what SelectExact selected, in endpoint order.
type ExactSelection struct {
	// Devices are the selected devices: their Endpoint, and of their Labels only the keys asked
	// for (nil when they have none of them).
	Devices []Selected
	// Misfits are the selected devices the target does not fit (fitsTarget): Endpoint and Model.
	Misfits []*registration.Registration
}

// Selected is a device a campaign selected, as its creation reads it: the endpoint, and the
// labels its plan spreads and caps by. A value, not a *registration.Registration: a start over
// 10,000 devices made 10,000 registrations of ~400 bytes to carry their endpoints (4 MB of its
// 12 MB of allocations, each byte of which a start pays for in mark assists when it meets a
// collection of a 250,000-device heap).
type Selected struct {
	Endpoint string
	Labels   map[string]string
}

// MemberFilter selects members. Zero fields match everything.
type MemberFilter struct {
	State MemberState
	After string // cursor: endpoints strictly greater, in endpoint order (with Limit)
	Limit int
}
