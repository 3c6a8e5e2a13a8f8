package server

import (
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/send"
	"github.com/lwota/lwota/server/transport"
)

// Config is the LwM2M core's configuration; each component keeps its own part.
type Config struct {
	// CoAPAddr is the UDP address devices reach (":5683"); port 0 picks a free port.
	CoAPAddr string
	// CoAPSAddr is the UDP address of CoAP over DTLS (":5684"); empty serves no DTLS. It needs
	// the credentials given to SetCredentials.
	CoAPSAddr string
	// AllowNoSec lets devices register over plain CoAP (security mode NoSec). Off, only DTLS
	// peers register, each as the endpoint its PSK identity is bound to.
	AllowNoSec bool
	// ReadDeviceInfo reads a device's identity (Object 3: manufacturer, model, firmware version,
	// device type) in the background after each Register; see registration.Registry.SetInfoReader.
	// Off, the values come only from what the API or firmware updates happen to read.
	ReadDeviceInfo bool
	DTLS           transport.DTLSConfig // PSK is filled from SetCredentials
	Transport      transport.Config
	Registration   registration.Config
	DM             dm.Config
	Send           send.Config // POST /dp (LwM2M 1.1 Send)
}

// DefaultConfig listens on the standard CoAP port with every component's defaults.
func DefaultConfig() Config {
	return Config{
		CoAPAddr:       ":5683",
		CoAPSAddr:      ":5684",
		ReadDeviceInfo: true,
		DTLS:           transport.DefaultDTLSConfig(),
		Transport:      transport.DefaultConfig(),
		Registration:   registration.DefaultConfig(),
		DM:             dm.DefaultConfig(),
		Send:           send.DefaultConfig(),
	}
}
