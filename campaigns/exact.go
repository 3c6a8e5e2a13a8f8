package campaigns

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/campaigns/selector"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
)

// WithExactSelector has es select the devices of a campaign (Create, DryRun) whose selector's
// narrowing is exact (selector.Narrowing.Exact), instead of the fleet listing them and the
// selector deciding each. es must select from the registrations the fleet lists (lwota serve
// passes the store its server lists from). Call it before Run.
func (m *Manager) WithExactSelector(es ExactSelector) *Manager {
	m.exact = es
	return m
}

// selectForImage is selectDevices for a campaign of an image with target t, and of the devices
// those t does not fit. A selector whose narrowing is exact is handed whole to the
// ExactSelector, when there is one: at 10,000 devices it reads their endpoints and the labels
// plan p needs, and finds the misfits in the same pass, instead of every selected registration.
func (m *Manager) selectForImage(ctx context.Context, sel *selector.Selector, explicit []string, t firmware.Selector, p plan.Plan,
	now time.Time) (devices []Selected, misfits []*registration.Registration, err error) {
	if es := m.exact; es != nil && len(explicit) == 0 && sel.Narrow().Exact {
		q := ExactQuery{Filter: narrowed(sel, now), Target: t}
		q.Filter.Brief = false
		for _, k := range []string{p.SpreadBy, p.Pacing.PerLabelCap.Key} {
			if k != "" && !slices.Contains(q.Labels, k) {
				q.Labels = append(q.Labels, k)
			}
		}
		res, err := es.SelectExact(ctx, q)
		if err != nil {
			return nil, nil, fmt.Errorf("select devices: %w", err)
		}
		return res.Devices, res.Misfits, nil
	}
	regs, err := m.selectDevices(ctx, sel, explicit, now)
	if err != nil {
		return nil, nil, err
	}
	devices = make([]Selected, len(regs))
	for i, d := range regs {
		devices[i] = Selected{Endpoint: d.Endpoint, Labels: d.Labels}
		if !fitsTarget(t, d) {
			misfits = append(misfits, d)
		}
	}
	return devices, misfits, nil
}
