// Package dm sends LwM2M Device Management operations (Read, Write, Execute, Discover, Observe, ...)
// to registered devices, choosing content formats, and queues them durably for sleeping devices.
package dm
