package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// The fault and profile flags of `lwota sim` map onto the simulator's Faults and Profiles;
// bad values fail with a message that names the flag (and the valid profiles).
func TestSimFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		faults  lwm2mtest.Faults
		ratio   float64
		loss    float64
		profile string
		err     string // substring; "" for success
	}{
		{name: "defaults", ratio: 1},
		{name: "integrity", args: []string{"--fail", "integrity"}, faults: lwm2mtest.Faults{IntegrityFailure: true}, ratio: 1},
		{name: "download and update, a quarter", args: []string{"--fail", "download,update", "--fail-ratio", "0.25"},
			faults: lwm2mtest.Faults{FailAfterBlocks: 4, UpdateFailure: true}, ratio: 0.25},
		{name: "reboot and loss", args: []string{"--reboot-after-blocks", "40", "--loss", "0.1"},
			faults: lwm2mtest.Faults{RebootAfterBlocks: 40}, ratio: 1, loss: 0.1},
		{name: "profiles", args: []string{"--profile", "push-only,stuck-downloading"}, ratio: 1, profile: "push-only,stuck-downloading"},
		{name: "profile from the environment", env: map[string]string{"LWOTA_PROFILE": "push-only"}, ratio: 1, profile: "push-only"},
		{name: "unknown fault", args: []string{"--fail", "flash"}, err: `--fail "flash": want download, integrity or update`},
		{name: "ratio above 1", args: []string{"--fail-ratio", "1.5"}, err: "--fail-ratio 1.5"},
		{name: "negative ratio", args: []string{"--fail-ratio", "-0.1"}, err: "--fail-ratio -0.1"},
		{name: "loss of 1", args: []string{"--loss", "1"}, err: "--loss 1"},
		{name: "negative reboot", args: []string{"--reboot-after-blocks", "-1"}, err: "--reboot-after-blocks -1"},
		{name: "stdin updates without updates", args: []string{"--stdin-updates"}, err: "--stdin-updates needs --updates 1 or more"},
		{name: "local address", args: []string{"--local-addr", "127.0.0.300"}, err: "local-addr"},
		{name: "unknown profile", args: []string{"--profile", "push-only,nokia-9"},
			err: `unknown device profile "nokia-9" (valid: bootstrap-no-discover, bootstrap-refuse-finish, cid-padded, empty-device-type, gone-away, mbedtls2-record-version, nat-rebinding, no-composite, push-only, reports-by-send, stuck-downloading)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.env != nil {
				getenv = func(k string) string { return tc.env[k] }
			}
			c, err := parseSimFlags(tc.args, io.Discard, getenv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.faults != tc.faults || c.FailRatio != tc.ratio || c.Loss != tc.loss || c.Profile != tc.profile {
				t.Errorf("faults %+v ratio %v loss %v profile %q; want %+v %v %v %q", c.faults, c.FailRatio, c.Loss, c.Profile,
					tc.faults, tc.ratio, tc.loss, tc.profile)
			}
		})
	}
}

// --help documents every fault flag and every profile.
func TestSimHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseSimFlags([]string{"--help"}, &out, func(string) string { return "" })
	if err == nil {
		t.Fatal("--help parsed as a run")
	}
	for _, want := range append([]string{"-fail ", "-fail-ratio", "-loss", "-reboot-after-blocks", "-profile"}, lwm2mtest.ProfileNames()...) {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// --fail-ratio spreads the faulty devices evenly: a quarter of 8 is 2, none is 0, all is all.
func TestFaultyShare(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		want  []int
	}{{0.25, []int{3, 7}}, {0, nil}, {1, []int{0, 1, 2, 3, 4, 5, 6, 7}}, {0.5, []int{1, 3, 5, 7}}} {
		var got []int
		for i := range 8 {
			if faulty(i, tc.ratio) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ratio %v: devices %v, want %v", tc.ratio, got, tc.want)
		}
	}
}
