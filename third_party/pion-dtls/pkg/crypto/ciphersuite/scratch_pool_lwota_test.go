// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ciphersuite

// Tests of lwota patch 40 (LWOTA-PATCHES.md): the AEAD suites take a record's working memory
// from one pool shared by every connection, not from a pool of each connection's own.

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// TestAEADNoncesFitScratch: every AEAD suite's nonce fits the shared scratch's array.
func TestAEADNoncesFitScratch(t *testing.T) {
	for name, n := range map[string]int{"ccm": ccmNonceLength, "gcm": gcmNonceLength, "chacha20poly1305": chachaNonceLength} {
		if n > aeadNonceCap {
			t.Errorf("%s: %d-byte nonce, the scratch holds %d", name, n, aeadNonceCap)
		}
	}
}

// TestAEADConnectionFirstRecordAllocations: a new connection's first record, sealed and opened,
// costs the heap no memory of that connection's own, however many Ps the process runs. With a
// pool per connection (patch 27), the first record allocated the pool's per-P array, 128 bytes
// a P (8 KiB at 64), and a scratch on each side; the collector's emptying the pools made every
// connection pay again.
func TestAEADConnectionFirstRecordAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(64))
	key, iv := bytes.Repeat([]byte{0x42}, 16), []byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name string
		make func() (aeadSuite, error)
	}{
		{"ccm8", func() (aeadSuite, error) { return NewCCM(CCMTagLength8, key, iv, key, iv) }},
		{"gcm", func() (aeadSuite, error) { return NewGCM(key, iv, key, iv) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const conns = 200
			suites := make([]aeadSuite, conns)
			for i := range suites {
				s, err := tc.make()
				if err != nil {
					t.Fatal(err)
				}
				suites[i] = s
			}
			pkt := &recordlayer.RecordLayer{Header: recordlayer.Header{
				ContentType: protocol.ContentTypeApplicationData, Version: protocol.Version1_2,
				Epoch: 1, SequenceNumber: 1, ContentLen: 48,
			}}
			header, err := pkt.Header.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 0, 256)
			record := func(s aeadSuite) {
				raw := append(append(buf[:0], header...), make([]byte, 48)...)
				sealed, err := s.Encrypt(pkt, raw)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Decrypt(recordlayer.Header{}, sealed); err != nil {
					t.Fatal(err)
				}
			}
			record(suites[0]) // the shared pool, once, as any earlier connection would have
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for _, s := range suites[1:] {
				record(s)
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / (conns - 1); per > 256 {
				t.Errorf("a connection's first record allocated %d bytes on the heap at 64 Ps, want none of its own", per)
			}
		})
	}
}
