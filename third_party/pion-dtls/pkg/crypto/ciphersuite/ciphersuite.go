// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

// Package ciphersuite provides the crypto operations needed for a DTLS CipherSuite
package ciphersuite

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

const (
	// 8 bytes of 0xff.
	// https://datatracker.ietf.org/doc/html/rfc9146#name-record-payload-protection
	seqNumPlaceholder = 0xffffffffffffffff
)

var (
	//nolint:err113
	errNotEnoughRoomForNonce = &protocol.InternalError{Err: errors.New("buffer not long enough to contain nonce")}
	//nolint:err113
	errDecryptPacket = &protocol.TemporaryError{Err: errors.New("failed to decrypt packet")}
	//nolint:err113
	errInvalidMAC = &protocol.TemporaryError{Err: errors.New("invalid mac")}
	//nolint:err113
	errFailedToCast = &protocol.FatalError{Err: errors.New("failed to cast")}
)

// aead provides a generic API to Encrypt/Decrypt DTLS 1.2 Packets.
type aead struct {
	localAEAD     cipher.AEAD
	remoteAEAD    cipher.AEAD
	localWriteIV  []byte
	remoteWriteIV []byte
	nonceLength   int
	tagLength     int
}

// aeadAdditionalDataCap holds the additional data of a record with a connection id of up to
// 255 bytes (RFC 9146 §5: 8 + 1 + 1 + 1 + 2 + 2 + 6 + 255 + 2 = 278), the largest there is.
const aeadAdditionalDataCap = 280

// aeadScratch is the per-record working memory of aead.encrypt and aead.decrypt. lwota patch
// 27: the additional data was a fresh slice per record (a [13]byte or cryptobyte's buffer),
// which moved to the heap because cipher.AEAD's Seal and Open are interface calls; it is
// built in this pooled array now, with the nonce, which was pooled already.
type aeadScratch struct {
	nonce          [aeadNonceCap]byte
	additionalData [aeadAdditionalDataCap]byte
}

// aeadNonceCap holds the nonce of every AEAD suite here: 4 bytes of the write IV and the 8-byte
// explicit nonce (RFC 5288 §3, RFC 6655 §3).
const aeadNonceCap = 12

// aeadScratchPool holds aeadScratch for every connection (lwota patch 40). Patch 27 kept a
// sync.Pool in each connection's aead, whose memory went cold between that connection's
// records: at a thousand connections, decrypt spent more time taking the scratch from it than
// opening the record (LWOTA-PATCHES.md has the profile). Each such pool also
// allocated its own per-P array (128 bytes a P) at its first record, and again after the
// collector emptied it: per connection, GOMAXPROCS × 128 bytes of live memory and the
// allocations to refill it. One pool shared by every connection stays warm in each P's cache.
var aeadScratchPool = sync.Pool{New: func() any { return new(aeadScratch) }} //nolint:gochecknoglobals

// newAEAD creates a generic DTLS AEAD-based Cipher.
func newAEAD(
	localAEAD cipher.AEAD,
	localWriteIV []byte,
	remoteAEAD cipher.AEAD,
	remoteWriteIV []byte,
	nonceLength int,
	tagLength int,
) *aead {
	return &aead{
		localAEAD:     localAEAD,
		localWriteIV:  localWriteIV,
		remoteAEAD:    remoteAEAD,
		remoteWriteIV: remoteWriteIV,
		nonceLength:   nonceLength,
		tagLength:     tagLength,
	}
}

