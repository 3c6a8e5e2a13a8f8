// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ciphersuite

// Tests of lwota patch 27 (LWOTA-PATCHES.md): the AEAD suites build a record's additional data
// in pooled memory, not in a new slice per record.

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"golang.org/x/crypto/cryptobyte"
)

// v3115AdditionalData is v3.1.15's generateAEADAdditionalData, kept as the reference.
func v3115AdditionalData(h *recordlayer.Header, payloadLen int) []byte {
	var additionalData [13]byte
	binary.BigEndian.PutUint64(additionalData[:], h.SequenceNumber)
	binary.BigEndian.PutUint16(additionalData[:], h.Epoch)
	additionalData[8] = byte(h.ContentType)
	additionalData[9] = h.Version.Major
	additionalData[10] = h.Version.Minor
	binary.BigEndian.PutUint16(additionalData[len(additionalData)-2:], uint16(payloadLen)) //nolint:gosec // G115

	return additionalData[:]
}

// v3115AdditionalDataCID is v3.1.15's generateAEADAdditionalDataCID, kept as the reference.
func v3115AdditionalDataCID(h *recordlayer.Header, payloadLen int) []byte {
	var builder cryptobyte.Builder
	builder.AddUint64(seqNumPlaceholder)
	builder.AddUint8(uint8(protocol.ContentTypeConnectionID))
	builder.AddUint8(uint8(len(h.ConnectionID))) //nolint:gosec // G115
	builder.AddUint8(uint8(protocol.ContentTypeConnectionID))
	builder.AddUint8(h.Version.Major)
	builder.AddUint8(h.Version.Minor)
	builder.AddUint16(h.Epoch)
	builder.AddUint48(h.SequenceNumber)
	builder.AddBytes(h.ConnectionID)
	builder.AddUint16(uint16(payloadLen)) //nolint:gosec // G115

	return builder.BytesOrPanic()
}

// TestAEADAdditionalDataMatchesReference: the additional data appended to a buffer is v3.1.15's,
// byte for byte, for random headers, payload lengths and connection ids of every length, and
// whatever the buffer held before.
func TestAEADAdditionalDataMatchesReference(t *testing.T) {
	rnd := rand.New(rand.NewSource(27)) //nolint:gosec // test data
	for i := range 4000 {
		cid := make([]byte, i%256)
		rnd.Read(cid)
		h := &recordlayer.Header{
			ContentType:    protocol.ContentType(rnd.Intn(256)),                                      //nolint:gosec // G115
			Version:        protocol.Version{Major: byte(rnd.Intn(256)), Minor: byte(rnd.Intn(256))}, //nolint:gosec // G115
			Epoch:          uint16(rnd.Intn(1 << 16)),                                                //nolint:gosec // G115
			SequenceNumber: rnd.Uint64() & recordlayer.MaxSequenceNumber,
			ConnectionID:   cid,
		}
		n := rnd.Intn(1 << 16)
		prefix := []byte{0xde, 0xad}
		if got, want := appendAEADAdditionalData(bytes.Clone(prefix), h, n), v3115AdditionalData(h, n); !bytes.Equal(got[2:], want) || !bytes.Equal(got[:2], prefix) {
			t.Fatalf("header %+v, %d bytes: additional data\n%x\nwant\n%x", h, n, got[2:], want)
		}
		if got, want := generateAEADAdditionalData(h, n), v3115AdditionalData(h, n); !bytes.Equal(got, want) {
			t.Fatalf("header %+v, %d bytes: generateAEADAdditionalData %x, want %x", h, n, got, want)
		}
		if got, want := appendAEADAdditionalDataCID(bytes.Clone(prefix), h, n), v3115AdditionalDataCID(h, n); !bytes.Equal(got[2:], want) || !bytes.Equal(got[:2], prefix) {
			t.Fatalf("header %+v, %d bytes: CID additional data\n%x\nwant\n%x", h, n, got[2:], want)
		}
		if len(v3115AdditionalDataCID(h, n)) > aeadAdditionalDataCap {
			t.Fatalf("%d-byte connection id: additional data longer than the scratch's %d bytes", len(cid), aeadAdditionalDataCap)
		}
	}
}

// TestAEADRecordAllocations: sealing a record in a buffer with room and opening it in place
// allocates nothing, CCM_8 and GCM, with and without a connection id (CCM for a short record:
// a long one still builds crypto/cipher's CTR stream, pkg/crypto/ccm). v3.1.15 allocated the
// additional data on each side, since it is handed to cipher.AEAD, an interface.
func TestAEADRecordAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	key, iv := bytes.Repeat([]byte{0x42}, 16), []byte{1, 2, 3, 4}
	ccm8, err := NewCCM(CCMTagLength8, key, iv, key, iv)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := NewGCM(key, iv, key, iv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		suite aeadSuite
		size  int
	}{
		{"ccm8", ccm8, 48},
		{"gcm", gcm, 1024},
	} {
		for _, cid := range [][]byte{nil, {1, 2, 3, 4, 5, 6, 7, 8}} {
			h := recordlayer.Header{
				ContentType: protocol.ContentTypeApplicationData, Version: protocol.Version1_2,
				Epoch: 1, ContentLen: uint16(tc.size), //nolint:gosec // G115
			}
			if cid != nil {
				h.ContentType, h.ConnectionID = protocol.ContentTypeConnectionID, cid
			}
			pkt := &recordlayer.RecordLayer{Header: h}
			header, err := pkt.Header.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 0, 2048)
			var open recordlayer.Header
			if cid != nil {
				open.ConnectionID = make([]byte, len(cid))
			}
			record := func() {
				pkt.Header.SequenceNumber++
				seq := pkt.Header.SequenceNumber
				header[5], header[6], header[7] = byte(seq>>40), byte(seq>>32), byte(seq>>24) // uint48
				header[8], header[9], header[10] = byte(seq>>16), byte(seq>>8), byte(seq)
				raw := append(append(buf[:0], header...), make([]byte, tc.size)...)
				sealed, err := tc.suite.Encrypt(pkt, raw)
				if err != nil {
					t.Fatal(err)
				}
				plain, err := tc.suite.Decrypt(open, sealed)
				if err != nil {
					t.Fatal(err)
				}
				if len(plain) != len(header)+tc.size {
					t.Fatalf("opened %d bytes, want %d", len(plain), len(header)+tc.size)
				}
			}
			record()
			if allocs := testing.AllocsPerRun(200, record); allocs != 0 {
				t.Errorf("%s, %d-byte connection id: %.1f allocations per record sealed and opened, want 0", tc.name, len(cid), allocs)
			}
		}
	}
}
