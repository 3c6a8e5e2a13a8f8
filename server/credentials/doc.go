// Package credentials keeps the DTLS pre-shared keys of devices, sealed at rest with a server key,
// and answers the DTLS handshake's key lookups and the registry's identity-to-endpoint checks.
package credentials
