package events

// Event types of firmware updates, published by the update driver and the campaign manager.
const (
	// TypeUpdateJob is a transition of a firmware update job (queued, delivering, ..., succeeded);
	// Endpoint is the job's device and Data a JobTransition.
	TypeUpdateJob = "update_job"
	// TypeCampaign is a change of a campaign's state or an action on it (start, pause, a wave);
	// Endpoint is empty and Data a CampaignChange.
	TypeCampaign = "campaign"
)

// Kinds group event types for subscribers that want only some: a registration's Register,
// Update, De-register and expiry are one kind.
const (
	KindRegistration = "registration"
	KindNotification = "notification"
	KindRequest      = "request"
	KindUpdateJob    = "update_job"
	KindCampaign     = "campaign"
)

// AllKinds lists the kinds, in the order the API documents them.
var AllKinds = []string{KindRegistration, KindNotification, KindRequest, KindUpdateJob, KindCampaign}

// KindOf returns the kind of an event type, or "" for a type it does not know.
func KindOf(eventType string) string {
	switch eventType {
	case TypeRegistered, TypeUpdated, TypeDeregistered, TypeExpired:
		return KindRegistration
	case TypeNotification:
		return KindNotification
	case TypeRequestDone:
		return KindRequest
	case TypeUpdateJob:
		return KindUpdateJob
	case TypeCampaign:
		return KindCampaign
	}
	return ""
}

// JobTransition is the Data of a TypeUpdateJob event: one stored transition of one job.
type JobTransition struct {
	JobID        string `json:"job_id"`
	ImageID      string `json:"image_id"`
	ImageVersion string `json:"image_version"`
	CampaignID   string `json:"campaign_id,omitempty"`
	From         string `json:"from"` // "" when the job was created
	To           string `json:"to"`
	Reason       string `json:"reason,omitempty"`
	Attempt      int    `json:"attempt"`
}

// CampaignChange is the Data of a TypeCampaign event: one stored event of a campaign's history.
type CampaignChange struct {
	CampaignID string `json:"campaign_id"`
	Action     string `json:"action"` // create, start, pause, resume, abort, approve, retry, wave, complete, ...
	From       string `json:"from"`   // equal to To when the state did not change
	To         string `json:"to"`
	Actor      string `json:"actor"`
	Reason     string `json:"reason,omitempty"`
}
