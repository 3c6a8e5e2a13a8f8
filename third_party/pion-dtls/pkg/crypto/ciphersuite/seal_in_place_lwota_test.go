// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ciphersuite

// Tests of lwota patch 11 (LWOTA-PATCHES.md): the AEAD suites seal a record in the caller's
// buffer when it has room.

import (
	"bytes"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

type aeadSuite interface {
	Encrypt(pkt *recordlayer.RecordLayer, raw []byte) ([]byte, error)
	Decrypt(header recordlayer.Header, in []byte) ([]byte, error)
}

// TestAEADSealInPlace: for every AEAD suite, tag length and a range of payload lengths, a
// record whose buffer has room is sealed in that buffer (no allocation: the result is the
// same memory), to exactly the bytes sealed into a fresh buffer, and it opens to the payload;
// a buffer without room still works as before and is left as it was.
func TestAEADSealInPlace(t *testing.T) {
	key, iv := bytes.Repeat([]byte{0x42}, 16), []byte{1, 2, 3, 4}
	suites := map[string]func() (aeadSuite, aeadSuite){
		"ccm8": func() (aeadSuite, aeadSuite) {
			a, _ := NewCCM(CCMTagLength8, key, iv, key, iv)
			b, _ := NewCCM(CCMTagLength8, key, iv, key, iv)
			return a, b
		},
		"ccm": func() (aeadSuite, aeadSuite) {
			a, _ := NewCCM(CCMTagLength, key, iv, key, iv)
			b, _ := NewCCM(CCMTagLength, key, iv, key, iv)
			return a, b
		},
		"gcm": func() (aeadSuite, aeadSuite) {
			a, _ := NewGCM(key, iv, key, iv)
			b, _ := NewGCM(key, iv, key, iv)
			return a, b
		},
	}
	for name, mk := range suites {
		seal, open := mk()
		for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 100, 1024, 1100} {
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(i*7 + n)
			}
			pkt := &recordlayer.RecordLayer{Header: recordlayer.Header{
				ContentType: protocol.ContentTypeApplicationData, Version: protocol.Version1_2,
				Epoch: 1, SequenceNumber: uint64(n) + 5, ContentLen: uint16(n), //nolint:gosec // G115
			}}
			header, err := pkt.Header.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			exact := append(append(make([]byte, 0, len(header)+n), header...), payload...)
			keep := bytes.Clone(exact)
			want, err := seal.Encrypt(pkt, exact)
			if err != nil {
				t.Fatalf("%s %d: %v", name, n, err)
			}
			if !bytes.Equal(exact, keep) {
				t.Fatalf("%s %d: a buffer without room was changed", name, n)
			}
			roomy := append(make([]byte, 0, len(header)+n+64), exact...)
			got, err := seal.Encrypt(pkt, roomy)
			if err != nil {
				t.Fatalf("%s %d: %v", name, n, err)
			}
			if &got[0] != &roomy[:1][0] {
				t.Fatalf("%s %d: sealed into a new buffer, not the caller's (which has room)", name, n)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s %d: sealed in place to\n%x\nwant\n%x", name, n, got, want)
			}
			plain, err := open.Decrypt(recordlayer.Header{}, bytes.Clone(got))
			if err != nil {
				t.Fatalf("%s %d: open: %v", name, n, err)
			}
			if !bytes.Equal(plain[len(header):], payload) {
				t.Fatalf("%s %d: opened to %x, want %x", name, n, plain[len(header):], payload)
			}
		}
	}
}
