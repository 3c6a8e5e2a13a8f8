// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

// Package ccm implements a CCM, Counter with CBC-MAC
// as per RFC 3610.
//
// See https://tools.ietf.org/html/rfc3610
//
// This code was lifted from https://github.com/bocajim/dtls/blob/a3300364a283fcb490d28a93d7fcfa7ba437fbbe/ccm/ccm.go
// and as such was not written by the Pions authors. Like Pions this
// code is licensed under MIT.
//
// A request for including CCM into the Go standard library
// can be found as issue #27484 on the https://github.com/golang/go/
// repository.
package ccm

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"unsafe"
)

// ccm represents a Counter with CBC-MAC with a specific key.
type ccm struct {
	b cipher.Block
	M uint8
	L uint8
	// aesni: Seal and Open run lwota patch 14's assembly with the AES-128 key schedule xk
	// instead of calling b block by block (NewAESCCM, amd64 with AES-NI); b is then nil.
	aesni bool
	xk    [aes128Words]uint32
}

const ccmBlockSize = 16

// CCM is a block cipher in Counter with CBC-MAC mode.
// Providing authenticated encryption with associated data via the cipher.AEAD interface.
type CCM interface {
	cipher.AEAD
	// MaxLength returns the maxium length of plaintext in calls to Seal.
	// The maximum length of ciphertext in calls to Open is MaxLength()+Overhead().
	// The maximum length is related to CCM's `L` parameter (15-noncesize) and
	// is 1<<(8*L) - 1 (but also limited by the maxium size of an int).
	MaxLength() int
}

var (
	errInvalidBlockSize = errors.New("ccm: NewCCM requires 128-bit block cipher")
	errInvalidTagSize   = errors.New("ccm: tagsize must be 4, 6, 8, 10, 12, 14, or 16")
	errInvalidNonceSize = errors.New("ccm: invalid nonce size")
)

// NewCCM returns the given 128-bit block cipher wrapped in CCM.
// The tagsize must be an even integer between 4 and 16 inclusive
// and is used as CCM's `M` parameter.
// The noncesize must be an integer between 7 and 13 inclusive,
// 15-noncesize is used as CCM's `L` parameter.
func NewCCM(b cipher.Block, tagsize, noncesize int) (CCM, error) {
	if b.BlockSize() != ccmBlockSize {
		return nil, errInvalidBlockSize
	}
	c, err := newCCM(tagsize, noncesize)
	if err != nil {
		return nil, err
	}
	c.b = b

	return c, nil
}

// newCCM checks CCM's parameters and returns a ccm without its cipher (lwota patch 14).
func newCCM(tagsize, noncesize int) (*ccm, error) {
	if tagsize < 4 || tagsize > 16 || tagsize&1 != 0 {
		return nil, errInvalidTagSize
	}
	lensize := 15 - noncesize
	if lensize < 2 || lensize > 8 {
		return nil, errInvalidNonceSize
	}

	return &ccm{M: uint8(tagsize), L: uint8(lensize)}, nil //nolint:gosec // G114
}

func (c *ccm) NonceSize() int { return 15 - int(c.L) }
func (c *ccm) Overhead() int  { return int(c.M) }
func (c *ccm) MaxLength() int { return maxlen(c.L, c.Overhead()) }

func maxlen(l uint8, tagsize int) int {
	mLen := (uint64(1) << (8 * l)) - 1
	if m64 := uint64(math.MaxInt64) - uint64(tagsize); l > 8 || mLen > m64 { //nolint:gosec // G114
		mLen = m64 // The maximum lentgh on a 64bit arch
	}
	if mLen != uint64(int(mLen)) { //nolint:gosec // G114
		return math.MaxInt32 - tagsize // We have only 32bit int's
	}

	return int(mLen) //nolint:gosec // G114
}

// MaxNonceLength returns the maximum nonce length for a given plaintext length.
// A return value <= 0 indicates that plaintext length is too large for
// any nonce length.
func MaxNonceLength(pdatalen int) int {
	const tagsize = 16
	for L := 2; L <= 8; L++ {
		if maxlen(uint8(L), tagsize) >= pdatalen { //nolint:gosec // G115
			return 15 - L
		}
	}

	return 0
}

// cbcRound XORs one block of data into mac and encrypts it (CBC-MAC).
func (c *ccm) cbcRound(mac *[ccmBlockSize]byte, data []byte) {
	// lwota patch 3: two 64-bit XORs instead of a loop of sixteen byte XORs.
	binary.LittleEndian.PutUint64(mac[:8], binary.LittleEndian.Uint64(mac[:8])^binary.LittleEndian.Uint64(data[:8]))
	binary.LittleEndian.PutUint64(mac[8:], binary.LittleEndian.Uint64(mac[8:])^binary.LittleEndian.Uint64(data[8:16]))
	c.b.Encrypt(mac[:], mac[:])
}

