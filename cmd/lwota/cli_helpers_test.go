package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// groupRunner runs `lwota <group> args...` as main does, with getenv as the whole environment.
func groupRunner(group string) func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
		_, err := execute(ctx, append([]string{group}, args...), stdout, stderr, getenv)
		return err
	}
}

var (
	imageCmd       = groupRunner("image")
	keyCmd         = groupRunner("key")
	credentialsCmd = groupRunner("credentials")
	updateCmd      = groupRunner("update")
	campaignCmd    = groupRunner("campaign")
)

// parseCreateCampaignFlags parses the flags of `campaign create` and checks them, as the command
// does before it builds the body.
func parseCreateCampaignFlags(args []string, _ io.Writer, _ func(string) string) (createCampaignConfig, error) {
	var c createCampaignConfig
	fs := pflag.NewFlagSet("campaign create", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("campaign create: unexpected argument %q", fs.Arg(0))
	}
	return c, c.check()
}
