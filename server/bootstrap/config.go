package bootstrap

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lwota/lwota/server/lwm2m"
)

// Scope says which devices a Config is for.
type Scope string

// The scopes, looked up in this order for a device: its own endpoint name, then one of its labels
// (at provisioning, labels may be set before a device ever registered), then the longest prefix
// of its endpoint name.
const (
	ScopeEndpoint Scope = "endpoint"
	ScopeLabel    Scope = "label"  // Name is "key=value"
	ScopePrefix   Scope = "prefix" // Name is an endpoint-name prefix: a production batch
)

// PSKMode is where the DM PSK written to the device's Security instance comes from.
type PSKMode string

// The PSK modes.
const (
	// PSKNone gives the device NoSec (security mode 3): only for a coap:// server URI.
	PSKNone PSKMode = "none"
	// PSKStored writes the device's DM credential as stored (lwota credentials set / PUT
	// /devices/{ep}/credentials); a device without one is refused.
	PSKStored PSKMode = "stored"
	// PSKGenerate mints a fresh DM key on every bootstrap, writes it and stores it for the DM
	// server once Bootstrap-Finish succeeded: key rotation by re-bootstrap.
	PSKGenerate PSKMode = "generate"
	// PSKX509 gives the device a certificate account (security mode 2) from the configuration's
	// X509: its certificate, the DM server's, and its private key (sealed). Endpoint scope only.
	PSKX509 PSKMode = "x509"
)

// Security modes of the Security object (/0/x/2).
const (
	SecurityPSK         = 0
	SecurityCertificate = 2
	SecurityNoSec       = 3
)

// Config is what one bootstrap writes: the DM server's Security instance (/0/x) and Server
// instance (/1/x). It holds no secret in the clear: PSKs live in the credential stores, and a
// certificate account's private key is sealed with the credential key.
type Config struct {
	Scope Scope  `json:"scope"`
	Name  string `json:"name"` // endpoint name, "key=value" label or prefix

	ServerURI     string  `json:"server_uri"`                  // /0/x/0: coaps://host:5684 or coap://host:5683
	PSK           PSKMode `json:"psk"`                         // where /0/x/3 and /0/x/5 come from
	PSKIdentity   string  `json:"psk_identity,omitempty"`      // PSKGenerate: the identity (default the endpoint name)
	ShortServerID uint16  `json:"short_server_id"`             // /0/x/10 and /1/x/0; default 1
	Lifetime      uint32  `json:"lifetime"`                    // /1/x/1 seconds; default 300
	DefaultPmin   uint32  `json:"default_pmin,omitempty"`      // /1/x/2; 0 leaves it out
	DefaultPmax   uint32  `json:"default_pmax,omitempty"`      // /1/x/3; 0 leaves it out
	Storing       bool    `json:"notification_storing"`        // /1/x/6
	Binding       string  `json:"binding"`                     // /1/x/7; default "U"
	NoDiscover    bool    `json:"no_discover,omitempty"`       // skip Bootstrap-Discover: delete /0 and /1 whole
	ReadBack      bool    `json:"read_back,omitempty"`         // Bootstrap-Read /1/x after the writes (1.1+)
	SecurityID    uint16  `json:"security_instance,omitempty"` // /0/x to write; 0: the lowest the bootstrap account does not hold
	ServerID      uint16  `json:"server_instance,omitempty"`   // /1/x to write; default 0
	// X509 is the certificate account of PSK mode x509; its private key is sealed.
	X509 *X509Account `json:"x509,omitempty"`

	UpdatedAt time.Time `json:"updated_at"`
}

// Defaults of a Config.
const (
	DefaultLifetime = 300
	DefaultSSID     = 1
)

// Normalize fills in defaults and checks c (ErrInvalid). A config without a PSK mode gets
// PSKNone for a coap:// URI and PSKStored for coaps://.
func (c *Config) Normalize() error {
	switch c.Scope {
	case ScopeEndpoint, ScopePrefix:
		if c.Name == "" || len(c.Name) > lwm2m.MaxEndpointLen || !utf8.ValidString(c.Name) {
			return fmt.Errorf("%w: name must be 1 to %d bytes of UTF-8", ErrInvalid, lwm2m.MaxEndpointLen)
		}
	case ScopeLabel:
		k, v, ok := strings.Cut(c.Name, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("%w: a label scope is named key=value", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: scope %q: want endpoint, prefix or label", ErrInvalid, c.Scope)
	}
	u, err := url.Parse(c.ServerURI)
	if err != nil || u.Host == "" || (u.Scheme != "coap" && u.Scheme != "coaps") {
		return fmt.Errorf("%w: server URI %q: want coap://HOST:PORT or coaps://HOST:PORT", ErrInvalid, c.ServerURI)
	}
	if c.PSK == "" && c.X509 != nil {
		c.PSK = PSKX509
	}
	if c.PSK == "" {
		c.PSK = PSKStored
		if u.Scheme == "coap" {
			c.PSK = PSKNone
		}
	}
	switch c.PSK {
	case PSKNone:
		if u.Scheme != "coap" {
			return fmt.Errorf("%w: a coaps:// server needs a key (psk stored or generate)", ErrInvalid)
		}
	case PSKStored, PSKGenerate:
		if u.Scheme != "coaps" {
			return fmt.Errorf("%w: a PSK goes with a coaps:// server URI", ErrInvalid)
		}
	case PSKX509:
		if u.Scheme != "coaps" {
			return fmt.Errorf("%w: a certificate goes with a coaps:// server URI", ErrInvalid)
		}
		if c.Scope != ScopeEndpoint {
			return fmt.Errorf("%w: a certificate account belongs to one endpoint", ErrInvalid)
		}
		if c.X509 == nil || len(c.X509.Certificate) == 0 || (c.X509.SealedKey == nil && len(c.X509.PrivateKey) == 0) {
			return fmt.Errorf("%w: psk x509 needs the device's certificate and private key", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: psk %q: want none, stored, generate or x509", ErrInvalid, c.PSK)
	}
	if c.X509 != nil && c.PSK != PSKX509 {
		return fmt.Errorf("%w: a certificate is given with psk mode %q: want x509", ErrInvalid, c.PSK)
	}
	if c.PSK == PSKStored && c.Scope != ScopeEndpoint {
		return fmt.Errorf("%w: a %s configuration covers many devices: its PSK must be generated", ErrInvalid, c.Scope)
	}
	if len(c.PSKIdentity) > 128 {
		return fmt.Errorf("%w: psk identity over 128 bytes", ErrInvalid)
	}
	if c.ShortServerID == 0 {
		c.ShortServerID = DefaultSSID
	}
	if c.ShortServerID == 65535 {
		return fmt.Errorf("%w: short server id 65535 is reserved", ErrInvalid)
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.DefaultPmax != 0 && c.DefaultPmin > c.DefaultPmax {
		return fmt.Errorf("%w: default pmin above pmax", ErrInvalid)
	}
	if c.Binding == "" {
		c.Binding = "U"
	}
	for _, r := range c.Binding {
		if !strings.ContainsRune("UMHTSNQ", r) {
			return fmt.Errorf("%w: binding %q: letters of U, M, H, T, S, N, Q", ErrInvalid, c.Binding)
		}
	}
	if c.SecurityID == 65535 || c.ServerID == 65535 {
		return fmt.Errorf("%w: instance id 65535 is reserved", ErrInvalid)
	}
	return nil
}
