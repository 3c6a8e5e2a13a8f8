// Command lwota is the lwota firmware-over-the-air service: `lwota serve` runs the LwM2M server and
// its REST API; `lwota sim` emulates devices; `lwota bench` measures a running build; the other
// commands are the REST API's client.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// runMain runs one lwota command line as the process does: an error is printed on stderr (a
// usage error with where to read the usage) and becomes the exit status of its class (exit.go).
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd, err := execute(ctx, args, stdout, stderr, getenv)
	code := exitCode(err)
	if code == exitOK {
		return code
	}
	fmt.Fprintln(stderr, "lwota:", err)
	var ue *usageError
	if errors.As(err, &ue) && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// run runs one lwota command line with the process's environment and returns its error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, err := execute(ctx, args, stdout, stderr, os.Getenv)
	return err
}

// execute runs one lwota command line with getenv as the environment; it returns the command
// that ran (or failed to parse) with the error.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) (*cobra.Command, error) {
	root := newRootCmd(getenv)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContextC(ctx)
}
