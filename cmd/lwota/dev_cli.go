package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// newDevCmd is `lwota dev`: things a developer runs on one machine.
func newDevCmd(_ func(string) string) *cobra.Command {
	root := group("dev", "run lwota setups on this machine for development")
	var nodes int
	c := &cobra.Command{
		Use:   "cluster",
		Short: "start PostgreSQL, versitygw (S3), nginx (UDP balancer) and lwota nodes on loopback until Ctrl-C",
		Long: "Starts a throwaway PostgreSQL, versitygw (bin/versitygw, built by `make tools`) with a bucket, " +
			"NODES lwota nodes (--cluster, one cluster key, --trusted-proxies 127.0.0.1) and nginx's stream module " +
			"in front of their CoAP and CoAPS ports, all on 127.0.0.1, prints the addresses and an admin token, " +
			"and stops everything on Ctrl-C (or SIGTERM). Needs nginx and libnginx-mod-stream (make deps).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 16 {
				return usagef("--nodes %d: want 1 to 16", nodes)
			}
			ctx := cmd.Context()
			c, err := startLocalCluster(ctx, localClusterConfig{Nodes: nodes, S3: true, Nginx: true,
				Args: []string{"--allow-nosec", "--allow-unsigned", "--trusted-proxies", "127.0.0.1"}})
			if err != nil {
				return fmt.Errorf("dev cluster: %w", err)
			}
			defer c.Close()
			printLocalCluster(cmd.OutOrStdout(), c)
			<-ctx.Done()
			fmt.Fprintln(cmd.OutOrStdout(), "stopping")
			return nil
		},
	}
	c.Flags().IntVar(&nodes, "nodes", 3, "lwota nodes behind nginx")
	root.AddCommand(c)
	return root
}

// printLocalCluster prints where everything of c listens; the first lines are read by tests.
func printLocalCluster(w io.Writer, c *localCluster) {
	fmt.Fprintf(w, "coap: coap://%s\n", c.LB.Addr("coap"))
	fmt.Fprintf(w, "coaps: coaps://%s\n", c.LB.Addr("coaps"))
	for _, n := range c.Nodes {
		fmt.Fprintf(w, "api %s: %s\n", n.Name, n.API)
	}
	fmt.Fprintf(w, "token: %s\n", c.AdminToken)
	fmt.Fprintf(w, "postgres: %s\n", c.DSN)
	fmt.Fprintf(w, "s3: %s bucket %s\n", c.S3.Endpoint, c.S3.Bucket)
	fmt.Fprintf(w, "logs: %s\n", c.Dir)
	fmt.Fprintf(w, "ready: try `lwota sim --server %s --count 10`, then `curl -H 'Authorization: Bearer %s' %s/api/v1/devices`; Ctrl-C stops everything\n",
		c.LB.Addr("coap"), c.AdminToken, c.Nodes[0].API)
}
