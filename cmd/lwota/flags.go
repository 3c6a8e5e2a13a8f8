package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
)

// newFlagSet returns a flag set whose usage names the command. An out that is a flagSetKeeper is
// handed the set too.
func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lwota "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	if k, ok := out.(flagSetKeeper); ok {
		k.keepFlagSet(fs)
	}
	return fs
}

// flagSetKeeper is an output that keeps the flag set written to it: the README test reads a
// command's flags (names, defaults, usage) through it, from the very definitions the command
// parses with, instead of parsing help text.
type flagSetKeeper interface {
	io.Writer
	keepFlagSet(*flag.FlagSet)
}

// parseWithEnv parses args, then fills every flag not given on the command line from its
// environment twin: --coap-addr from LWOTA_COAP_ADDR. The command line wins over the environment.
func parseWithEnv(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, serr)
			}
		}
	})
	return err
}

// envName maps a flag name to its environment variable: coap-addr -> LWOTA_COAP_ADDR.
func envName(flagName string) string {
	return "LWOTA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newLogger builds the process logger from --log-format and --log-level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// prefixFlag is a flag of comma-separated IP prefixes or addresses.
type prefixFlag struct{ p *[]netip.Prefix }

func (f prefixFlag) String() string {
	if f.p == nil {
		return ""
	}
	s := make([]string, len(*f.p))
	for i, p := range *f.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (f prefixFlag) Set(list string) error {
	v, err := parsePrefixes(list)
	if err != nil {
		return err
	}
	*f.p = v
	return nil
}

// parsePrefixes reads a comma-separated list of IP prefixes or single addresses ("10.0.0.0/8,
// 192.0.2.7"); an empty list, or "none" (which an environment variable can hold), is an empty,
// non-nil slice.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	if strings.TrimSpace(list) == "none" {
		return out, nil
	}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP prefix nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
