// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota's patch 25 (LWOTA-PATCHES.md): a handshake message sent is marshalled once and
// a message that fits one fragment is built into one record buffer.

import (
	"bytes"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// handshakeWriteConn is a server connection as the handshake writes with it, with an
// AES_128_CCM_8 suite keyed for the encrypted Finished.
func handshakeWriteConn(t *testing.T, mtu int) *Conn {
	t.Helper()
	suite := cipherSuiteForID(TLS_PSK_WITH_AES_128_CCM_8, nil)
	random := bytes.Repeat([]byte{7}, 32)
	if err := suite.Init(bytes.Repeat([]byte{3}, 48), random, random, false); err != nil {
		t.Fatal(err)
	}
	c := &Conn{maximumTransmissionUnit: mtu, handshakeCache: newHandshakeCache(), log: quietLogger{}}
	c.state.cipherSuite = suite

	return c
}

// serverFlight is a flight of each kind a server sends: ServerHello with extensions and
// ServerHelloDone in epoch 0, Finished encrypted in epoch 1, and a Certificate of 3 KB.
func serverFlight() []*packet {
	suite := uint16(TLS_PSK_WITH_AES_128_CCM_8)
	method := protocol.CompressionMethod{ID: 0} // null
	record := func(epoch uint16, msg handshake.Message, seq uint16, encrypt bool) *packet {
		return &packet{
			record: &recordlayer.RecordLayer{
				Header:  recordlayer.Header{Version: protocol.Version1_2, Epoch: epoch},
				Content: &handshake.Handshake{Header: handshake.Header{MessageSequence: seq}, Message: msg},
			},
			shouldEncrypt: encrypt,
		}
	}

	return []*packet{
		record(0, &handshake.MessageServerHello{
			Version: protocol.Version1_2, CipherSuiteID: &suite, CompressionMethod: &method,
			Extensions: []extension.Extension{
				&extension.UseExtendedMasterSecret{Supported: true},
				&extension.RenegotiationInfo{RenegotiatedConnection: 0},
			},
		}, 1, false),
		record(0, &handshake.MessageCertificate{Certificate: [][]byte{bytes.Repeat([]byte{9}, 3000)}}, 2, false),
		record(0, &handshake.MessageServerHelloDone{}, 3, false),
		record(1, &handshake.MessageFinished{VerifyData: bytes.Repeat([]byte{5}, 12)}, 4, true),
	}
}

// TestPrepareHandshakePacketMatchesReference: each message of a flight gives the records, the
// cached message and the record header v3.1.15's way gives (cacheHandshakePacket, then
// processHandshakePacket), over MTUs that fragment some messages or none.
func TestPrepareHandshakePacketMatchesReference(t *testing.T) {
	for _, mtu := range []int{1200, 500, 40, 2} {
		got, want := handshakeWriteConn(t, mtu), handshakeWriteConn(t, mtu)
		gotFlight, wantFlight := serverFlight(), serverFlight()
		for i := range gotFlight {
			gotRecords, err := got.prepareRawPacket(gotFlight[i])
			if err != nil {
				t.Fatal(err)
			}
			h, ok := wantFlight[i].record.Content.(*handshake.Handshake)
			if !ok {
				t.Fatal("not a handshake")
			}
			if err := want.cacheHandshakePacket(wantFlight[i], h); err != nil {
				t.Fatal(err)
			}
			wantRecords, err := want.processHandshakePacket(wantFlight[i], h)
			if err != nil {
				t.Fatal(err)
			}
			if len(gotRecords) != len(wantRecords) {
				t.Fatalf("mtu %d, message %d: %d records, want %d", mtu, i, len(gotRecords), len(wantRecords))
			}
			for j := range gotRecords {
				if !bytes.Equal(gotRecords[j], wantRecords[j]) {
					t.Fatalf("mtu %d, message %d, record %d:\n%x\nwant\n%x", mtu, i, j, gotRecords[j], wantRecords[j])
				}
			}
			if g, w := gotFlight[i].record.Header, wantFlight[i].record.Header; g.ContentType != w.ContentType ||
				g.ContentLen != w.ContentLen || g.Version != w.Version || g.Epoch != w.Epoch ||
				g.SequenceNumber != w.SequenceNumber || !bytes.Equal(g.ConnectionID, w.ConnectionID) {
				t.Fatalf("mtu %d, message %d: record header %+v, want %+v",
					mtu, i, gotFlight[i].record.Header, wantFlight[i].record.Header)
			}
		}
		if len(got.handshakeCache.cache) != len(want.handshakeCache.cache) {
			t.Fatalf("mtu %d: %d messages cached, want %d", mtu, len(got.handshakeCache.cache), len(want.handshakeCache.cache))
		}
		for i := range got.handshakeCache.cache {
			g, w := got.handshakeCache.cache[i], want.handshakeCache.cache[i]
			if !bytes.Equal(g.data, w.data) || g.typ != w.typ || g.epoch != w.epoch ||
				g.messageSequence != w.messageSequence || g.isClient != w.isClient {
				t.Fatalf("mtu %d: cached message %d is %+v, want %+v", mtu, i, g, w)
			}
		}
	}
}

// TestPrepareHandshakePacketAllocations: a ServerHelloDone sent costs its marshalled message,
// the record's header and buffer and the list of records: 4 allocations (8 without patch 25,
// which marshalled the message twice and built it in five buffers), and an encrypted Finished
// 10, most of them the suite's sealing (17 without patch 25).
func TestPrepareHandshakePacketAllocations(t *testing.T) {
	c := handshakeWriteConn(t, 1200)
	flight := serverFlight()
	for _, m := range []struct {
		pkt *packet
		max float64
	}{{flight[2], 4}, {flight[3], 10}} {
		// The cache keeps the first copy only; later ones are dropped as the same message.
		if _, err := c.prepareRawPacket(m.pkt); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := c.prepareRawPacket(m.pkt); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > m.max {
			h, _ := m.pkt.record.Content.(*handshake.Handshake)
			t.Errorf("%s: %.0f allocations, want at most %.0f", h.Header.Type, allocs, m.max)
		}
	}
}
