package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/lwota/lwota/server/cluster"
)

// fakeNodes is a cluster of two nodes in memory.
type fakeNodes struct{ nodes []cluster.NodeInfo }

func (f *fakeNodes) Nodes(context.Context) ([]cluster.NodeInfo, error) { return f.nodes, nil }

func (f *fakeNodes) Drain(_ context.Context, name string, draining bool) (cluster.NodeInfo, error) {
	for i := range f.nodes {
		if f.nodes[i].Name == name {
			f.nodes[i].Draining = draining
			return f.nodes[i], nil
		}
	}
	return cluster.NodeInfo{}, cluster.ErrNodeNotFound
}

func TestClusterNodes(t *testing.T) {
	env := newTestEnv(t, Config{})
	if r := env.do(t, http.MethodGet, "/api/v1/cluster/nodes", ""); r.status != http.StatusNotFound {
		t.Fatalf("without a cluster: %d, want 404", r.status)
	}
	f := &fakeNodes{nodes: []cluster.NodeInfo{{ID: 1, Name: "a", Owned: 3, Alive: true}, {ID: 2, Name: "b", Alive: true}}}
	env.api.WithClusterNodes(f)
	tests := []struct {
		name, method, target, body string
		status                     int
		draining                   bool // node a's flag afterwards
	}{
		{"list", http.MethodGet, "/api/v1/cluster/nodes", "", http.StatusOK, false},
		{"drain", http.MethodPost, "/api/v1/cluster/nodes/a/drain", "", http.StatusOK, true},
		{"resume", http.MethodPost, "/api/v1/cluster/nodes/a/drain", `{"draining": false}`, http.StatusOK, false},
		{"unknown node", http.MethodPost, "/api/v1/cluster/nodes/zz/drain", "", http.StatusNotFound, false},
		{"unknown field", http.MethodPost, "/api/v1/cluster/nodes/a/drain", `{"drain": true}`, http.StatusBadRequest, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.do(t, tc.method, tc.target, tc.body, "Content-Type", "application/json")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if f.nodes[0].Draining != tc.draining {
				t.Errorf("node a draining = %v, want %v", f.nodes[0].Draining, tc.draining)
			}
		})
	}
	r := env.do(t, http.MethodGet, "/api/v1/cluster/nodes", "")
	var out struct {
		Nodes []struct {
			ID    int    `json:"id"`
			Name  string `json:"name"`
			Owned int    `json:"owned_devices"`
		} `json:"nodes"`
	}
	decodeJSON(t, r.body, &out)
	if len(out.Nodes) != 2 || out.Nodes[0].Name != "a" || out.Nodes[0].Owned != 3 {
		t.Errorf("list = %s", r.body)
	}
}
