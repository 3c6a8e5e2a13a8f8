// Package lwm2m holds the LwM2M data model shared by every part of the server:
// paths, typed values, content-format numbers and the object definitions that type them.
package lwm2m

// MaxEndpointLen is the longest endpoint name a device can register with, in bytes: Register
// carries it as the Uri-Query option "ep=NAME", and a CoAP option value is at most 255 bytes
// (RFC 7252 §5.10), so 255 - len("ep=") = 252.
const MaxEndpointLen = 252
