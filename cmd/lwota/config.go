package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// defaultServer is the API the client commands talk to when nothing names one.
const defaultServer = "http://127.0.0.1:8080"

// maxConfigFile caps the config file read; a few profiles are a few hundred bytes.
const maxConfigFile = 1 << 20

// cliConfig is the client's config file, ~/.config/lwota/config.yaml:
//
//	current_profile: staging    # used when neither --profile nor LWOTA_CONFIG_PROFILE names one
//	profiles:
//	  staging: {server: https://lwota.staging.example, token: lwota_...}
//	  prod:    {server: https://lwota.example}
type cliConfig struct {
	CurrentProfile string             `json:"current_profile"`
	Profiles       map[string]profile `json:"profiles"`
}

// profile is one named server and the token for it.
type profile struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// configPath is the file --config names, else LWOTA_CONFIG, else lwota/config.yaml under
// $XDG_CONFIG_HOME or ~/.config. explicit is true when the user named it: then it must exist.
func configPath(flagValue string, getenv func(string) string) (path string, explicit bool) {
	if flagValue != "" {
		return flagValue, true
	}
	if p := getenv("LWOTA_CONFIG"); p != "" {
		return p, true
	}
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "lwota", "config.yaml"), false
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "lwota", "config.yaml"), false
	}
	return "", false
}

// loadConfig reads the config file at path; a missing file that was not named explicitly is an
// empty config. A file that others may read and that holds a token gets a warning on warn: the
// token is a password.
func loadConfig(path string, explicit bool, warn io.Writer) (cliConfig, error) {
	var c cliConfig
	if path == "" {
		return c, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > maxConfigFile {
		return c, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigFile)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 && c.hasToken() {
		fmt.Fprintf(warn, "lwota: warning: %s holds an API token and is readable by others (mode %04o); run chmod 600 %s\n",
			path, st.Mode().Perm(), path)
	}
	return c, nil
}

func (c cliConfig) hasToken() bool {
	for _, p := range c.Profiles {
		if p.Token != "" {
			return true
		}
	}
	return false
}

// connection is where a client command sends its requests.
type connection struct {
	server, token string
}

// resolveConnection picks the server and the token: a flag given on the command line, else its
// environment variable (LWOTA_SERVER, LWOTA_TOKEN), else the profile's value, else the default.
// The profile is --profile, else LWOTA_CONFIG_PROFILE, else the file's current_profile; a profile that
// is named but not in the file is a usage error.
func resolveConnection(cmd *cobra.Command, getenv func(string) string) (connection, error) {
	flagValue := func(name string) (string, bool) {
		f := cmd.Flags().Lookup(name)
		if f == nil || !f.Changed {
			return "", false
		}
		return f.Value.String(), true
	}
	cfgFlag, _ := flagValue("config")
	path, explicit := configPath(cfgFlag, getenv)
	cfg, err := loadConfig(path, explicit, cmd.ErrOrStderr())
	if err != nil {
		return connection{}, err
	}
	name, named := flagValue("profile")
	if !named {
		name = getenv("LWOTA_CONFIG_PROFILE")
		named = name != ""
	}
	if !named {
		name = cfg.CurrentProfile
	}
	var p profile
	if name != "" {
		var ok bool
		if p, ok = cfg.Profiles[name]; !ok {
			names := slices.Sorted(maps.Keys(cfg.Profiles))
			return connection{}, usagef("profile %q is not in %s (profiles: %s)", name, orDash(path), orDash(strings.Join(names, ", ")))
		}
	}
	pick := func(flagName, env, fromProfile, def string) string {
		if v, ok := flagValue(flagName); ok {
			return v
		}
		if v := getenv(env); v != "" {
			return v
		}
		if fromProfile != "" {
			return fromProfile
		}
		return def
	}
	return connection{
		server: pick("server", "LWOTA_SERVER", p.Server, defaultServer),
		token:  pick("token", "LWOTA_TOKEN", p.Token, ""),
	}, nil
}

// apiClient is the client of the command's server and token (resolveConnection). Every command
// that talks to the API gets its client here, so that flags, environment, profiles and the
// config file mean the same everywhere.
func apiClient(cmd *cobra.Command, getenv func(string) string) (*client, error) {
	conn, err := resolveConnection(cmd, getenv)
	if err != nil {
		return nil, err
	}
	return newClient(conn.server, conn.token)
}
