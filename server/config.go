package server

import (
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/send"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/server/transport/tcp"
)

// Config is the LwM2M core's configuration; each component keeps its own part.
type Config struct {
	// CoAPAddr is the UDP address devices reach (":5683"); port 0 picks a free port.
	CoAPAddr string
	// CoAPSAddr is the UDP address of CoAP over DTLS (":5684"); empty serves no DTLS. It needs
	// the credentials given to SetCredentials.
	CoAPSAddr string
	// CoAPTCPAddr is the TCP address of CoAP over TCP (coap+tcp, ":5683"); empty serves none.
	CoAPTCPAddr string
	// CoAPSTCPAddr is the TCP address of CoAP over TLS (coaps+tcp, ":5684"); empty serves none.
	// It needs TLS (lwota's certificate; device certificates are checked when it names CAs).
	CoAPSTCPAddr string
	// AllowNoSec lets devices register over plain CoAP (security mode NoSec). Off, only DTLS
	// peers register, each as the endpoint its PSK identity is bound to.
	AllowNoSec bool
	// ReadDeviceInfo reads a device's identity (Object 3: manufacturer, model, firmware version,
	// device type) in the background after each Register; see registration.Registry.SetInfoReader.
	// Off, the values come only from what the API or firmware updates happen to read.
	ReadDeviceInfo bool
	// DeviceRequestTimeout bounds each request Do sends to an awake device (the API's reads,
	// writes and executes), retransmissions included, so that a device that went away is
	// answered as a timeout within seconds rather than after the whole CoAP exchange lifetime.
	// 0 leaves only dm.Config.ExchangeTimeout. Requests queued for a sleeping device are not
	// bounded by it, nor are the update driver's and the info reader's own requests.
	DeviceRequestTimeout time.Duration
	DTLS                 transport.DTLSConfig // PSK is filled from SetCredentials; Node.Relay from NodeRelayAddr
	Transport            transport.Config
	TCP                  tcp.Config     // CoAP over TCP and TLS
	TLS                  *tcp.TLSConfig // coaps+tcp; needed with CoAPSTCPAddr
	Registration         registration.Config
	DM                   dm.Config
	Send                 send.Config // POST /dp (LwM2M 1.1 Send)

	// NodeRelayAddr is the UDP address of this node's inter-node DTLS relay, listened on when
	// DTLS.Node.ID is set (a node of a cluster): other nodes send it the records whose
	// connection id names this node (transport/dtls_relay.go).
	NodeRelayAddr string
}

// DefaultDeviceRequestTimeout is Config.DeviceRequestTimeout's default: a CoAP request and two
// retransmissions (ACK_TIMEOUT 2-3 s, doubling) fit, a person waiting on the API is not kept long.
const DefaultDeviceRequestTimeout = 10 * time.Second

// DefaultWorkers is the worker count (transport.Config.Workers) of a server's CoAP endpoints.
// A Register or Update holds its worker until the group commit that stores it has committed
// (nothing is acknowledged before it is stored), so the workers bound how many writes one
// commit can gather: with the transport's own default, 4 per core, a batch held at most 8 on a
// 2-core machine and SQLite took 7,000 registrations/s; with 256 it gathers hundreds and took
// 12,000/s in the same run, at less CPU per registration (December 2026, `lwota bench`). A
// waiting worker is a parked goroutine; the datagram queue (transport.Config.QueueSize) keeps
// the transport's default, so memory under a flood does not grow with it.
const DefaultWorkers = 256

// DefaultConfig listens on the standard CoAP port with every component's defaults.
func DefaultConfig() Config {
	tc := transport.DefaultConfig()
	tc.Workers = DefaultWorkers
	return Config{
		CoAPAddr:             ":5683",
		CoAPSAddr:            ":5684",
		ReadDeviceInfo:       true,
		DeviceRequestTimeout: DefaultDeviceRequestTimeout,
		DTLS:                 transport.DefaultDTLSConfig(),
		Transport:            tc,
		TCP:                  tcp.DefaultConfig(),
		Registration:         registration.DefaultConfig(),
		DM:                   dm.DefaultConfig(),
		Send:                 send.DefaultConfig(),
	}
}
