// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"sync/atomic"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// handshakeSealRoom is the room left after a handshake record sent encrypted (Finished), so that
// the suite seals it where it lies (patch 11): an AEAD suite's explicit nonce and tag, or a CBC
// suite's IV, MAC and padding.
const handshakeSealRoom = 64

// prepareHandshakePacket caches a handshake message sent and makes its records. lwota patch 25:
// v3.1.15 marshalled each message twice (the record for the cache, then the message again to
// fragment it) and built a message that fits one fragment, as most do, in five buffers (the
// fragment's header, the fragment, the record's header, the record, the list of fragments):
// about ten allocations and a second marshalling per message. The message is now marshalled
// once, kept by the cache as it is, and its single record built in one buffer; the bytes sent
// and cached are the same. A message larger than the MTU, or a record wrapped for a connection
// id, takes v3.1.15's way (processHandshakePacket). Called with c.lock held.
func (c *Conn) prepareHandshakePacket(pkt *packet, dtlsHandshake *handshake.Handshake) ([][]byte, error) {
	if pkt.shouldWrapCID {
		if err := c.cacheHandshakePacket(pkt, dtlsHandshake); err != nil {
			return nil, err
		}

		return c.processHandshakePacket(pkt, dtlsHandshake)
	}
	// As cacheHandshakePacket: the message with its header (a whole message: offset 0, the
	// fragment its whole length), which is also the single fragment processHandshakePacket
	// would make of it; the record's type and length as RecordLayer.Marshal sets them.
	raw, err := dtlsHandshake.Marshal()
	if err != nil {
		return nil, err
	}
	pkt.record.Header.ContentType = pkt.record.Content.ContentType()
	pkt.record.Header.ContentLen = uint16(len(raw)) //nolint:gosec // G115
	epoch := pkt.record.Header.Epoch
	c.traceSent(dtlsHandshake.Header.Type, epoch, dtlsHandshake.Header.MessageSequence)
	if err := c.handshakeCache.pushOwned(
		raw, epoch, dtlsHandshake.Header.MessageSequence, dtlsHandshake.Header.Type, c.state.isClient,
	); err != nil {
		return nil, err
	}
	if len(raw)-handshake.HeaderLength > c.maximumTransmissionUnit {
		return c.processHandshakePacket(pkt, dtlsHandshake)
	}

	for len(c.state.localSequenceNumber) <= int(epoch) {
		c.state.localSequenceNumber = append(c.state.localSequenceNumber, uint64(0))
	}
	seq := atomic.AddUint64(&c.state.localSequenceNumber[epoch], 1) - 1
	if seq > recordlayer.MaxSequenceNumber {
		return nil, errSequenceNumberOverflow
	}
	pkt.record.Header = recordlayer.Header{
		Version:        pkt.record.Header.Version,
		ContentType:    pkt.record.Header.ContentType,
		ContentLen:     uint16(len(raw)), //nolint:gosec // G115
		Epoch:          epoch,
		SequenceNumber: seq,
	}
	header, err := pkt.record.Header.Marshal()
	if err != nil {
		return nil, err
	}
	room := 0
	if pkt.shouldEncrypt {
		room = handshakeSealRoom
	}
	rawPacket := append(append(make([]byte, 0, len(header)+len(raw)+room), header...), raw...)
	if pkt.shouldEncrypt {
		if rawPacket, err = c.state.cipherSuite.Encrypt(pkt.record, rawPacket); err != nil {
			return nil, err
		}
	}

	return [][]byte{rawPacket}, nil
}
