package lwm2mtest

// ProfileGoneAway names the habit of a device that registered and then went away without a
// De-register (power cut, NAT mapping gone, out of coverage): lwota still holds a live
// registration, but nothing it sends is answered. DeviceConfig.GoneAfterRegister selects it;
// `lwota sim` may offer it under this name. lwota answers API calls to such a device with 504
// device_timeout after --device-request-timeout.
const ProfileGoneAway = "gone-away"

// WithProfileGoneAway returns cfg with the gone-away habit.
func WithProfileGoneAway(cfg DeviceConfig) DeviceConfig {
	cfg.GoneAfterRegister = true
	return cfg
}

// GoSilent makes the device stop answering from now on: every datagram reaching it is lost and
// it sends no registration Updates by itself.
func (d *Device) GoSilent() {
	f := d.Faults()
	f.Loss, f.NoUpdates = 1, true
	d.SetFaults(f)
}
