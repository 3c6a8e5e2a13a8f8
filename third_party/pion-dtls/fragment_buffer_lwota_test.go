// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 21 (LWOTA-PATCHES.md): the fragment buffer answers for a record that is
// not a handshake record from its content type, before its size check.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/transport/v5/dpipe"
)

// unfinishedFragment is an epoch 0 handshake record with sequence number seq carrying the
// first n bytes of handshake message msgSeq, which claims to be longer: it never completes.
func unfinishedFragment(seq uint64, msgSeq uint16, n int) []byte {
	rec := make([]byte, recordlayer.FixedHeaderSize+handshake.HeaderLength+n)
	rec[0] = byte(protocol.ContentTypeHandshake)
	rec[1], rec[2] = 0xfe, 0xfd                // DTLS 1.2
	binary.BigEndian.PutUint64(rec[3:11], seq) // epoch 0 in the top two bytes
	binary.BigEndian.PutUint16(rec[11:13], uint16(handshake.HeaderLength+n))
	h := rec[recordlayer.FixedHeaderSize:]
	h[0] = byte(handshake.TypeCertificate)
	putUint24(h[1:4], uint32(2*n)) // message length: twice what is sent
	binary.BigEndian.PutUint16(h[4:6], msgSeq)
	putUint24(h[6:9], 0)          // fragment offset
	putUint24(h[9:12], uint32(n)) // fragment length

	return rec
}

func putUint24(b []byte, v uint32) { b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v) }

// fillFragments are the records (sequence numbers from seq0, message sequence numbers from
// msg0) that fill a fragment buffer to 26 bytes short of fragmentBufferMaxSize: any record of
// 26 bytes or more that push measured against the size would overflow it. 5,000-byte fragments
// fit pion's 8 KiB read buffer.
func fillFragments(seq0 uint64, msg0 uint16) [][]byte {
	var recs [][]byte
	held := 0
	for i := 0; held+5000+25 < fragmentBufferMaxSize; i++ {
		recs = append(recs, unfinishedFragment(seq0+uint64(i), msg0+uint16(i), 5000))
		held += 5000
	}
	last := fragmentBufferMaxSize - held - 26 // held+last+25 < max: accepted, and held+last = max-26

	return append(recs, unfinishedFragment(seq0+uint64(len(recs)), msg0+uint16(len(recs)), last))
}

// TestFragmentBufferFullPassesApplicationData: a non-handshake record is (false, false, nil)
// from push even when the buffer is full; on v3.1.15 it was errFragmentBufferOverflow.
func TestFragmentBufferFullPassesApplicationData(t *testing.T) {
	fb := newFragmentBuffer()
	for i, rec := range fillFragments(0, 1) {
		if _, _, err := fb.push(rec); err != nil {
			t.Fatalf("fragment %d: %v with %d bytes held", i, err, fb.size())
		}
	}
	if fb.size() != fragmentBufferMaxSize-26 {
		t.Fatalf("the buffer holds %d bytes, want %d", fb.size(), fragmentBufferMaxSize-26)
	}
	if _, _, err := fb.push(unfinishedFragment(5000, 5000, 1)); !errors.Is(err, errFragmentBufferOverflow) {
		t.Fatalf("one more handshake fragment: %v, want an overflow (the buffer is full)", err)
	}
	// A record header and 40 bytes of application data.
	appData := append([]byte{byte(protocol.ContentTypeApplicationData), 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 40},
		bytes.Repeat([]byte{0xaa}, 40)...)
	isHandshake, isRetransmit, err := fb.push(appData)
	if isHandshake || isRetransmit || err != nil {
		t.Fatalf("application data record on a full fragment buffer: handshake %v, retransmit %v, %v; want none of them",
			isHandshake, isRetransmit, err)
	}
}

// TestApplicationDataAfterUnfinishedFragments: a peer (or anyone who can send from its
// address: epoch 0 records are not authenticated) that sends 2 MB of handshake fragments that
// never complete to an established connection does not stop its application data. On
// v3.1.15 every record after them was discarded as a fragment buffer overflow.
func TestApplicationDataAfterUnfinishedFragments(t *testing.T) {
	rawA, rawB := dpipe.Pipe()
	ca, cb, err := pipeConn(rawA, rawB)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ca.Close(); _ = cb.Close() }()
	got := make(chan []byte, 16)
	cb.SetApplicationDataHandler(func(p []byte) { got <- bytes.Clone(p) })
	// Sequence numbers far ahead of the handshake's, so that none is a replay; message
	// sequence numbers past the handshake's, so that the buffer keeps them.
	for _, rec := range fillFragments(1000, 100) {
		if _, err := rawA.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	want := []byte("application data after the fragments")
	if _, err := ca.Write(want); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if !bytes.Equal(p, want) {
			t.Fatalf("got %q, want %q", p, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no application data reached the connection after the unfinished fragments")
	}
}
