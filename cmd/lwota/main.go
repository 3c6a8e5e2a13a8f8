// Command lwota is the lwota firmware-over-the-air service: `lwota serve` runs the LwM2M server and
// its REST API; `lwota sim` emulates devices; `lwota bench` measures a running build.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lwota:", err)
		os.Exit(1)
	}
}

const usage = `usage: lwota <command> [flags]

commands:
  serve   run the LwM2M server and REST API (embedded defaults: SQLite and images under ./data)
  sim     emulate LwM2M devices against a server
  bench   measure registration throughput and memory with emulated devices
  image   push, list and show firmware images on a server (CI uploads)
  key     add, list and revoke the signing keys a server trusts
  token   create, list and revoke API tokens (admin)
  credentials  import many devices' DTLS credentials at once (admin)
  update  start, follow and cancel the firmware update of one device
  campaign  create, drive and watch firmware campaigns (rollouts to many devices)
  version print the version

Run 'lwota <command> -h' for the flags of a command. Every flag of serve, sim and bench has an
environment twin: --coap-addr is LWOTA_COAP_ADDR, and so on. image, key, update, campaign,
token and credentials read only LWOTA_SERVER and LWOTA_TOKEN.
`

// version is set by the linker in release builds.
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "sim":
		return sim(ctx, args[1:], stdout, stderr)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "image":
		return imageCmd(ctx, args[1:], stdout, stderr, os.Getenv)
	case "key":
		return keyCmd(ctx, args[1:], stdout, stderr, os.Getenv)
	case "token":
		return tokenCmd(ctx, args[1:], stdout, stderr, os.Getenv)
	case "credentials":
		return credentialsCmd(ctx, args[1:], stdout, stderr, os.Getenv)
	case "update":
		return updateCmd(ctx, args[1:], stdout, stderr, os.Getenv)
	case "campaign":
		return campaignCmd(ctx, args[1:], stdout, stderr, os.Getenv)
	case "cluster":
		c := newClusterCmd(os.Getenv)
		c.SetArgs(args[1:])
		c.SetOut(stdout)
		c.SetErr(stderr)
		return c.ExecuteContext(ctx)
	case "version":
		fmt.Fprintln(stdout, "lwota", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
