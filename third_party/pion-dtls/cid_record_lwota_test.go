// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 31 (LWOTA-PATCHES.md): a connection id record read is unwrapped in place.

import (
	"bytes"
	"math/rand"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// v3115UnwrapCIDRecord is what v3.1.15's handleIncomingPacket made of a decrypted connection id
// record, kept as the reference.
func v3115UnwrapCIDRecord(buf []byte, h *recordlayer.Header) ([]byte, error) {
	ip := &recordlayer.InnerPlaintext{}
	if err := ip.Unmarshal(buf[h.Size():]); err != nil {
		return nil, err
	}
	unpacked := &recordlayer.Header{
		ContentType:    ip.RealType,
		ContentLen:     uint16(len(ip.Content)), //nolint:gosec // G115
		Version:        h.Version,
		Epoch:          h.Epoch,
		SequenceNumber: h.SequenceNumber,
	}
	out, err := unpacked.Marshal()
	if err != nil {
		return nil, err
	}

	return append(out, ip.Content...), nil
}

// TestUnwrapCIDRecordMatchesReference: for random decrypted connection id records (ids of 0 to
// 40 bytes, contents of 0 to 1,200 bytes, any content type, 0 to 40 bytes of padding, contents
// ending in zeros too), the record unwrapped in place is, byte for byte, the one v3.1.15
// rebuilt; an inner plaintext without a content type (all zeros, or empty) fails in both.
func TestUnwrapCIDRecordMatchesReference(t *testing.T) {
	rnd := rand.New(rand.NewSource(31)) //nolint:gosec // test data
	for i := range 3000 {
		cid := make([]byte, rnd.Intn(41))
		rnd.Read(cid)
		content := make([]byte, rnd.Intn(1201))
		rnd.Read(content)
		if i%5 == 0 && len(content) > 0 {
			content[len(content)-1] = 0 // a content that ends in zeros
		}
		realType := byte(rnd.Intn(256))
		if i%7 == 0 {
			realType = 0 // no content type: the zeros run into the content or to the start
		}
		h := &recordlayer.Header{
			ContentType:    protocol.ContentTypeConnectionID,
			Version:        protocol.Version1_2,
			Epoch:          uint16(rnd.Intn(3)), //nolint:gosec // G115
			SequenceNumber: rnd.Uint64() & recordlayer.MaxSequenceNumber,
			ConnectionID:   cid,
		}
		inner := append(append(bytes.Clone(content), realType), make([]byte, rnd.Intn(41))...)
		if i%11 == 0 {
			inner = make([]byte, rnd.Intn(3)) // empty or all padding
		}
		h.ContentLen = uint16(len(inner)) //nolint:gosec // G115
		header, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		record := append(header, inner...)
		want, wantErr := v3115UnwrapCIDRecord(bytes.Clone(record), h)
		got, err := unwrapCIDRecord(record, h)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("record %d: error %v, v3.1.15 %v", i, err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d (%d-byte id, %d-byte content): unwrapped to\n%x\nwant\n%x", i, len(cid), len(content), got, want)
		}
		if err == nil && &got[0] != &record[len(cid)] { // the plain header ends where the content starts
			t.Fatalf("record %d: not unwrapped in the record's own memory", i)
		}
	}
}

// TestCIDRecordsPadded: a client padding its connection id records (PaddingLengthGenerator:
// the handshake's encrypted Finished) completes its handshake with the server, which unwraps
// the padded record in place, and application data goes both ways.
func TestCIDRecordsPadded(t *testing.T) {
	client, server, _ := pskPairCapturingWith(t, TLS_PSK_WITH_AES_128_CCM_8, true, func(c *Config) {
		c.PaddingLengthGenerator = func(uint) uint { return 17 }
	})
	buf := make([]byte, 2048)
	for _, pair := range [][2]*Conn{{client, server}, {server, client}} {
		payload := bytes.Repeat([]byte{0, 7, 0}, 100)
		if _, err := pair[0].Write(payload); err != nil {
			t.Fatal(err)
		}
		_ = pair[1].SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := pair[1].Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], payload) {
			t.Fatalf("read %x, want %x", buf[:n], payload)
		}
	}
}
