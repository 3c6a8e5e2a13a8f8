// Package lwm2mtest emulates LwM2M devices on real UDP sockets, for tests, demos and load.
// Each Device is a real LwM2M client of its own: it registers, updates, sleeps and answers device management.
package lwm2mtest
