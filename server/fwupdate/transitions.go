package fwupdate

// next is the transition table: the states each state may move to. Every non-terminal state may
// also move to failed and cancelled (added by allowed); failed moves on only to queued, and only
// with a retry scheduled (checked by Apply).
var next = map[State][]State{
	StateQueued:     {StateWaiting, StateDelivering},
	StateWaiting:    {StateDelivering},
	StateDelivering: {StateDownloaded, StateWaiting}, // waiting: the device slept mid-transfer; resume
	StateDownloaded: {StateUpdating},                 // Update executed
	StateUpdating:   {StateVerifying},                // the device registered again
	StateVerifying:  {StateSucceeded},                // failed via the common rule
	StateFailed:     {StateQueued},                   // a new attempt
	StateSucceeded:  nil,
	StateCancelled:  nil,
}

// allowed reports whether the table allows from -> to.
func allowed(from, to State) bool {
	if !from.Terminal() && from.Valid() && (to == StateFailed || to == StateCancelled) {
		return true
	}
	for _, s := range next[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Allowed lists the states from may move to, in the order of States.
func Allowed(from State) []State {
	var out []State
	for _, s := range States {
		if allowed(from, s) {
			out = append(out, s)
		}
	}
	return out
}
