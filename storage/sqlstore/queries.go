package sqlstore

import "strings"

// queries are the statements of every store method, rebound for the dialect at open. Adding a
// table means adding its columns and statements here and a file with its methods.
type queries struct {
	saveRegistration    string
	getRegistration     string
	loadRegistrations   string
	selectRegistrations string // prefix of ListRegistrations, completed by its filter

	savePending string
	getPending  string
	pendingFor  string

	saveObservation   string
	deleteObservation string
	observationsFor   string
	observationsAll   string
	saveLatest        string
	latestFor         string
}

var registrationColumns = []string{
	"endpoint", "id", "lwm2m_version", "lifetime", "binding", "queue_mode", "sms_number",
	"root_path", "content_formats", "objects", "object_ids", "addr_network", "addr", "identity",
	"registered_at", "updated_at", "last_seen", "deregistered_at", "expires_at",
	"firmware_version", "attrs",
}

var pendingColumns = []string{
	"id", "endpoint", "state", "request", "result", "error", "attempts", "created_at", "updated_at",
}

var observationColumns = []string{"endpoint", "path", "token", "format", "created_at"}

var latestColumns = []string{"endpoint", "path", "records", "time"}

func buildQueries(d *dialect) queries {
	regs := "SELECT " + strings.Join(registrationColumns, ", ") + " FROM registrations"
	pend := "SELECT " + strings.Join(pendingColumns, ", ") + " FROM pending_requests"
	obs := "SELECT " + strings.Join(observationColumns, ", ") + " FROM observations"
	latest := "SELECT " + strings.Join(latestColumns, ", ") + " FROM latest_values"
	return queries{
		saveRegistration:    d.rebind(upsert("registrations", []string{"endpoint"}, registrationColumns)),
		getRegistration:     d.rebind(regs + " WHERE endpoint = ?"),
		loadRegistrations:   d.rebind(regs + " WHERE deregistered_at IS NULL ORDER BY endpoint"),
		selectRegistrations: regs,

		savePending: d.rebind(upsert("pending_requests", []string{"id"}, pendingColumns)),
		getPending:  d.rebind(pend + " WHERE id = ?"),
		pendingFor:  d.rebind(pend + " WHERE endpoint = ? AND state = ? ORDER BY created_at, id"),

		saveObservation:   d.rebind(upsert("observations", []string{"endpoint", "path"}, observationColumns)),
		deleteObservation: d.rebind("DELETE FROM observations WHERE endpoint = ? AND path = ?"),
		observationsFor:   d.rebind(obs + " WHERE endpoint = ? ORDER BY path"),
		observationsAll:   d.rebind(obs + " ORDER BY endpoint, path"),
		saveLatest:        d.rebind(upsert("latest_values", []string{"endpoint", "path"}, latestColumns)),
		latestFor:         d.rebind(latest + " WHERE endpoint = ? ORDER BY path"),
	}
}

// writes are the statements the writer prepares.
func (q *queries) writes() []string {
	return []string{q.saveRegistration, q.savePending, q.saveObservation, q.deleteObservation, q.saveLatest}
}
