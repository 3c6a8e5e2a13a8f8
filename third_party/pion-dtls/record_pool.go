// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import "sync"

// lwota patch 9: the plaintext of an application data record (header and payload) is
// marshalled into a pooled buffer rather than a fresh one per record written; the AEAD suites
// encrypt it into a buffer of their own, so without the pool it was garbage at once.

// recordBufSize fits a record of a 1,500-byte MTU with room for a CBC suite's MAC and padding.
const recordBufSize = 1536

var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, recordBufSize); return &b }}

// getRecordBuf returns a pooled buffer of capacity at least n.
func getRecordBuf(n int) *[]byte {
	bp, _ := recordBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		b := make([]byte, 0, max(n, recordBufSize))
		bp = &b
	}
	return bp
}

// putRecordBufs gives back the pooled buffers of pkts, once their datagrams are written.
func putRecordBufs(pkts []*packet) {
	for _, pkt := range pkts {
		if pkt.pooled == nil {
			continue
		}
		putRecordBuf(pkt.pooled)
		pkt.pooled = nil
	}
}

// putRecordBuf gives back a pooled buffer once its datagram is written.
func putRecordBuf(bp *[]byte) {
	if cap(*bp) <= 4*recordBufSize { // an oversized one is left to the collector
		*bp = (*bp)[:0]
		recordBufs.Put(bp)
	}
}
