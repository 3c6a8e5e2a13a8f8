// Package clustere2e holds the acceptance tests of a cluster: lwota nodes as real processes on
// one PostgreSQL database (and one S3 bucket) behind nginx's UDP balancer, driven by simulated
// devices. It has no code of its own outside its tests; it is a package so that `go test ./...`
// runs these slow tests in parallel with cmd/lwota's.
package clustere2e
