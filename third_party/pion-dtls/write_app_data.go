// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// lwota patch 28: Conn.Write builds its application data record straight in the pooled buffer
// of patch 9. It went through the general path of handshake flights (writePackets), which
// cost five heap allocations per record: the record and its content (a RecordLayer and an
// ApplicationData, boxed in an interface), the marshalled header, and the two slices listing
// one record and one datagram. The record's header sits in c.appRecord now, under c.lock, and
// is marshalled into the buffer that the suite then seals in place (patch 11); the datagram is
// written as writePackets writes it. The bytes on the wire are the same, connection id or not.

// writeApplicationData writes payload as one application data record of the current epoch.
func (c *Conn) writeApplicationData(ctx context.Context, payload []byte) error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()

	raw, pooled, rAddr, err := c.sealApplicationData(payload)
	if pooled != nil {
		// Given back only once the datagram is written, as writePackets does: raw may be
		// the pooled memory itself (the suite sealed in place).
		defer putRecordBuf(pooled)
	}
	if err != nil {
		return err
	}
	if _, err = c.nextConn.WriteToContext(ctx, raw, rAddr); err != nil {
		if errors.Is(err, context.Canceled) && c.isConnectionClosed() {
			return ErrConnClosed
		}

		return netError(err)
	}

	return nil
}

// sealApplicationData builds and encrypts the record of payload, as processPacket does for a
// packet of an ApplicationData (wrapped for the peer's connection id if it has one, RFC 9146
// §4), and returns it with the pooled buffer to give back (nil if none) and the address to
// send it to.
func (c *Conn) sealApplicationData(payload []byte) ([]byte, *[]byte, net.Addr, error) {
	c.lock.Lock()
	defer c.lock.Unlock()

	epoch := c.state.getLocalEpoch()
	seq, err := c.nextLocalSequenceNumber(epoch)
	if err != nil {
		return nil, nil, nil, err
	}
	cid := c.state.remoteConnectionID
	rec := &c.appRecord
	rec.Header = recordlayer.Header{
		ContentType:    protocol.ContentTypeApplicationData,
		ContentLen:     uint16(len(payload)), //nolint:gosec // G115
		Version:        protocol.Version1_2,
		Epoch:          epoch,
		SequenceNumber: seq,
	}
	if len(cid) > 0 {
		// The DTLSInnerPlaintext: the content, its real type, no padding.
		rec.Header.ContentType = protocol.ContentTypeConnectionID
		rec.Header.ContentLen = uint16(len(payload) + 1) //nolint:gosec // G115
		rec.Header.ConnectionID = cid
	}
	pooled := getRecordBuf(rec.Header.Size() + int(rec.Header.ContentLen))
	raw := appendRecordHeader((*pooled)[:0], &rec.Header)
	raw = append(raw, payload...)
	if len(cid) > 0 {
		raw = append(raw, byte(protocol.ContentTypeApplicationData))
	}
	raw, err = c.state.cipherSuite.Encrypt(rec, raw)
	rec.Header.ConnectionID = nil // the state's, not to be kept here
	if err != nil {
		return nil, pooled, nil, err
	}

	return raw, pooled, c.rAddr, nil
}

// nextLocalSequenceNumber takes the next sequence number of epoch for a record sent. The caller
// holds c.lock.
func (c *Conn) nextLocalSequenceNumber(epoch uint16) (uint64, error) {
	for len(c.state.localSequenceNumber) <= int(epoch) {
		c.state.localSequenceNumber = append(c.state.localSequenceNumber, uint64(0))
	}
	seq := atomic.AddUint64(&c.state.localSequenceNumber[epoch], 1) - 1
	if seq > recordlayer.MaxSequenceNumber {
		// RFC 6347 Section 4.1.0
		// The implementation must either abandon an association or rehandshake
		// prior to allowing the sequence number to wrap.
		return 0, errSequenceNumberOverflow
	}

	return seq, nil
}

// appendRecordHeader appends h as recordlayer.Header.Marshal encodes it, for a sequence number
// that fits 48 bits (nextLocalSequenceNumber's).
func appendRecordHeader(dst []byte, h *recordlayer.Header) []byte {
	dst = append(dst, byte(h.ContentType), h.Version.Major, h.Version.Minor)
	dst = binary.BigEndian.AppendUint16(dst, h.Epoch)
	dst = append(dst, // uint48
		byte(h.SequenceNumber>>40), byte(h.SequenceNumber>>32), byte(h.SequenceNumber>>24),
		byte(h.SequenceNumber>>16), byte(h.SequenceNumber>>8), byte(h.SequenceNumber))
	dst = append(dst, h.ConnectionID...)

	return binary.BigEndian.AppendUint16(dst, h.ContentLen)
}
