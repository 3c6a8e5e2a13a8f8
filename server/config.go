package server

import (
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Config is the LwM2M core's configuration; each component keeps its own part.
type Config struct {
	// CoAPAddr is the UDP address devices reach (":5683"); port 0 picks a free port.
	CoAPAddr     string
	Transport    transport.Config
	Registration registration.Config
	DM           dm.Config
}

// DefaultConfig listens on the standard CoAP port with every component's defaults.
func DefaultConfig() Config {
	return Config{
		CoAPAddr:     ":5683",
		Transport:    transport.DefaultConfig(),
		Registration: registration.DefaultConfig(),
		DM:           dm.DefaultConfig(),
	}
}