// encrypt encrypts a DTLS RecordLayer message.
func (a *aead) encrypt(pkt *recordlayer.RecordLayer, raw []byte) ([]byte, error) {
	payload := raw[pkt.Header.Size():]
	raw = raw[:pkt.Header.Size()]

	// Get nonce and additional data buffers from pool
	scratch := aeadScratchPool.Get().(*aeadScratch) // nolint:forcetypeassert
	nonce := scratch.nonce[:a.nonceLength]

	copy(nonce, a.localWriteIV[:4])

	// https://www.rfc-editor.org/rfc/rfc9325#name-nonce-reuse-in-tls-12
	seq64 := (uint64(pkt.Header.Epoch) << 48) | (pkt.Header.SequenceNumber & 0x0000ffffffffffff)
	binary.BigEndian.PutUint64(nonce[4:], seq64)

	var additionalData []byte
	if pkt.Header.ContentType == protocol.ContentTypeConnectionID {
		additionalData = appendAEADAdditionalDataCID(scratch.additionalData[:0], &pkt.Header, len(payload))
	} else {
		additionalData = appendAEADAdditionalData(scratch.additionalData[:0], &pkt.Header, len(payload))
	}
	finalSize := len(raw) + 8 + len(payload) + a.tagLength
	var r []byte
	if cap(raw) >= finalSize {
		// lwota patch 11: the record fits the caller's buffer (as the CBC suite, it encrypts
		// in place when there is room): the payload moves up by the explicit nonce and is
		// sealed where it lies, instead of into a buffer allocated per record.
		r = raw[:finalSize]
		plaintext := r[len(raw)+8 : len(raw)+8+len(payload)]
		copy(plaintext, payload) // overlapping: copy moves it like memmove
		copy(r[len(raw):], nonce[4:])
		a.localAEAD.Seal(plaintext[:0], nonce, plaintext, additionalData)
	} else {
		r = make([]byte, finalSize)
		copy(r, raw)
		copy(r[len(raw):], nonce[4:])
		a.localAEAD.Seal(r[len(raw)+8:len(raw)+8], nonce, payload, additionalData)
	}

	// Update recordLayer size to include explicit nonce
	binary.BigEndian.PutUint16(r[pkt.Header.Size()-2:], uint16(len(r)-pkt.Header.Size())) //nolint:gosec //G115

	// Return nonce and additional data buffers to pool
	aeadScratchPool.Put(scratch)

	return r, nil
}

// decrypt decrypts a DTLS RecordLayer message.
func (a *aead) decrypt(header recordlayer.Header, in []byte) ([]byte, error) {
	err := header.Unmarshal(in)
	switch {
	case err != nil:
		return nil, err
	case header.ContentType == protocol.ContentTypeChangeCipherSpec:
		// Nothing to encrypt with ChangeCipherSpec
		return in, nil
	case len(in) <= (8 + header.Size()):
		return nil, errNotEnoughRoomForNonce
	}

	// Get nonce and additional data buffers from pool
	scratch := aeadScratchPool.Get().(*aeadScratch) // nolint:forcetypeassert
	nonce := scratch.nonce[:a.nonceLength]

	copy(nonce[:4], a.remoteWriteIV[:4])
	copy(nonce[4:], in[header.Size():header.Size()+8])
	out := in[header.Size()+8:]

	var additionalData []byte
	if header.ContentType == protocol.ContentTypeConnectionID {
		additionalData = appendAEADAdditionalDataCID(scratch.additionalData[:0], &header, len(out)-a.tagLength)
	} else {
		additionalData = appendAEADAdditionalData(scratch.additionalData[:0], &header, len(out)-a.tagLength)
	}
	out, err = a.remoteAEAD.Open(out[:0], nonce, out, additionalData)
	if err != nil {
		// Return nonce and additional data buffers to pool
		aeadScratchPool.Put(scratch)

		return nil, fmt.Errorf("%w: %v", errDecryptPacket, err) //nolint:errorlint
	}

	// Return nonce and additional data buffers to pool
	aeadScratchPool.Put(scratch)

	return append(in[:header.Size()], out...), nil
}

func generateAEADAdditionalData(h *recordlayer.Header, payloadLen int) []byte {
	return appendAEADAdditionalData(make([]byte, 0, 13), h, payloadLen)
}

