package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

const rootLong = `lwota is a firmware-over-the-air service for LwM2M devices: ` + "`lwota serve`" + ` runs it,
the other commands talk to its REST API.

Every flag of serve, sim and bench has an environment twin: --coap-addr is LWOTA_COAP_ADDR, and
so on. The API commands find their server and token in --server/--token, else LWOTA_SERVER and
LWOTA_TOKEN, else the profile (--profile, LWOTA_CONFIG_PROFILE, or current_profile) of the config file
(--config, LWOTA_CONFIG, else $XDG_CONFIG_HOME/lwota/config.yaml or ~/.config/lwota/config.yaml):

  current_profile: staging
  profiles:
    staging: {server: https://lwota.staging.example, token: lwota_...}

` + exitCodesHelp

// newRootCmd is the lwota command with every subcommand. getenv is the environment the commands
// read (os.Getenv; tests hand in their own).
func newRootCmd(getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:     "lwota",
		Short:   "firmware-over-the-air updates for LwM2M devices",
		Long:    rootLong,
		Version: lwotaVersion(),
		// main prints errors and usage hints once, with the exit status of their class.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noSubcommand,
		RunE:          needSubcommand,
	}
	root.SetVersionTemplate("lwota {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.String("server", defaultServer, "lwota server URL (env LWOTA_SERVER)")
	pf.String("token", "", "API token, sent as Authorization: Bearer (env LWOTA_TOKEN)")
	pf.String("profile", "", "the config file's profile to use (env LWOTA_CONFIG_PROFILE)")
	pf.String("config", "", "the config file (env LWOTA_CONFIG; default $XDG_CONFIG_HOME/lwota/config.yaml)")

	root.AddCommand(
		flagSetCmd("serve", "run the LwM2M server and REST API (embedded defaults: SQLite and images under ./data)",
			func(cmd *cobra.Command, args []string) error { return serve(cmd.Context(), args, cmd.ErrOrStderr()) }),
		flagSetCmd("sim", "emulate LwM2M devices against a server",
			func(cmd *cobra.Command, args []string) error {
				return sim(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}),
		newBenchCmd(),
		newImageCmd(getenv),
		newKeyCmd(getenv),
		newTokenCmd(getenv),
		newCredentialsCmd(getenv),
		newUpdateCmd(getenv),
		newCampaignCmd(getenv),
		newBootstrapCmd(getenv),
		newWebhookCmd(getenv),
		newClusterCmd(getenv),
		newNodeCmd(getenv),
		newDevCmd(getenv),
		&cobra.Command{
			Use:   "version",
			Short: "print the version",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "lwota", lwotaVersion())
				return err
			},
		},
	)
	return root
}

// newBenchCmd is `lwota bench` and its measurements.
func newBenchCmd() *cobra.Command {
	b := flagSetCmd("bench", "measure registration throughput and memory with emulated devices",
		func(cmd *cobra.Command, args []string) error {
			return bench(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		})
	b.AddCommand(
		flagSetCmd("pull", "measure firmware pull (Block2) throughput",
			func(cmd *cobra.Command, args []string) error {
				return benchPullCommand(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}),
		flagSetCmd("dtls", "measure full DTLS PSK handshakes per second",
			func(cmd *cobra.Command, args []string) error {
				return benchDTLSCommand(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}),
		flagSetCmd("bootstrap", "measure bootstraps per second over DTLS PSK against DTLS PSK registrations",
			func(cmd *cobra.Command, args []string) error {
				return benchBootstrapCommand(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}),
		flagSetCmd("cluster", "measure registrations and Block2 blocks per second of 1 node direct, 1 node behind nginx and 3 nodes behind nginx",
			func(cmd *cobra.Command, args []string) error {
				return benchClusterCommand(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}),
		flagSetCmd("campaign", "measure an end-to-end campaign against single-device updates",
			func(cmd *cobra.Command, args []string) error {
				return benchCampaignCommand(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}),
	)
	return b
}

// flagSetCmd is a command that parses its own flags with the standard flag package and their
// LWOTA_* environment twins (serve, sim, bench): cobra hands it the arguments untouched. -h
// prints its flags and is not a failure; a bad flag is a usage error.
func flagSetCmd(name, short string, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:                name + " [flags]",
		Short:              short,
		Long:               short + ".\n\nRun 'lwota " + name + " -h' for its flags; each has an environment twin (--coap-addr is LWOTA_COAP_ADDR).",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
	// `lwota help serve` prints the flag set's own help, as `lwota serve -h` does.
	cmd.SetHelpFunc(func(c *cobra.Command, _ []string) { _ = run(c, []string{"-h"}) })
	return cmd
}

// group makes a command that only holds subcommands: run alone, or with an unknown subcommand,
// it is a usage error; `lwota image help` prints its help.
func group(use, short string, cmds ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: noSubcommand, RunE: needSubcommand}
	g.AddCommand(cmds...)
	return g
}

// noSubcommand refuses arguments that name no subcommand of cmd ("help" asks for the help).
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 && args[0] != "help" {
		return usagef("%sunknown command %q", prefix(cmd), args[0])
	}
	return nil
}

func needSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 { // help
		return cmd.Help()
	}
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Usage()
	return usagef("%sno command given", prefix(cmd))
}

// exactArgs wants n positional arguments, which name what they are ("ENDPOINT JOB_ID").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("%s: unexpected argument %q", name(cmd), args[n])
		}
		if len(args) < n {
			return usagef("%s: give %s", name(cmd), what)
		}
		return nil
	}
}

// noArgs wants no positional argument.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", name(cmd), args[0])
	}
	return nil
}

// name is the command's path without "lwota ", as errors name it: "image push".
func name(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// prefix starts an error of cmd: "image: ", and nothing for lwota itself (main adds "lwota: ").
func prefix(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return name(cmd) + ": "
}

// out is where cmd prints its result.
func out(cmd *cobra.Command) io.Writer { return cmd.OutOrStdout() }
