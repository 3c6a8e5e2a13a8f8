package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// nodeJSON is a node as GET /cluster/nodes lists it.
type nodeJSON struct {
	ID          uint16    `json:"id"`
	Name        string    `json:"name"`
	ForwardAddr string    `json:"forward_addr"`
	APIURL      string    `json:"api_url"`
	Draining    bool      `json:"draining"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	Owned       int       `json:"owned_devices"`
	Alive       bool      `json:"alive"`
}

// newNodeCmd is `lwota node`: the nodes of a cluster, and draining one (docs/cluster.md).
func newNodeCmd(getenv func(string) string) *cobra.Command {
	root := group("node", "list the nodes of a cluster, drain one before taking it out")

	var listOut *outputFormat
	list := &cobra.Command{Use: "list", Short: "list the nodes with the devices each owns", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			body, err := cl.get(cmd.Context(), "/cluster/nodes")
			if err != nil {
				return fmt.Errorf("node list: %w", err)
			}
			return listOut.print(out(cmd), body, func(w io.Writer) error { return printNodes(w, body) })
		}}
	listOut = addOutputFlag(list, outputTable)

	var (
		drainOut *outputFormat
		wait     bool
		timeout  time.Duration
		poll     time.Duration
		undo     bool
	)
	drain := &cobra.Command{Use: "drain NAME", Short: "stop NAME taking new devices; with --wait, wait until it owns none",
		Args: exactArgs(1, "the node's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait && (timeout <= 0 || poll <= 0) {
				return usagef("--timeout and --poll must be above 0")
			}
			if wait && undo {
				return usagef("--wait waits for a drain; it does not go with --undo")
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			var reqBody io.Reader
			if undo {
				reqBody = strings.NewReader(`{"draining": false}`)
			}
			req, err := cl.newRequest(cmd.Context(), http.MethodPost, "/cluster/nodes/"+url.PathEscape(args[0])+"/drain", reqBody)
			if err != nil {
				return err
			}
			if reqBody != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			body, err := cl.do(req, http.StatusOK)
			if err != nil {
				return fmt.Errorf("node drain %s: %w", args[0], err)
			}
			if !wait {
				return drainOut.print(out(cmd), body, func(w io.Writer) error { return printNodes(w, body) })
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			n, err := waitDrained(ctx, poll, args[0], func(ctx context.Context) ([]byte, error) { return cl.get(ctx, "/cluster/nodes") },
				func(n nodeJSON) { fmt.Fprintf(cmd.ErrOrStderr(), "%s owns %d devices\n", n.Name, n.Owned) })
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("node drain %s: still owns %d devices after %s", args[0], n.Owned, timeout)
			}
			if err != nil {
				return fmt.Errorf("node drain %s: %w", args[0], err)
			}
			b, _ := json.Marshal(n)
			return drainOut.print(out(cmd), b, func(w io.Writer) error { return printNodes(w, b) })
		}}
	drain.Flags().BoolVar(&wait, "wait", false, "wait until the node owns no device (its devices talk to other nodes)")
	drain.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait: give up after this long (exit status 1)")
	drain.Flags().DurationVar(&poll, "poll", 2*time.Second, "with --wait: how often to look")
	drain.Flags().BoolVar(&undo, "undo", false, "resume the node: it takes new devices again")
	drainOut = addOutputFlag(drain, outputTable)
	root.AddCommand(list, drain)
	return root
}

// waitDrained polls the node list every poll until node name owns no device or ctx ends; it
// returns the node as last seen. progress hears every look.
func waitDrained(ctx context.Context, poll time.Duration, name string, get func(context.Context) ([]byte, error), progress func(nodeJSON)) (nodeJSON, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	var last nodeJSON
	for {
		body, err := get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		var v struct {
			Nodes []nodeJSON `json:"nodes"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return last, fmt.Errorf("the server's answer: %w", err)
		}
		found := false
		for _, n := range v.Nodes {
			if n.Name == name {
				last, found = n, true
			}
		}
		if !found {
			return last, fmt.Errorf("no cluster node named %q", name)
		}
		progress(last)
		if last.Owned == 0 {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// printNodes prints a node list, or one node, as lines.
func printNodes(w io.Writer, body []byte) error {
	var v struct {
		nodeJSON
		Nodes []nodeJSON `json:"nodes"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("node: the server's answer: %w", err)
	}
	nodes := v.Nodes
	if v.Name != "" {
		nodes = []nodeJSON{v.nodeJSON}
	}
	for _, n := range nodes {
		state := "up"
		switch {
		case !n.Alive:
			state = "down"
		case n.Draining:
			state = "draining"
		}
		if _, err := fmt.Fprintf(w, "%d\t%s\t%s\towned %d\t%s\n", n.ID, n.Name, state, n.Owned, n.ForwardAddr); err != nil {
			return err
		}
	}
	return nil
}
