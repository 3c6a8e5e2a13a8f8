// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"errors"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// lwota patch 31: a connection id record read is unwrapped in place. handleIncomingPacket turned
// a decrypted tls12_cid record into a plain one by copying its content out of the inner
// plaintext (InnerPlaintext.Unmarshal), marshalling a new header and appending the content to
// it: three allocations and two copies of the payload per record, on every record of a
// connection that negotiated an id (RFC 9146), besides the two ids of zeros made to tell the
// parsers (Header.Unmarshal, before and inside the suite's Decrypt) its length.

var errNoInnerContentType = errors.New("inner plaintext holds no content type") //nolint:err113

// zeroConnectionID holds the zeros of connectionIDOfLength; nothing writes to it (the parsers
// point the field they are given into the record instead).
var zeroConnectionID [255]byte //nolint:gochecknoglobals

// connectionIDOfLength returns n zero bytes, the template that tells Header.Unmarshal how long a
// record's connection id is, without allocating for the lengths RFC 9146 allows (up to 255).
func connectionIDOfLength(n int) []byte {
	if n <= len(zeroConnectionID) {
		return zeroConnectionID[:n:n]
	}

	return make([]byte, n)
}

// unwrapCIDRecord turns buf, a decrypted connection id record whose header is h, into the plain
// record of its inner plaintext (RFC 9146 §4: content, real content type, zero padding), as
// v3.1.15's InnerPlaintext.Unmarshal and Header.Marshal made it, in buf's own memory: the
// plain 13-byte header is written over the end of the longer connection id header, just
// before the content, and the result is a slice of buf.
func unwrapCIDRecord(buf []byte, h *recordlayer.Header) ([]byte, error) {
	hs := h.Size()
	if len(buf) < hs {
		return nil, errBufferTooSmall
	}
	inner := buf[hs:]
	i := len(inner) - 1
	for i >= 0 && inner[i] == 0 { // the padding
		i--
	}
	if i < 0 {
		return nil, errNoInnerContentType
	}
	plain := recordlayer.Header{
		ContentType:    protocol.ContentType(inner[i]),
		ContentLen:     uint16(i), //nolint:gosec // G115: a record's length fits
		Version:        h.Version,
		Epoch:          h.Epoch,
		SequenceNumber: h.SequenceNumber,
	}
	start := hs - recordlayer.FixedHeaderSize
	appendRecordHeader(buf[start:start], &plain)

	return buf[start : hs+i], nil
}
