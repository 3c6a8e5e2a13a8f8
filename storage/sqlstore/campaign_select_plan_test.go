package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
)

// TestMisfitQueryPlan: on SQLite, the devices an image of a model target does not fit are
// found in the registrations_model index alone, not by reading the table row of every selected
// device (what the planner picks for NOT (model = ?) under an endpoint prefix); other targets
// keep the general query.
func TestMisfitQueryPlan(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, tc := range []struct {
		name      string
		filter    registration.Filter
		target    firmware.Selector
		wantIndex bool // answered from registrations_model alone
	}{
		{"prefix, model", registration.Filter{EndpointPrefix: "dev-0"}, firmware.Selector{Model: "m1"}, true},
		{"all, model", registration.Filter{}, firmware.Selector{Model: "m1"}, true},
		{"prefix, manufacturer", registration.Filter{EndpointPrefix: "dev-0"}, firmware.Selector{Manufacturer: "acme"}, false},
		{"prefix, model and label", registration.Filter{EndpointPrefix: "dev-0"}, firmware.Selector{Model: "m1", Labels: map[string]string{"ring": "a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			where, args, err := s.listWhere(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			q, qargs := misfitQuery(s.dialect, where, args, []string{"model = ?"}, []any{tc.target.Model}, tc.target)
			rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, qargs...)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(plan, "; ")
			index := strings.Contains(got, "COVERING INDEX registrations_model") && !strings.Contains(got, "sqlite_autoindex_registrations")
			if index != tc.wantIndex {
				t.Fatalf("%s: plan %q; want answered from registrations_model alone: %v", q, got, tc.wantIndex)
			}
		})
	}
}
