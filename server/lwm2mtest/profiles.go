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

// profiles are the device profiles by name. Each one is also a DeviceConfig option, so library
// users set the field (or ApplyProfiles the name) and the CLI names the profile; add new ones
// here, one entry each.
func profiles() map[string]Profile {
	return map[string]Profile{
		"stuck-downloading": {
			Doc:   "Object 5 stays in State 1 (Downloading) forever and ignores resets",
			Apply: func(c *DeviceConfig) { c.StuckDownloading = true },
		},
		"push-only": {
			Doc:   "declares /5/0/9 = 1: takes a pushed package only, refuses a Package URI",
			Apply: func(c *DeviceConfig) { c.Delivery = DeliveryPush },
		},
		ProfileReportsBySend: {
			Doc: "LwM2M 1.1 client reporting /5/0/3 State and /5/0/5 Update Result by Send (POST /dp), refusing Observe on Object 5",
			Apply: func(c *DeviceConfig) {
				c.FirmwareBySend, c.RefuseFirmwareObserve = true, true
				if c.LwM2MVersion == "" || c.LwM2MVersion == "1.0" {
					c.LwM2MVersion = "1.1" // Send is LwM2M 1.1
				}
			},
		},
		ProfileEmptyDeviceType: {
			Doc:   `answers /3/0/17 Device Type with an empty string ("")`,
			Apply: func(c *DeviceConfig) { c.EmptyDeviceType = true },
		},
		ProfileMbedTLS2RecordVersion: {
			Doc:   "mbed TLS 2.x DTLS client: ClientHello records carry record version fe 00 (needs a PSK)",
			Apply: func(c *DeviceConfig) { *c = ApplyProfileMbedTLS2RecordVersion(*c) },
		},
		ProfileBootstrapNoDiscover: {
			Doc:   "LwM2M 1.0 bootstrap client: answers Bootstrap-Discover with 4.04 (with --bootstrap)",
			Apply: func(c *DeviceConfig) { c.BootstrapDiscoverNotFound = true },
		},
		ProfileBootstrapRefuseFinish: {
			Doc: "refuses Bootstrap-Finish with 4.06 and a diagnostic, as a client finding its configuration inconsistent (with --bootstrap)",
			Apply: func(c *DeviceConfig) {
				c.BootstrapRefuseFinish = "inconsistent configuration: no usable DM server account"
			},
		},
		ProfileNoComposite: {
			Doc:   "LwM2M 1.1 client without Read-/Write-Composite: FETCH and iPATCH are answered 4.05",
			Apply: func(c *DeviceConfig) { c.NoComposite = true },
		},
		ProfileNATRebinding: {
			Doc:   "DTLS client with a connection id whose NAT rebinds (a new source port) after 3 blocks of a coaps:// pull (needs a PSK)",
			Apply: func(c *DeviceConfig) { *c = ApplyProfileNATRebinding(*c) },
		},
		ProfileCIDPadded: {
			Doc:   "mbed TLS client with a connection id: pads its id records' inner plaintext to 16 bytes (pion's client: the handshake's only; needs a PSK)",
			Apply: func(c *DeviceConfig) { *c = ApplyProfileCIDPadded(*c) },
		},
		ProfileGoneAway: {
			Doc:   "registers, then goes silent without a De-register (power cut, NAT mapping gone)",
			Apply: func(c *DeviceConfig) { *c = WithProfileGoneAway(*c) },
		},
	}
}

// LookupProfile returns the profile called name.
func LookupProfile(name string) (Profile, bool) {
	p, ok := profiles()[name]
	return p, ok
}

// ProfileNames lists the profiles, sorted.
func ProfileNames() []string {
	all := profiles()
	names := make([]string, 0, len(all))
	for n := range all {
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
		p, ok := LookupProfile(n)
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
