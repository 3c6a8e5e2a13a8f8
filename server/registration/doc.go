// Package registration implements the LwM2M Registration interface (/rd): Register, Update and
// De-register, lifetime expiry, and the in-memory index of registered devices backed by a Store.
package registration
