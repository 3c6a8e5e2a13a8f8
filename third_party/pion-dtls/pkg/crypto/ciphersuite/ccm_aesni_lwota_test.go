// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ciphersuite

// Test of lwota patch 14 (LWOTA-PATCHES.md): the DTLS CCM suites use ccm.NewAESCCM.

import (
	"bytes"
	"testing"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// TestCCMLongRecordAllocatesAsShort: sealing and opening a 1 KiB record allocates no more than a
// 48-byte one. Before patch 14 the suite built its CCM from a cipher.Block, whose generic path
// allocates a cipher.NewCTR stream for every record longer than 256 bytes.
func TestCCMLongRecordAllocatesAsShort(t *testing.T) {
	if ccmRaceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	key, iv := bytes.Repeat([]byte{0x42}, 16), []byte{1, 2, 3, 4}
	direct, err := ccm.NewAESCCM(key, 8, ccmNonceLength)
	if err != nil {
		t.Fatal(err)
	}
	nonce, plain := make([]byte, ccmNonceLength), make([]byte, 1024)
	work := make([]byte, 0, 1024+8)
	if testing.AllocsPerRun(10, func() { direct.Seal(work, nonce, plain, nil) }) > 0 {
		t.Skip("ccm.NewAESCCM allocates here: no AES-NI")
	}
	for _, tagLen := range []CCMTagLen{CCMTagLength8, CCMTagLength} {
		c, err := NewCCM(tagLen, key, iv, key, iv)
		if err != nil {
			t.Fatal(err)
		}
		allocs := map[int]float64{}
		for _, n := range []int{48, 1024} {
			pkt := &recordlayer.RecordLayer{Header: recordlayer.Header{
				ContentType: protocol.ContentTypeApplicationData, Version: protocol.Version1_2,
				Epoch: 1, SequenceNumber: 9, ContentLen: uint16(n), //nolint:gosec // G115
			}}
			header, err := pkt.Header.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			raw := append(append(make([]byte, 0, len(header)+n+64), header...), make([]byte, n)...)
			sealed, err := c.Encrypt(pkt, bytes.Clone(raw))
			if err != nil {
				t.Fatal(err)
			}
			work := make([]byte, len(sealed), len(sealed)+64)
			allocs[n] = testing.AllocsPerRun(100, func() {
				if _, err := c.Encrypt(pkt, raw); err != nil {
					t.Fatal(err)
				}
				copy(work, sealed)
				if _, err := c.Decrypt(recordlayer.Header{}, work); err != nil {
					t.Fatal(err)
				}
			})
		}
		if allocs[1024] > allocs[48] {
			t.Errorf("tag %d: a 1 KiB record %v allocations to seal and open, a 48-byte one %v", tagLen, allocs[1024], allocs[48])
		}
	}
}
