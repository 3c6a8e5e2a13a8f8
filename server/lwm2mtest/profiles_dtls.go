package lwm2mtest

import "net"

// ProfileMbedTLS2RecordVersion is the device profile of a DTLS client built on mbed TLS 2.x with
// its minimum version left at the default: its ClientHello records carry record version fe 00
// (the ClientHello body says fe fd). A server that checks the record version of a ClientHello
// (pion/dtls alone does) drops it silently and the device never connects. Apply it with
// ApplyProfileMbedTLS2RecordVersion; the device also needs PSKIdentity and PSK.
const ProfileMbedTLS2RecordVersion = "mbedtls2-record-version"

// ApplyProfileMbedTLS2RecordVersion returns cfg with the ProfileMbedTLS2RecordVersion habit.
func ApplyProfileMbedTLS2RecordVersion(cfg DeviceConfig) DeviceConfig {
	cfg.ClientHelloRecordVersion = 0xfe00
	return cfg
}

// helloVersionConn is the device's UDP socket under pion's DTLS client: it rewrites the
// record version of every epoch-0 handshake record carrying a ClientHello to version.
type helloVersionConn struct {
	net.PacketConn
	version uint16
}

func (c *helloVersionConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	b := append([]byte(nil), p...)
	for r := b; len(r) >= 13; { // DTLS record header: type, version, epoch, sequence, length
		n := 13 + (int(r[11])<<8 | int(r[12]))
		if n > len(r) {
			break
		}
		if r[0] == 22 && r[3] == 0 && r[4] == 0 && n > 13 && r[13] == 1 { // epoch-0 ClientHello
			r[1], r[2] = byte(c.version>>8), byte(c.version)
		}
		r = r[n:]
	}
	if _, err := c.PacketConn.WriteTo(b, addr); err != nil {
		return 0, err
	}
	return len(p), nil
}
