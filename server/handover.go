package server

import (
	"context"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
)

// Cluster is this node's membership of a cluster, as the core uses it (*cluster.Node implements
// it): only the node owning a device sends it downlinks, and a request for a device another node
// owns is handed over to that node. Without it (one node, SQLite) nothing of this is on the path.
type Cluster interface {
	// Route runs req at the node owning endpoint and reports handled; handled false means this
	// node owns the device (or no live node does) and the request runs here. now: never queue.
	Route(ctx context.Context, endpoint string, req dm.Request, now bool) (*dm.Result, *dm.Pending, bool, error)
	// Owns reports whether this node owns endpoint as far as it knows.
	Owns(endpoint string) bool
	// Heard records that a Register or Update of endpoint was stored here, with its owner row.
	Heard(endpoint string)
	// AdmitRegister refuses Registers while the node drains (registration.Admission).
	registration.Admission
}

// SetCluster makes the core a cluster node: requests for devices owned elsewhere are handed
// over, Local follows ownership, and Registers are refused while the node drains. Call it before
// Run.
func (s *Server) SetCluster(c Cluster) {
	s.cluster = c
	s.registry.SetAdmission(c)
}

// DoHere is Do without the handover: the request runs on this node (for a request another node
// handed over to this one, the owner).
func (s *Server) DoHere(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	return s.doLocal(ctx, endpoint, req)
}

// DoNowHere is DoNow without the handover.
func (s *Server) DoNowHere(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error) {
	return s.doNowLocal(ctx, endpoint, req)
}
