package campaigns

import "github.com/lwota/lwota/server/events"

// Publisher takes campaign events to live subscribers (*events.Bus implements it).
type Publisher interface {
	Publish(events.Event)
}

// WithEvents publishes every stored event of every campaign (created, an operator's action, a
// decision of the campaign's own: a wave, a threshold, completion) as an events.TypeCampaign
// event, after it is stored. Call it before Run. Operators' actions are published by the node
// that took them, the campaign's own decisions by the node driving campaigns.
func (m *Manager) WithEvents(p Publisher) *Manager {
	m.pub = p
	return m
}

// publish sends stored events; it never waits (the bus drops for slow subscribers).
func (m *Manager) publish(evs ...Event) {
	if m.pub == nil {
		return
	}
	for _, e := range evs {
		m.pub.Publish(events.Event{Type: events.TypeCampaign, Time: e.At, Data: events.CampaignChange{
			CampaignID: e.CampaignID, Action: e.Action, From: string(e.From), To: string(e.To), Actor: e.Actor, Reason: e.Reason,
		}})
	}
}
