// Package bootstrap is lwota's LwM2M Bootstrap Server: it answers a device's Bootstrap-Request
// and provisions its Security and Server objects for lwota's DM server from stored configurations.
package bootstrap
