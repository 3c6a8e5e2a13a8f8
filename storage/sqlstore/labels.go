package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lwota/lwota/server/registration"
)

// The operator's device labels, in device_labels apart from registrations.
var _ registration.LabelStore = (*Store)(nil)

// withLabels wraps a query over registrationColumns so that each row carries one label of its
// registration (key and value, NULL for a registration without labels), ordered by endpoint.
// The inner query keeps its own WHERE and LIMIT: a page counts registrations, not labels, and
// the whole page is one statement however many devices it holds.
func withLabels(q string) string {
	return withLabelsOrder(q, "r.endpoint")
}

// withLabelsOrder is withLabels for a query sorted otherwise: order is its ORDER BY over the
// columns of r, ending in r.endpoint so that the rows of one registration stay together.
func withLabelsOrder(q, order string) string {
	return withLabelsColumns(q, order, "r."+strings.Join(registrationColumns, ", r."))
}

// withLabelsColumns is withLabelsOrder selecting cols (registrationColumns' order) of r.
func withLabelsColumns(q, order, cols string) string {
	return "SELECT " + cols + ", l.key, l.value FROM (" + q + ") r LEFT JOIN device_labels l ON l.endpoint = r.endpoint ORDER BY " + order
}

// briefColumns are registrationColumns of r with constants for what registration.Filter.Brief
// leaves out (JSON nulls for the content formats and the object list, empty text, NULL times):
// the rows carry no object list to copy or decode, 0.55x the CPU of a full list of 10,000.
var briefColumns = func() string {
	cols := make([]string, len(registrationColumns))
	for i, c := range registrationColumns {
		switch c {
		case "content_formats", "objects":
			cols[i] = "'null' AS " + c
		case "lwm2m_version", "binding", "sms_number", "root_path", "object_ids", "addr_network", "addr", "identity":
			cols[i] = "'' AS " + c
		case "last_seen", "expires_at", "firmware_key":
			cols[i] = "NULL AS " + c
		default:
			cols[i] = "r." + c
		}
	}
	return strings.Join(cols, ", ")
}()

// SetLabels replaces every label of endpoint with labels, in one transaction. The endpoint need
// not be registered (labels may come first, at provisioning). Labels that fail
// registration.ValidateLabels are refused with an error matching registration.ErrInvalidLabels.
func (s *Store) SetLabels(ctx context.Context, endpoint string, labels map[string]string) error {
	if endpoint == "" {
		return errors.New("sqlstore: set labels: no endpoint")
	}
	if err := registration.ValidateLabels(labels); err != nil {
		return fmt.Errorf("sqlstore: set labels of %s: %w", endpoint, err)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	stmts := make([]stmt, 0, 1+len(keys))
	stmts = append(stmts, stmt{s.dialect.rebind("DELETE FROM device_labels WHERE endpoint = ?"), []any{endpoint}})
	ins := s.dialect.rebind(insert("device_labels", []string{"endpoint", "key", "value"}))
	for _, k := range keys {
		stmts = append(stmts, stmt{ins, []any{endpoint, k, labels[k]}})
	}
	// Keyed by endpoint, as registration writes are: one device's writes commit in order.
	if err := s.w.do(ctx, endpoint, stmts...); err != nil {
		return fmt.Errorf("sqlstore: set labels of %s: %w", endpoint, err)
	}
	return nil
}

// Labels returns the labels of endpoint, an empty map when it has none.
func (s *Store) Labels(ctx context.Context, endpoint string) (map[string]string, error) {
	rows, err := s.query(ctx, s.dialect.rebind("SELECT key, value FROM device_labels WHERE endpoint = ?"), endpoint)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: labels of %s: %w", endpoint, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("sqlstore: labels of %s: %w", endpoint, err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: labels of %s: %w", endpoint, err)
	}
	return out, nil
}