func (c *ccm) cbcData(mac *[ccmBlockSize]byte, data []byte) {
	for len(data) >= ccmBlockSize {
		c.cbcRound(mac, data[:ccmBlockSize])
		data = data[ccmBlockSize:]
	}
	if len(data) > 0 {
		var block [ccmBlockSize]byte
		copy(block[:], data)
		c.cbcRound(mac, block[:])
	}
}

var errPlaintextTooLong = errors.New("ccm: plaintext too large")

// tag computes the CBC-MAC of nonce, adata and plaintext into mac (RFC 3610 section 2.2); the
// first M bytes are the unencrypted tag. lwota patch 3: it writes into the caller's array
// rather than returning a slice of its own, so Seal and Open allocate no tag.
func (c *ccm) tag(mac *[ccmBlockSize]byte, nonce, plaintext, adata []byte) error {
	if err := c.b0(mac, nonce, len(plaintext), len(adata)); err != nil {
		return err
	}
	c.b.Encrypt(mac[:], mac[:])

	if len(adata) > 0 {
		var block [ccmBlockSize]byte
		i := adataHead(&block, adata)
		c.cbcRound(mac, block[:])
		c.cbcData(mac, adata[i:])
	}

	if len(plaintext) > 0 {
		c.cbcData(mac, plaintext)
	}

	return nil
}

// b0 sets mac to the first block of the CBC-MAC, B_0: flags, nonce and the payload length.
func (c *ccm) b0(mac *[ccmBlockSize]byte, nonce []byte, plen, alen int) error {
	*mac = [ccmBlockSize]byte{}
	if alen > 0 {
		mac[0] |= 1 << 6
	}
	mac[0] |= (c.M - 2) << 2
	mac[0] |= c.L - 1
	if len(nonce) != c.NonceSize() {
		return errInvalidNonceSize
	}
	if plen > c.MaxLength() {
		return errPlaintextTooLong
	}
	binary.BigEndian.PutUint64(mac[ccmBlockSize-8:], uint64(plen)) //nolint:gosec // G115
	copy(mac[1:ccmBlockSize-c.L], nonce)

	return nil
}

// adataHead fills block, zeroed, with the encoded length of adata and as much of adata as fits
// after it, and returns how much of adata that is.
func adataHead(block *[ccmBlockSize]byte, adata []byte) int {
	// First adata block includes adata length
	// RFC 3610 section 2.2, NIST SP 800-38C A.2.2: lengths of 0xff00 and
	// above are marked with 0xff 0xfe (4-byte length) or 0xff 0xff
	// (8-byte length).
	adataLength := uint64(len(adata))
	i := 2
	switch {
	case adataLength <= 0xfeff:
		binary.BigEndian.PutUint16(block[:i], uint16(adataLength))
	case adataLength < uint64(1<<32):
		binary.BigEndian.PutUint16(block[0:2], 0xfffe)
		i = 2 + 4
		binary.BigEndian.PutUint32(block[2:i], uint32(adataLength)) //nolint:gosec // G115
	default:
		binary.BigEndian.PutUint16(block[0:2], 0xffff)
		i = 2 + 8
		binary.BigEndian.PutUint64(block[2:i], adataLength)
	}

	return copy(block[i:], adata)
}

// sliceForAppend takes a slice and a requested number of bytes. It returns a
// slice with the contents of the given slice followed by that many bytes and a
// second slice that aliases into it and contains only the extra bytes. If the
// original slice has sufficient capacity then no allocation is performed.
// From crypto/cipher/gcm.go
// .
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]

	return
}

// shortCTR is the longest payload whose CTR key stream ccm computes itself, block by block
// (lwota patch 12). cipher.NewCTR copies the key schedule into a new stream of about 512
// bytes, which costs more than encrypting up to 16 counter blocks one by one; a longer payload
// still gets cipher.NewCTR's stream, whose assembly encrypts 8 blocks at a time. A DTLS record
// of a CoAP request (tens of bytes) is short; a 1 KiB Block2 answer is not.
const shortCTR = 256

