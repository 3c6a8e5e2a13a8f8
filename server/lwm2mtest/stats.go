package lwm2mtest

import (
	"maps"
	"sync"
)

// Op names a device-management operation the device received (LwM2M Core §6.3, §6.4);
// the values match server/dm's Op.
type Op string

// The operations a device answers.
const (
	OpRead            Op = "read"
	OpDiscover        Op = "discover"
	OpWrite           Op = "write"         // replace (PUT)
	OpWritePartial    Op = "write-partial" // partial update (POST to an instance)
	OpWriteAttributes Op = "write-attributes"
	OpExecute         Op = "execute"
	OpCreate          Op = "create"
	OpDelete          Op = "delete"
	OpObserve         Op = "observe"
	OpCancelObserve   Op = "cancel-observe"  // Observe=1 or a Reset to a notification
	OpReadComposite   Op = "read-composite"  // FETCH (composite.go)
	OpWriteComposite  Op = "write-composite" // iPATCH (composite.go)
	// FETCH with Observe 0 and 1 (composite.go)
	OpObserveComposite       Op = "observe-composite"
	OpCancelObserveComposite Op = "cancel-observe-composite"
	OpUnknown                Op = "unknown" // a method LwM2M does not use here
)

// Stats counts what a device did. Requests counts every request received by operation,
// whatever the answer; Errors counts the ones answered 4.xx or 5.xx.
type Stats struct {
	Requests        map[Op]uint64
	Errors          uint64
	Notifications   uint64 // notifications sent, not counting the first answer to Observe
	Sends           uint64 // Send operations (POST /dp) the server accepted
	Registrations   uint64
	Updates         uint64
	Deregistrations uint64
	Executes        uint64 // executes that succeeded
	Reboots         uint64
	Dropped         uint64 // requests ignored while asleep
	CompositePaths  uint64 // paths named by the Read-Composite requests answered 2.05

	// Object 5. A push counts as a download; its blocks count as blocks fetched.
	DownloadsStarted uint64
	BytesDownloaded  uint64
	BlocksFetched    uint64
	ImagesReceived   uint64 // complete packages that passed the checks (State 2)
	UpdatesApplied   uint64
	UpdatesFailed    uint64
	Lost             uint64 // datagrams dropped by Faults.Loss
	Rebinds          uint64 // pull sockets moved to a new port mid-session (RebindAfterBlocks)
}

func (s *Stats) merge(o Stats) {
	if s.Requests == nil {
		s.Requests = map[Op]uint64{}
	}
	for k, v := range o.Requests {
		s.Requests[k] += v
	}
	s.Errors += o.Errors
	s.Notifications += o.Notifications
	s.Registrations += o.Registrations
	s.Updates += o.Updates
	s.Deregistrations += o.Deregistrations
	s.Executes += o.Executes
	s.Reboots += o.Reboots
	s.Dropped += o.Dropped
	s.CompositePaths += o.CompositePaths
	s.DownloadsStarted += o.DownloadsStarted
	s.BytesDownloaded += o.BytesDownloaded
	s.BlocksFetched += o.BlocksFetched
	s.ImagesReceived += o.ImagesReceived
	s.UpdatesApplied += o.UpdatesApplied
	s.UpdatesFailed += o.UpdatesFailed
	s.Lost += o.Lost
	s.Rebinds += o.Rebinds
}

type stats struct {
	mu sync.Mutex
	s  Stats
}

func (st *stats) add(f func(*Stats)) {
	st.mu.Lock()
	if st.s.Requests == nil {
		st.s.Requests = map[Op]uint64{}
	}
	f(&st.s)
	st.mu.Unlock()
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.s
	out.Requests = maps.Clone(st.s.Requests)
	if out.Requests == nil {
		out.Requests = map[Op]uint64{}
	}
	return out
}

// Stats returns a copy of the device's counters.
func (d *Device) Stats() Stats { return d.stats.snapshot() }
