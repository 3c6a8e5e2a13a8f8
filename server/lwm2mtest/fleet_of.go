package lwm2mtest

// FleetOf makes a Fleet of devices built one by one (each with its own PSK, say), so that they
// start, count and close together like a NewFleet's.
func FleetOf(devices []*Device) *Fleet {
	return &Fleet{devices: append([]*Device(nil), devices...)}
}
