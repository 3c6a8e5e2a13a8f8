package sqlstore

import (
	"strings"

	"github.com/lwota/lwota/server/events"
)

// queries are the statements of every store method, rebound for the dialect at open. Adding a
// table means adding its columns and statements here and a file with its methods.
type queries struct {
	saveRegistration  string
	outbox            map[string]string // webhooks.go: by kind, queues an event for its subscribers
	touchRegistration string
	touchMerge        *merger // the touches of a PostgreSQL batch in one UPDATE (merge.go); nil on SQLite
	// touchNoSec is touchRegistration that leaves the row of an endpoint with a credential
	// alone (TouchRegistrationNoSec); touchNoSecMerge its merged form, nil on SQLite.
	touchNoSec      string
	touchNoSecMerge *merger
	// saveInfo stores a registration's device attributes alone (SaveDeviceInfo); saveInfoMerge
	// is its merged form, nil on SQLite.
	saveInfo         string
	saveInfoMerge    *merger
	saveMerge        *merger // the saves of a PostgreSQL batch in one upsert; nil on SQLite
	getRegistration  string
	registrationByID string // an Update that reached another cluster node (registration.IDFinder)
	saveOwner        string // cluster.go: device_owners, written with the registration
	// touchOwned is a touch and its owner row's upsert in one statement, on PostgreSQL (its
	// rows affected are the touch's); "" on SQLite, where the two run apart. touchOwnedMerge is
	// its merged form.
	touchOwned      string
	touchOwnedMerge *merger
	// touchOwnedNoSec and its merged form are touchOwned for TouchRegistrationNoSec.
	touchOwnedNoSec      string
	touchOwnedNoSecMerge *merger
	deleteOwner          string
	ownerMerge           *merger // the owner rows of a PostgreSQL batch in one upsert; nil on SQLite
	outboxMerge          *merger // the registration events of a PostgreSQL batch in one insert; nil on SQLite
	storedInfo           string  // the device attributes a Register carries over (registration.InfoStore)
	loadRegistrations    string
	selectRegistrations  string // prefix of ListRegistrations, completed by its filter

	// saveKeep and outboxKeep are a Register's upsert and outbox that keep the stored row's
	// device attributes (keepinfo.go), with their merged forms; "" and nil on SQLite.
	saveKeep, outboxKeep           string
	saveKeepMerge, outboxKeepMerge *merger

	// The per-device writes of a campaign's tick and of the update jobs it starts (10,000 of
	// each after a start of 10,000 devices), and the tick's own: prepared by the writer
	// (writes), so that SQLite does not parse the same statement for every device.
	updateMember   string      // a member's progress (SaveMembers, SaveTick)
	insertAudit    string      // AppendAudit: one entry per job a campaign starts
	insertEvent    string      // a campaign event, numbered after the last
	saveCampaign   string      // a campaign's compare-and-set
	releaseClaims  string      // an ended campaign's claims
	insertCampaign string      // CreateCampaign's campaign row
	jobs           *jobQueries // jobs.go's statements in this dialect

	savePending string
	getPending  string
	pendingFor  string
	// queuedCounts counts each endpoint's requests in one state (dm.QueueCounter).
	queuedCounts string

	saveObservation   string
	deleteObservation string
	observationsFor   string
	observationsAll   string
	saveLatest        string
	latestFor         string

	insertImage       string
	insertImageLabel  string
	getImage          string
	selectImages      string // prefix of ListImages, completed by its filter
	deleteImageLabels string
	deleteImage       string
	// deleteUnusedImage deletes an image no active update job delivers; lockImageForDelete
	// (PostgreSQL only, "" on SQLite) takes its row first.
	deleteUnusedImage, lockImageForDelete string
	countBlobRefs                         string

	saveKey  string
	getKey   string
	listKeys string

	// insertMembers stores rowsPerInsert campaign members (campaigns.go); insertMemberSet up to
	// setRowsPerStatement of them from a JSON object, insertClaims and insertNewClaims their
	// claims from a JSON array (campaign_members_set.go).
	insertMembers, insertMemberSet, insertClaims, insertNewClaims string
	// insertClaimedMember stores a member if its campaign holds its device (AddMembers).
	insertClaimedMember string
}

var registrationColumns = []string{
	"endpoint", "id", "lwm2m_version", "lifetime", "binding", "queue_mode", "sms_number",
	"root_path", "content_formats", "objects", "object_ids", "addr_network", "addr", "identity",
	"registered_at", "updated_at", "last_seen", "deregistered_at", "expires_at",
	"firmware_version", "manufacturer", "model", "device_type", "firmware_key",
}

