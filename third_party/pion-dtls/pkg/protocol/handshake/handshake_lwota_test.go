// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package handshake

import (
	"bytes"
	"testing"

	"github.com/pion/dtls/v3/internal/ciphersuite/types"
	"github.com/pion/dtls/v3/pkg/protocol"
)

// TestHandshakeMarshalOneBuffer: Marshal writes the header and the message as the header's own
// Marshal and the message's do, into one buffer (lwota patch 8: a Finished took three
// allocations on v3.1.15, the header and the buffer it was appended to among them; now two,
// one of them the message's own).
func TestHandshakeMarshalOneBuffer(t *testing.T) {
	for _, msg := range []Message{
		&MessageFinished{VerifyData: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		&MessageServerHelloDone{},
		&MessageClientKeyExchange{IdentityHint: []byte("bench-1"), KeyExchangeAlgorithm: types.KeyExchangeAlgorithmPsk},
		&MessageHelloVerifyRequest{Version: protocol.Version1_2, Cookie: bytes.Repeat([]byte{7}, 20)},
	} {
		h := &Handshake{Header: Header{MessageSequence: 5}, Message: msg}
		got, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		body, err := msg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		header, err := (&Header{
			Type: msg.Type(), Length: uint32(len(body)), MessageSequence: 5, FragmentLength: uint32(len(body)), //nolint:gosec
		}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if want := append(header, body...); !bytes.Equal(got, want) {
			t.Errorf("%T: Marshal = %x, want %x", msg, got, want)
		}
		back := Handshake{KeyExchangeAlgorithm: types.KeyExchangeAlgorithmPsk}
		if err := back.Unmarshal(got); err != nil || back.Header.MessageSequence != 5 || back.Header.Type != msg.Type() {
			t.Errorf("%T: Unmarshal of Marshal: %v, header %+v", msg, err, back.Header)
		}
	}

	h := &Handshake{Message: &MessageFinished{VerifyData: make([]byte, 12)}}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := h.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("Marshal of a Finished: %.0f allocations, want at most 2", allocs)
	}
}
