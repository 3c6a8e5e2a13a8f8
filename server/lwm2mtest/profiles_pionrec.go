package lwm2mtest

// ProfileCIDPadded is the device profile of a DTLS client built on mbed TLS with a connection
// id (RFC 9146): mbed TLS pads the DTLSInnerPlaintext of every record it wraps for the id to a
// multiple of MBEDTLS_SSL_CID_PADDING_GRANULARITY bytes (16 by default; 3.x names it
// MBEDTLS_SSL_CID_TLS1_3_PADDING_GRANULARITY), so the server must find the real content type
// behind the zeros. The simulator's client is pion's, which pads only the handshake records it
// wraps for the id (the encrypted Finished), not application data: the profile covers the
// handshake. Apply it with ApplyProfileCIDPadded; the device also needs PSKIdentity and PSK.
const ProfileCIDPadded = "cid-padded"

// MbedTLSCIDPaddingGranularity is mbed TLS's default padding granularity of id records.
const MbedTLSCIDPaddingGranularity = 16

// ApplyProfileCIDPadded returns cfg with the ProfileCIDPadded habit.
func ApplyProfileCIDPadded(cfg DeviceConfig) DeviceConfig {
	cfg.ConnectionID = true
	if cfg.CIDPaddingGranularity <= 1 {
		cfg.CIDPaddingGranularity = MbedTLSCIDPaddingGranularity
	}
	return cfg
}

// cidPadding returns pion's PaddingLengthGenerator for granularity g: the zeros that make a
// record's inner plaintext (content of n bytes and its one-byte real type) a multiple of g.
func cidPadding(g int) func(n uint) uint {
	return func(n uint) uint {
		gg := uint(g) //nolint:gosec // g > 1, checked by the caller
		return (gg - (n+1)%gg) % gg
	}
}
