package lwm2mtest

import (
	"fmt"
	"slices"
	"strings"
)

// Profile is a habit of real clients the simulator can take on: a name for `lwota sim
// --profile`, one line for people, and what it changes in a DeviceConfig.
type Profile struct {
	Doc   string
	Apply func(*DeviceConfig)
}

// Profiles are the device profiles by name. Each one is also a DeviceConfig option, so library
// users set the field and the CLI names the profile; add new ones here (one entry each).
var Profiles = map[string]Profile{
	"stuck-downloading": {
		Doc:   "Object 5 stays in State 1 (Downloading) forever and ignores resets",
		Apply: func(c *DeviceConfig) { c.StuckDownloading = true },
	},
	"push-only": {
		Doc:   "declares /5/0/9 = 1: takes a pushed package only, refuses a Package URI",
		Apply: func(c *DeviceConfig) { c.Delivery = DeliveryPush },
	},
}

// ProfileNames lists the profiles, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(Profiles))
	for n := range Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ApplyProfiles applies a comma-separated list of profile names to c, in order. An unknown
// name fails, listing the valid ones, and leaves c unchanged.
func ApplyProfiles(c *DeviceConfig, list string) error {
	var apply []Profile
	for n := range strings.SplitSeq(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		p, ok := Profiles[n]
		if !ok {
			return fmt.Errorf("lwm2mtest: unknown device profile %q (valid: %s)", n, strings.Join(ProfileNames(), ", "))
		}
		apply = append(apply, p)
	}
	for _, p := range apply {
		p.Apply(c)
	}
	return nil
}
