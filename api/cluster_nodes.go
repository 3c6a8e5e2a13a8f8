package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/cluster"
)

// ClusterNodes are the nodes of the cluster (*cluster.Node implements it).
type ClusterNodes interface {
	// Nodes lists the nodes with the devices each owns.
	Nodes(ctx context.Context) ([]cluster.NodeInfo, error)
	// Drain sets or clears a node's draining flag and returns its row; cluster.ErrNodeNotFound.
	Drain(ctx context.Context, name string, draining bool) (cluster.NodeInfo, error)
}

const clusterNodesPath = Prefix + "/cluster/nodes"

// WithClusterNodes serves /cluster/nodes over n. Without it (a single node) the routes answer 404.
func (a *API) WithClusterNodes(n ClusterNodes) *API {
	a.clusterNodes = n
	return a
}

func (a *API) clusterNodeRoutes(e *echo.Echo) {
	e.GET(clusterNodesPath, a.listClusterNodes)
	e.POST(clusterNodesPath+"/:name/drain", a.drainClusterNode)
}

func (a *API) clusterMembers() (ClusterNodes, error) {
	if a.clusterNodes == nil {
		return nil, notFound("this server is not a cluster node (no --cluster)")
	}
	return a.clusterNodes, nil
}

// listClusterNodes: GET /cluster/nodes.
func (a *API) listClusterNodes(c echo.Context) error {
	n, err := a.clusterMembers()
	if err != nil {
		return err
	}
	nodes, err := n.Nodes(c.Request().Context())
	if err != nil {
		return mapError("cluster nodes", err)
	}
	if nodes == nil {
		nodes = []cluster.NodeInfo{}
	}
	return c.JSON(http.StatusOK, struct {
		Nodes []cluster.NodeInfo `json:"nodes"`
	}{nodes})
}

// drainBody is the optional body of POST /cluster/nodes/{name}/drain.
type drainBody struct {
	Draining *bool `json:"draining"`
}

// drainClusterNode: POST /cluster/nodes/{name}/drain; {"draining": false} resumes the node.
func (a *API) drainClusterNode(c echo.Context) error {
	n, err := a.clusterMembers()
	if err != nil {
		return err
	}
	name := c.Param("name")
	body, err := readBody(c)
	if err != nil {
		return err
	}
	draining := true
	if len(strings.TrimSpace(string(body))) > 0 {
		var b drainBody
		if err := decodeStrict(body, &b); err != nil {
			return err
		}
		if b.Draining != nil {
			draining = *b.Draining
		}
	}
	info, err := n.Drain(c.Request().Context(), name, draining)
	if errors.Is(err, cluster.ErrNodeNotFound) {
		return notFound("no cluster node named %q", name)
	}
	if err != nil {
		return mapError("cluster node "+name, err)
	}
	auditNote(c, "draining", map[bool]string{true: "true", false: "false"}[draining])
	return c.JSON(http.StatusOK, info)
}
