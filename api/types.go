package api

// The API's JSON shapes under exported names, for Go clients of the API (the lwota CLI in
// cmd/lwota decodes answers into them instead of keeping copies that drift). They are aliases,
// so the handlers keep their own names and a field added to an answer reaches the clients
// with no second edit.
type (
	// Image is an image (GET /images/{id}, an item of GET /images).
	Image = imageJSON
	// UploadMetadata is what an image upload says of the image (the multipart metadata part; the
	// X-Lwota-* headers of a raw-body upload carry the same fields).
	UploadMetadata = uploadMetadata
	// ImageList is a page of GET /images.
	ImageList = imageList
	// Key is a trusted signing key (an item of GET /signing-keys).
	Key = keyJSON
	// KeyList is the answer of GET /signing-keys.
	KeyList = keyList
	// Token is an API token (an item of GET /tokens); Token.Token only in the answer of a create.
	Token = tokenJSON
	// Job is a firmware update job (an item of GET /devices/{endpoint}/updates).
	Job = jobJSON
	// JobDetail is one job with its history (GET /devices/{endpoint}/updates/{id}).
	JobDetail = jobDetailJSON
	// Transition is one step of a job's history.
	Transition = transitionJSON
	// JobList is the answer of GET /devices/{endpoint}/updates.
	JobList = jobList
	// Campaign is a campaign with its progress (GET /campaigns/{id}, the SSE progress event).
	Campaign = campaignJSON
	// CampaignCounts counts a campaign's (or a wave's) devices by state.
	CampaignCounts = countsJSON
	// CampaignList is the answer of GET /campaigns.
	CampaignList = campaignList
	// CampaignDryRun is the answer of a create with dry_run.
	CampaignDryRun = dryRunJSON
	// CampaignDevice is one device of a campaign (an item of GET /campaigns/{id}/devices).
	CampaignDevice = campaignDeviceJSON
	// CampaignDeviceList is a page of GET /campaigns/{id}/devices.
	CampaignDeviceList = campaignDeviceList
	// CampaignStateEvent is the data of the SSE state event of a campaign.
	CampaignStateEvent = campaignStateJSON
	// CredentialsImport is the answer of a stored POST /credentials/import.
	CredentialsImport = importAnswer
	// CredentialsImportRefusal is the error body of a refused import, with its bad lines.
	CredentialsImportRefusal = importRefusal
	// ErrorBody is the shape of every error answer: {"error": {"code": ..., "message": ...}}.
	ErrorBody = errorBody
	// Webhook is a webhook subscription (its secret only in the answer of the create).
	Webhook = webhookJSON
	// WebhookDelivery is one delivery of a subscription's event.
	WebhookDelivery = deliveryJSON
)
