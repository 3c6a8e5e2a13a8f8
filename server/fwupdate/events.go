package fwupdate

import "github.com/lwota/lwota/server/events"

// Publisher takes the driver's job transitions to live subscribers (*events.Bus implements it).
type Publisher interface {
	Publish(events.Event)
}

// WithEvents publishes every stored transition of every job driven here as an events.TypeUpdateJob
// event, after it is stored. Call it before Run. In a cluster each node publishes the transitions
// of the jobs it drives.
func (d *Driver) WithEvents(p Publisher) *Driver {
	d.pub = p
	return d
}

// publish sends one stored transition; it never waits (the bus drops for slow subscribers).
func (d *Driver) publish(j *Job, tr Transition) {
	if d.pub == nil {
		return
	}
	d.pub.Publish(events.Event{Type: events.TypeUpdateJob, Endpoint: j.Endpoint, Time: tr.At, Data: events.JobTransition{
		JobID: j.ID, ImageID: j.ImageID, ImageVersion: j.ImageVersion, CampaignID: j.CampaignID,
		From: string(tr.From), To: string(tr.To), Reason: tr.Reason, Attempt: tr.Attempt,
	}})
}