// registrationTypes are the PostgreSQL types of registrationColumns, for merged saves.
var registrationTypes = []string{
	"text", "text", "text", "bigint", "text", "boolean", "text",
	"text", "text", "text", "text", "text", "text", "text",
	"bigint", "bigint", "bigint", "bigint", "bigint",
	"text", "text", "text", "text", "text",
}

var pendingColumns = []string{
	"id", "endpoint", "state", "request", "result", "error", "attempts", "created_at", "updated_at",
}

var observationColumns = []string{"endpoint", "path", "token", "format", "created_at", "paths"}

var latestColumns = []string{"endpoint", "path", "records", "time"}

var imageColumns = []string{
	"id", "name", "version", "target", "model", "size", "sha256", "signature_alg", "key_id",
	"signature", "unsigned", "uploader", "created_at", "release_notes", "labels", "mcuboot", "blob_key", "metadata",
}

var keyColumns = []string{"id", "name", "algorithm", "public_key_pem", "fingerprint", "created_at", "revoked_at"}

func buildQueries(d *dialect) queries {
	regs := "SELECT " + strings.Join(registrationColumns, ", ") + " FROM registrations"
	pend := "SELECT " + strings.Join(pendingColumns, ", ") + " FROM pending_requests"
	obs := "SELECT " + strings.Join(observationColumns, ", ") + " FROM observations"
	latest := "SELECT " + strings.Join(latestColumns, ", ") + " FROM latest_values"
	images := "SELECT " + strings.Join(imageColumns, ", ") + " FROM images"
	keys := "SELECT " + strings.Join(keyColumns, ", ") + " FROM signing_keys"
	saveOwner, deleteOwner := ownerQueries(d)
	var touchMerge, saveMerge, ownerMerge, outboxMerge, touchOwnedMerge, saveInfoMerge *merger
	var touchOwned, touchOwnedNoSec, saveKeep, outboxKeep string
	var saveKeepMerge, outboxKeepMerge, touchNoSecMerge, touchOwnedNoSecMerge *merger
	if d.pipelined {
		saveKeep, outboxKeep, saveKeepMerge, outboxKeepMerge = keepInfoQueries(d)
		touchOwned, touchOwnedMerge = touchOwnedQueries(false)
		touchOwnedNoSec, touchOwnedNoSecMerge = touchOwnedQueries(true)
		ownerMerge = &merger{key: -1, query: upsertArrays("device_owners", []string{"endpoint"}, ownerColumns, ownerTypes)}
		outboxMerge = &merger{key: -1, query: outboxArrays(events.KindRegistration)}
		saveMerge = &merger{key: -1, query: upsertArrays("registrations", []string{"endpoint"}, registrationColumns, registrationTypes)}
		touchMerge, touchNoSecMerge = touchMerger(""), touchMerger(noCredentialByIndex("r.endpoint"))
		saveInfoMerge = &merger{key: 5, byIndex: true, query: "UPDATE registrations AS r SET manufacturer = v.manufacturer, model = v.model," +
			" firmware_version = v.firmware_version, device_type = v.device_type, firmware_key = v.firmware_key" +
			" FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])" +
			" AS v(manufacturer, model, firmware_version, device_type, firmware_key, endpoint, id)" +
			" WHERE " + keyJoin + " RETURNING r.endpoint"}
	}
	return queries{
		insertMembers:       memberInsertQuery(d, rowsPerInsert),
		insertMemberSet:     memberSetInsertQuery(d),
		insertClaims:        claimSetInsertQuery(d, false),
		insertNewClaims:     claimSetInsertQuery(d, true),
		insertClaimedMember: claimedMemberInsertQuery(d),
		saveOwner:           saveOwner,
		deleteOwner:         deleteOwner,
		registrationByID:    d.rebind(regs + " WHERE id = ?"),
		touchMerge:          touchMerge,
		saveInfo: d.rebind("UPDATE registrations SET manufacturer = ?, model = ?, firmware_version = ?, device_type = ?, firmware_key = ?" +
			" WHERE endpoint = ? AND id = ?"),
		saveInfoMerge:        saveInfoMerge,
		touchOwned:           touchOwned,
		touchOwnedMerge:      touchOwnedMerge,
		touchOwnedNoSec:      touchOwnedNoSec,
		touchOwnedNoSecMerge: touchOwnedNoSecMerge,
		touchNoSec: d.rebind("UPDATE registrations SET updated_at = ?, last_seen = ?, expires_at = ?, addr_network = ?, addr = ?" +
			" WHERE endpoint = ? AND id = ?" + noCredential("registrations.endpoint")),
		touchNoSecMerge:  touchNoSecMerge,
		saveMerge:        saveMerge,
		saveKeep:         saveKeep,
		outboxKeep:       outboxKeep,
		saveKeepMerge:    saveKeepMerge,
		outboxKeepMerge:  outboxKeepMerge,
		ownerMerge:       ownerMerge,
		outboxMerge:      outboxMerge,
		outbox:           outboxQueries(d),
		saveRegistration: d.rebind(upsert("registrations", []string{"endpoint"}, registrationColumns)),
		touchRegistration: d.rebind("UPDATE registrations SET updated_at = ?, last_seen = ?, expires_at = ?, addr_network = ?, addr = ?" +
			" WHERE endpoint = ? AND id = ?"),
		getRegistration:     d.rebind(withLabels(regs + " WHERE endpoint = ?")),
		storedInfo:          d.rebind("SELECT manufacturer, model, firmware_version, device_type FROM registrations WHERE endpoint = ?"),
		loadRegistrations:   d.rebind(regs + " WHERE deregistered_at IS NULL ORDER BY endpoint"),
		selectRegistrations: regs,

		updateMember: d.rebind("UPDATE campaign_members SET state = ?, job_id = ?, job_state = ?, reason = ?, attempts = ?, " +
			"started_at = ?, pending_since = ?, ended_at = ?, updated_at = ? WHERE campaign_id = ? AND endpoint = ?"),
		insertAudit: d.rebind(insert("audit_log", auditColumns)),
		insertEvent: d.rebind("INSERT INTO campaign_events (campaign_id, seq, at, from_state, to_state, actor, action, reason) " +
			"SELECT CAST(? AS TEXT), COALESCE(MAX(seq), 0) + 1, CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT) " +
			"FROM campaign_events WHERE campaign_id = ?"),
		saveCampaign: d.rebind("UPDATE campaigns SET state = ?, version = ?, followed = ?, doc = ? WHERE id = ? AND version = ?"),
		releaseClaims: d.rebind("DELETE FROM campaign_claims WHERE campaign_id = ? AND endpoint IN " +
			"(SELECT endpoint FROM campaign_members WHERE campaign_id = ?)"),
		insertCampaign: d.rebind(insert("campaigns", []string{"id", "state", "version", "followed", "created_at", "doc"})),
		jobs:           jobQueriesFor(d),

		savePending:  d.rebind(upsert("pending_requests", []string{"id"}, pendingColumns)),
		getPending:   d.rebind(pend + " WHERE id = ?"),
		pendingFor:   d.rebind(pend + " WHERE endpoint = ? AND state = ? ORDER BY created_at, id"),
		queuedCounts: d.rebind("SELECT endpoint, COUNT(*) FROM pending_requests WHERE state = ? GROUP BY endpoint"),

		saveObservation:   d.rebind(upsert("observations", []string{"endpoint", "path"}, observationColumns)),
		deleteObservation: d.rebind("DELETE FROM observations WHERE endpoint = ? AND path = ?"),
		observationsFor:   d.rebind(obs + " WHERE endpoint = ? ORDER BY path"),
		observationsAll:   d.rebind(obs + " ORDER BY endpoint, path"),
		saveLatest:        d.rebind(upsert("latest_values", []string{"endpoint", "path"}, latestColumns)),
		latestFor:         d.rebind(latest + " WHERE endpoint = ? ORDER BY path"),

		insertImage:       d.rebind(insert("images", imageColumns)),
		insertImageLabel:  d.rebind(insert("image_labels", []string{"image_id", "name", "value"})),
		getImage:          d.rebind(images + " WHERE id = ?"),
		selectImages:      images,
		deleteImageLabels: d.rebind("DELETE FROM image_labels WHERE image_id = ?"),
		deleteImage:       d.rebind("DELETE FROM images WHERE id = ?"),
		deleteUnusedImage: d.rebind("DELETE FROM images WHERE id = ? AND NOT EXISTS " +
			"(SELECT 1 FROM update_jobs WHERE image_id = ? AND active_endpoint IS NOT NULL) AND NOT EXISTS " +
			"(SELECT 1 FROM campaigns WHERE state NOT IN ('completed', 'aborted', 'failed') AND " + campaignImage(d) + " = ?)"),
		lockImageForDelete: lockClause(d, "SELECT id FROM images WHERE id = ? FOR UPDATE"),
		countBlobRefs:      d.rebind("SELECT COUNT(*) FROM images WHERE blob_key = ?"),

		saveKey:  d.rebind(upsert("signing_keys", []string{"id"}, keyColumns)),
		getKey:   d.rebind(keys + " WHERE id = ?"),
		listKeys: d.rebind(keys + " ORDER BY created_at, id"),
	}
}

