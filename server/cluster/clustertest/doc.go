// Package clustertest runs several lwota cores on one PostgreSQL database in one process, for
// the cluster's tests: device ownership, handover, drain.
package clustertest
