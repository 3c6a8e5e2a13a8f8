//go:build !linux

package transport

import "net"

// batchReader exists on Linux only (dtls_batch_linux.go): elsewhere the demultiplexer reads one
// datagram at a time.
type batchReader struct{ singleReader }

func newBatchReader(*net.UDPConn) *batchReader { return nil }