// mergers are the statements a pipelined batch may merge (merge.go), by query: a
// registration's save or touch, its owner row and its webhook outbox, the statements of every
// Register and Update.
func (q *queries) mergers() map[string]*merger {
	if q.touchMerge == nil {
		return nil
	}
	return map[string]*merger{
		q.touchRegistration:               q.touchMerge,
		q.saveInfo:                        q.saveInfoMerge,
		q.touchOwned:                      q.touchOwnedMerge,
		q.touchNoSec:                      q.touchNoSecMerge,
		q.touchOwnedNoSec:                 q.touchOwnedNoSecMerge,
		q.saveRegistration:                q.saveMerge,
		q.saveOwner:                       q.ownerMerge,
		q.outbox[events.KindRegistration]: q.outboxMerge,
		q.saveKeep:                        q.saveKeepMerge,
		q.outboxKeep:                      q.outboxKeepMerge,
	}
}

// writes are the statements the writer prepares.
func (q *queries) writes() []string {
	return []string{q.saveRegistration, q.touchRegistration, q.touchNoSec, q.saveInfo, q.touchOwned, q.outbox[events.KindRegistration], q.outbox[events.KindUpdateJob], q.outbox[events.KindCampaign], q.savePending, q.saveObservation, q.deleteObservation, q.saveLatest,
		q.saveOwner, q.deleteOwner, q.insertImage, q.insertImageLabel, q.deleteImageLabels, q.deleteImage, q.saveKey,
		q.insertMembers, q.insertMemberSet, q.insertClaims, q.insertNewClaims, q.insertClaimedMember,
		q.updateMember, q.insertAudit, q.insertEvent, q.saveCampaign, q.releaseClaims, q.insertCampaign,
		q.jobs.insertJob, q.jobs.updateJob, q.jobs.insertHistory, q.jobs.jobImageExists}
}

