// Package cluster makes several lwota nodes on one PostgreSQL database one server: node ids,
// device ownership, and the handover of a device request to the node that owns the device.
package cluster