// appendAEADAdditionalData appends the additional data of a record (RFC 5246 §6.2.3.3) to dst.
// lwota patch 27: appended to the caller's buffer (aead's pooled scratch) rather than returned
// in a new slice per record.
func appendAEADAdditionalData(dst []byte, h *recordlayer.Header, payloadLen int) []byte {
	// SequenceNumber MUST be set first
	// we only want uint48, clobbering an extra 2 (using uint64, Golang doesn't have uint48)
	dst = binary.BigEndian.AppendUint64(dst, h.SequenceNumber)
	binary.BigEndian.PutUint16(dst[len(dst)-8:], h.Epoch)
	dst = append(dst, byte(h.ContentType), h.Version.Major, h.Version.Minor)

	return binary.BigEndian.AppendUint16(dst, uint16(payloadLen)) //nolint:gosec //G115
}

// generateAEADAdditionalDataCID generates additional data for AEAD ciphers
// according to https://datatracker.ietf.org/doc/html/rfc9146#name-aead-ciphers
func generateAEADAdditionalDataCID(h *recordlayer.Header, payloadLen int) []byte {
	return appendAEADAdditionalDataCID(nil, h, payloadLen)
}

// appendAEADAdditionalDataCID appends the additional data of a connection id record (RFC 9146
// §5) to dst; lwota patch 27, as appendAEADAdditionalData (cryptobyte's builder allocated).
func appendAEADAdditionalDataCID(dst []byte, h *recordlayer.Header, payloadLen int) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seqNumPlaceholder)
	dst = append(dst,
		uint8(protocol.ContentTypeConnectionID),
		uint8(len(h.ConnectionID)), //nolint:gosec //G115
		uint8(protocol.ContentTypeConnectionID),
		h.Version.Major,
		h.Version.Minor,
	)
	dst = binary.BigEndian.AppendUint16(dst, h.Epoch)
	dst = append(dst, // uint48
		byte(h.SequenceNumber>>40), byte(h.SequenceNumber>>32), byte(h.SequenceNumber>>24),
		byte(h.SequenceNumber>>16), byte(h.SequenceNumber>>8), byte(h.SequenceNumber))
	dst = append(dst, h.ConnectionID...)

	return binary.BigEndian.AppendUint16(dst, uint16(payloadLen)) //nolint:gosec //G115
}

// examinePadding returns, in constant time, the length of the padding to remove
// from the end of payload. It also returns a byte which is equal to 255 if the
// padding was valid and 0 otherwise. See RFC 2246, Section 6.2.3.2.
//
// https://github.com/golang/go/blob/039c2081d1178f90a8fa2f4e6958693129f8de33/src/crypto/tls/conn.go#L245
func examinePadding(payload []byte) (toRemove int, good byte) {
	if len(payload) < 1 {
		return 0, 0
	}

	paddingLen := payload[len(payload)-1]
	t := uint(len(payload)-1) - uint(paddingLen) //nolint:gosec //G115
	// if len(payload) >= (paddingLen - 1) then the MSB of t is zero
	good = byte(int32(^t) >> 31) //nolint:gosec //G115

	// The maximum possible padding length plus the actual length field
	toCheck := min(
		// The length of the padded data is public, so we can use an if here
		256, len(payload))

	for i := range toCheck {
		t := uint(paddingLen) - uint(i) //nolint:gosec //G115
		// if i <= paddingLen then the MSB of t is zero
		mask := byte(int32(^t) >> 31) //nolint:gosec //G115
		b := payload[len(payload)-1-i]
		good &^= mask&paddingLen ^ mask&b
	}

	// We AND together the bits of good and replicate the result across
	// all the bits.
	good &= good << 4
	good &= good << 2
	good &= good << 1
	good = uint8(int8(good) >> 7) //nolint:gosec //G115

	toRemove = int(paddingLen) + 1

	return toRemove, good
}