// touchMerger is the merged touch of a PostgreSQL batch's Updates (merge.go): one UPDATE from
// arrays, returning the endpoints it touched; cond narrows the rows it may change
// (noCredentialByIndex).
func touchMerger(cond string) *merger {
	return &merger{key: 5, byIndex: true, query: "UPDATE registrations AS r SET updated_at = v.updated_at, last_seen = v.last_seen," +
		" expires_at = v.expires_at, addr_network = v.addr_network, addr = v.addr" +
		" FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])" +
		" AS v(updated_at, last_seen, expires_at, addr_network, addr, endpoint, id)" +
		" WHERE " + keyJoin + cond + " RETURNING r.endpoint"}
}

// keyJoin joins a merged statement's registrations row r to its arrays' row v (merger.byIndex):
// the row of v's endpoint that holds v's id. It is what r.endpoint = v.endpoint AND r.id = v.id
// says, in terms no merge or hash join can use (= ANY of a one-element array, IS NOT DISTINCT
// FROM of two non-null ids): the planner's only join is a nested loop, and with
// enable_seqscan off its only scan of r a lookup of the primary key for each row of v, whatever
// the table's size was when the plan was made.
const keyJoin = "r.endpoint = ANY(ARRAY[v.endpoint]) AND r.id IS NOT DISTINCT FROM v.id"

// noCredential is the condition a NoSec Update's touch adds to its WHERE (TouchRegistrationNoSec):
// the row's endpoint, the column col, has no DTLS credential. It is part of the touch's own
// statement, so the check sees what the write sees: a credential committed before the touch
// keeps the row as it was. One probe of device_credentials' primary key.
func noCredential(col string) string {
	return " AND NOT EXISTS (SELECT 1 FROM device_credentials c WHERE c.endpoint = " + col + ")"
}

// noCredentialByIndex is noCredential for a merged statement (merger.byIndex), PostgreSQL only:
// its probe is written as keyJoin's, so that no hash anti join over a scan of device_credentials
// can stand in for it.
func noCredentialByIndex(col string) string {
	return " AND NOT EXISTS (SELECT 1 FROM device_credentials c WHERE c.endpoint = ANY(ARRAY[" + col + "]))"
}

// campaignImage is the SQL expression of a campaign row's image id, kept in its JSON doc.
func campaignImage(d *dialect) string {
	if d.numbered {
		return "(doc::jsonb ->> 'ImageID')"
	}
	return "json_extract(doc, '$.ImageID')"
}
