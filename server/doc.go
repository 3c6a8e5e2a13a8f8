// Package server is lwota's LwM2M server core: it wires transport, registration, device management
// and observation together, owns their lifecycle, and is what the REST API and firmware layers call.
package server