// scratch is the memory one Seal or Open hands the block cipher (lwota patch 12): an array
// passed to cipher.Block.Encrypt, an interface method, escapes to the heap, so the tag, S_0
// and the counter block cost an allocation each per record; they now come from a pool.
type scratch struct {
	mac, tag, s0, ctr [ccmBlockSize]byte
	ks                [shortCTR]byte // key stream of a short payload
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// counter sets sc.ctr to the counter block of the first payload block (counter 1) and sc.s0 to
// the key stream block S_0 that encrypts the tag.
func (c *ccm) counter(sc *scratch, nonce []byte) {
	sc.ctr = [ccmBlockSize]byte{}
	sc.ctr[0] = c.L - 1
	copy(sc.ctr[1:ccmBlockSize-c.L], nonce)
	c.b.Encrypt(sc.s0[:], sc.ctr[:])
	sc.ctr[len(sc.ctr)-1] |= 1
}

// xorKeyStream XORs src with the CTR key stream from sc.ctr on into dst, as
// cipher.NewCTR(c.b, sc.ctr[:]).XORKeyStream(dst, src) does; dst and src alias exactly or not
// at all. A short payload needs at most 16 counter blocks, so its counter (the last L >= 2
// bytes, starting at 1) never carries beyond its last byte pair.
func (c *ccm) xorKeyStream(sc *scratch, dst, src []byte) {
	if len(src) > shortCTR {
		cipher.NewCTR(c.b, sc.ctr[:]).XORKeyStream(dst, src)

		return
	}
	ctr := binary.BigEndian.Uint16(sc.ctr[ccmBlockSize-2:])
	for n := 0; n < len(src); n += ccmBlockSize {
		binary.BigEndian.PutUint16(sc.ctr[ccmBlockSize-2:], ctr)
		ctr++
		c.b.Encrypt(sc.ks[n:n+ccmBlockSize], sc.ctr[:])
	}
	subtle.XORBytes(dst, src, sc.ks[:len(src)])
}

// Seal encrypts and authenticates plaintext, authenticates the
// additional data and appends the result to dst, returning the updated
// slice. The nonce must be NonceSize() bytes long and unique for all
// time, for a given key.
// The plaintext must be no longer than MaxLength() bytes long.
//
// The plaintext and dst may alias exactly or not at all.
func (c *ccm) Seal(dst, nonce, plaintext, adata []byte) []byte {
	if c.aesni {
		return c.sealAESNI(dst, nonce, plaintext, adata)
	}
	sc, _ := scratchPool.Get().(*scratch) // lwota patch 12
	defer scratchPool.Put(sc)
	mac := &sc.mac
	if err := c.tag(mac, nonce, plaintext, adata); err != nil {
		// The cipher.AEAD interface doesn't allow for an error return.
		panic(err) // nolint
	}
	c.counter(sc, nonce)
	for i := range int(c.M) {
		mac[i] ^= sc.s0[i]
	}
	ret, out := sliceForAppend(dst, len(plaintext)+int(c.M))
	c.xorKeyStream(sc, out, plaintext)
	copy(out[len(plaintext):], mac[:c.M])

	return ret
}

var (
	errOpen               = errors.New("ccm: message authentication failed")
	errCiphertextTooShort = errors.New("ccm: ciphertext too short")
	errCiphertextTooLong  = errors.New("ccm: ciphertext too long")
)

// Open authenticates and decrypts ciphertext and appends the plaintext to dst. The ciphertext
// and dst may alias exactly or not at all; if authentication fails, the bytes Open wrote to
// dst's spare capacity (the ciphertext itself when they alias) are zeroed, as crypto/cipher's
// GCM does. lwota patch 3: the plaintext is decrypted straight into dst instead of into a
// buffer of its own that was then appended to dst (one allocation and one copy per record).
func (c *ccm) Open(dst, nonce, ciphertext, adata []byte) ([]byte, error) {
	if len(ciphertext) < int(c.M) {
		return nil, errCiphertextTooShort
	}
	if len(ciphertext) > c.MaxLength()+c.Overhead() {
		return nil, errCiphertextTooLong
	}
	if len(nonce) != c.NonceSize() {
		return nil, errInvalidNonceSize
	}
	if c.aesni {
		return c.openAESNI(dst, nonce, ciphertext, adata)
	}
	sc, _ := scratchPool.Get().(*scratch) // lwota patch 12
	defer scratchPool.Put(sc)
	tag := &sc.tag
	copy(tag[:], ciphertext[len(ciphertext)-int(c.M):])
	ciphertext = ciphertext[:len(ciphertext)-int(c.M)]

	ret, out := sliceForAppend(dst, len(ciphertext))
	if inexactOverlap(out, ciphertext) {
		// Decrypting would overwrite ciphertext not yet read: decrypt elsewhere first, as
		// before the patch.
		whole := make([]byte, len(ciphertext)+int(c.M))
		copy(whole[copy(whole, ciphertext):], tag[:c.M])
		plaintext, err := c.Open(nil, nonce, whole, adata)
		if err != nil {
			return nil, err
		}

		return append(dst, plaintext...), nil
	}
	c.counter(sc, nonce)
	c.xorKeyStream(sc, out, ciphertext)
	expected := &sc.mac
	if err := c.tag(expected, nonce, out, adata); err != nil {
		clear(out)

		return nil, err
	}
	for i := range int(c.M) {
		tag[i] ^= sc.s0[i]
	}
	if subtle.ConstantTimeCompare(tag[:c.M], expected[:c.M]) != 1 {
		clear(out) // reveal no plaintext that failed authentication

		return nil, errOpen
	}

	return ret, nil
}

// inexactOverlap reports whether x and y share memory at any non-corresponding index (from
// golang.org/x/crypto/internal/alias).
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}

	return uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) && //nolint:gosec // address comparison only
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1])) //nolint:gosec // address comparison only
}
