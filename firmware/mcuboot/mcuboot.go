package mcuboot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

// Layout constants from MCUboot's image format (bootutil/image.h, docs/design.md).
const (
	Magic          = 0x96f3b83d // ih_magic, little-endian at offset 0
	HeaderSize     = 32         // the fixed part of the header; ih_hdr_size may be larger
	tlvInfoMagic   = 0x6907     // unprotected TLV area
	tlvProtMagic   = 0x6908     // protected TLV area, covered by the image hash
	tlvInfoSize    = 4          // it_magic u16, it_tlv_tot u16 (tot includes these 4 bytes)
	tlvHeaderSize  = 4          // it_type u16 (u8 + pad before MCUboot 1.7), it_len u16
	MaxTLVArea     = 64 << 10   // bytes of protected + unprotected TLVs kept in memory
	tlvSHA256      = 0x10
	flagEncrypted  = 0x04 | 0x08 // IMAGE_F_ENCRYPTED_AES128 | _AES256: body is ciphertext
	sha256TLVBytes = sha256.Size
)

// signatureTLVs names the signature TLV types; they are reported, not verified.
var signatureTLVs = map[uint16]string{
	0x20: "RSA2048-PSS",
	0x21: "ECDSA224", // P-224, removed from MCUboot
	0x22: "ECDSA-P256",
	0x23: "RSA3072-PSS",
	0x24: "ED25519",
}

// Detect reports whether prefix starts with the MCUboot image magic. It needs 4 bytes.
func Detect(prefix []byte) bool {
	return len(prefix) >= 4 && binary.LittleEndian.Uint32(prefix) == Magic
}

// Parse reads a whole MCUboot image from r and returns what it says about itself.
func Parse(r io.Reader) (*Info, error) {
	p := NewParser()
	if _, err := io.Copy(p, r); err != nil {
		return nil, err
	}
	return p.Result()
}

// Parser checks an MCUboot image as it streams past: write every byte of the image to it, in
// any chunks, then call Result. Only the TLV area (at most MaxTLVArea bytes) is kept in
// memory. Write fails as soon as the image is known to be bad. A Parser is not safe for
// concurrent use.
type Parser struct {
	state int
	err   error // sticky: the first problem found
	off   int64 // bytes consumed

	hdr    [HeaderSize]byte
	info   Info
	ptlv   uint16 // ih_protect_tlv_size
	remain int64  // bytes left in the current part

	hash hash.Hash // SHA-256 over header, body and protected TLV area
	tlv  []byte    // protected TLV area, then unprotected TLV info and TLVs
	utot int       // it_tlv_tot of the unprotected area, once known
}

// Parser states, in stream order.
const (
	stMagic  = iota // the first 4 bytes: checked at once, so a wrong file fails fast
	stHeader        // the rest of the fixed 32-byte header
	stHdrPad        // ih_hdr_size - 32 bytes, hashed
	stBody          // ih_img_size bytes, hashed
	stProt          // ih_protect_tlv_size bytes: hashed and kept
	stInfo          // the 4-byte unprotected TLV info: kept
	stTLVs          // it_tlv_tot - 4 bytes of unprotected TLVs: kept
	stDone          // nothing more may come
)

var stateNames = [...]string{"header", "header", "header padding", "image body", "protected TLV area", "TLV info", "TLV area", "end"}

// NewParser returns a Parser waiting for the first byte of an image.
func NewParser() *Parser {
	return &Parser{hash: sha256.New(), remain: 4}
}

// Write consumes the next bytes of the image. It fails, and keeps failing, once the image is
// known to be malformed, including any byte after the end of the TLV area.
func (p *Parser) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n := len(b)
	for len(b) > 0 {
		if p.state == stDone {
			p.err = fmt.Errorf("%w: trailing data after the TLV area at offset %d", ErrMalformed, p.off)
			return 0, p.err
		}
		k := int(min(p.remain, int64(len(b))))
		chunk := b[:k]
		switch p.state {
		case stMagic, stHeader:
			copy(p.hdr[p.off:], chunk)
			p.hash.Write(chunk)
		case stHdrPad, stBody:
			p.hash.Write(chunk)
		case stProt:
			p.hash.Write(chunk)
			p.tlv = append(p.tlv, chunk...)
		case stInfo, stTLVs:
			p.tlv = append(p.tlv, chunk...)
		}
		b = b[k:]
		p.off += int64(k)
		p.remain -= int64(k)
		for p.remain == 0 && p.state != stDone {
			if err := p.next(); err != nil {
				p.err = err
				return 0, err
			}
		}
	}
	return n, nil
}

// next ends the current part, checks it, and sets up the following one.
func (p *Parser) next() error {
	switch p.state {
	case stMagic:
		if m := binary.LittleEndian.Uint32(p.hdr[:]); m != Magic {
			return fmt.Errorf("%w: magic %#08x, want %#08x", ErrNotMCUboot, m, Magic)
		}
		p.state, p.remain = stHeader, HeaderSize-4
	case stHeader:
		if err := p.parseHeader(); err != nil {
			return err
		}
		p.state, p.remain = stHdrPad, int64(p.info.HeaderSize)-HeaderSize
	case stHdrPad:
		p.state, p.remain = stBody, int64(p.info.ImageSize)
	case stBody:
		p.state, p.remain = stProt, int64(p.ptlv)
	case stProt:
		if p.ptlv > 0 {
			if err := p.checkProtected(); err != nil {
				return err
			}
		}
		p.state, p.remain = stInfo, tlvInfoSize
	case stInfo:
		info := p.tlv[len(p.tlv)-tlvInfoSize:]
		magic, tot := binary.LittleEndian.Uint16(info), binary.LittleEndian.Uint16(info[2:])
		switch {
		case magic == tlvProtMagic && p.ptlv == 0:
			return fmt.Errorf("%w: protected TLV area present but ih_protect_tlv_size is 0", ErrMalformed)
		case magic != tlvInfoMagic:
			return fmt.Errorf("%w: TLV info magic %#04x at offset %d, want %#04x", ErrMalformed, magic, p.off-tlvInfoSize, tlvInfoMagic)
		case tot < tlvInfoSize:
			return fmt.Errorf("%w: TLV area length %d is shorter than its own info", ErrMalformed, tot)
		case int(p.ptlv)+int(tot) > MaxTLVArea:
			return fmt.Errorf("%w: TLV area of %d bytes exceeds the %d-byte limit", ErrMalformed, int(p.ptlv)+int(tot), MaxTLVArea)
		}
		p.utot = int(tot)
		p.state, p.remain = stTLVs, int64(tot)-tlvInfoSize
	case stTLVs:
		p.state = stDone
	}
	return nil
}

func (p *Parser) parseHeader() error {
	h := p.hdr[:]
	le := binary.LittleEndian
	p.info = Info{
		LoadAddr:   le.Uint32(h[4:]),
		HeaderSize: le.Uint16(h[8:]),
		ImageSize:  le.Uint32(h[12:]),
		Flags:      le.Uint32(h[16:]),
		Version:    fmt.Sprintf("%d.%d.%d+%d", h[20], h[21], le.Uint16(h[22:]), le.Uint32(h[24:])),
	}
	p.ptlv = le.Uint16(h[10:])
	if p.info.HeaderSize < HeaderSize {
		return fmt.Errorf("%w: ih_hdr_size %d is smaller than the %d-byte header", ErrMalformed, p.info.HeaderSize, HeaderSize)
	}
	if p.ptlv != 0 && p.ptlv < tlvInfoSize {
		return fmt.Errorf("%w: ih_protect_tlv_size %d is shorter than a TLV info", ErrMalformed, p.ptlv)
	}
	if int(p.ptlv) > MaxTLVArea {
		return fmt.Errorf("%w: protected TLV area of %d bytes exceeds the %d-byte limit", ErrMalformed, p.ptlv, MaxTLVArea)
	}
	return nil
}

func (p *Parser) checkProtected() error {
	le := binary.LittleEndian
	magic, tot := le.Uint16(p.tlv), le.Uint16(p.tlv[2:])
	if magic != tlvProtMagic {
		return fmt.Errorf("%w: protected TLV info magic %#04x, want %#04x", ErrMalformed, magic, tlvProtMagic)
	}
	if tot != p.ptlv {
		return fmt.Errorf("%w: protected TLV area length %d, header says %d", ErrMalformed, tot, p.ptlv)
	}
	return nil
}

// tlvRecord is one TLV inside the buffered area.
type tlvRecord struct {
	typ   uint16
	value []byte
}

// walkTLVs splits area (TLVs after a TLV info) into records; they must fill it exactly.
func walkTLVs(area []byte, where string) ([]tlvRecord, error) {
	var out []tlvRecord
	for off := 0; off < len(area); {
		if len(area)-off < tlvHeaderSize {
			return nil, fmt.Errorf("%w: %s: %d stray bytes after the last TLV", ErrMalformed, where, len(area)-off)
		}
		typ, n := binary.LittleEndian.Uint16(area[off:]), int(binary.LittleEndian.Uint16(area[off+2:]))
		off += tlvHeaderSize
		if n > len(area)-off {
			return nil, fmt.Errorf("%w: %s: TLV %#x of %d bytes runs past the end of the area", ErrMalformed, where, typ, n)
		}
		out = append(out, tlvRecord{typ: typ, value: area[off : off+n]})
		off += n
	}
	return out, nil
}

// Result checks what the stream held and returns the image's description. It fails with
// ErrTruncated when the stream ended early, and with ErrHashMismatch when a SHA-256 TLV does not
// match the bytes it covers.
func (p *Parser) Result() (*Info, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.state != stDone {
		if p.off == 0 {
			return nil, fmt.Errorf("%w: empty stream", ErrTruncated)
		}
		return nil, fmt.Errorf("%w: stream ended at offset %d, %d bytes short of the end of the %s", ErrTruncated, p.off, p.remain, stateNames[p.state])
	}

	prot, err := walkTLVs(p.tlv[min(int(p.ptlv), tlvInfoSize):p.ptlv], "protected TLV area")
	if err != nil {
		return nil, err
	}
	unprot, err := walkTLVs(p.tlv[int(p.ptlv)+tlvInfoSize:], "TLV area")
	if err != nil {
		return nil, err
	}

	info := p.info
	digest := p.hash.Sum(nil)
	encrypted := info.Flags&flagEncrypted != 0
	sawHash := false
	for _, t := range append(prot, unprot...) {
		if t.typ == tlvSHA256 {
			if len(t.value) != sha256TLVBytes {
				return nil, fmt.Errorf("%w: SHA-256 TLV of %d bytes", ErrMalformed, len(t.value))
			}
			if !encrypted && !bytes.Equal(t.value, digest) {
				return nil, fmt.Errorf("%w: TLV %x, image %x", ErrHashMismatch, t.value, digest)
			}
			sawHash = true
		}
		if name := signatureName(t); name != "" {
			info.SignatureTLVs = append(info.SignatureTLVs, name)
		}
	}
	// An encrypted image's TLV hashes the plaintext, which this parser never sees.
	info.HashVerified = sawHash && !encrypted
	return &info, nil
}

// signatureName names a signature TLV, or returns "" for other TLVs. Types in MCUboot's
// signature range it does not know are reported by number.
func signatureName(t tlvRecord) string {
	if t.typ == 0x22 && len(t.value) > 72 { // longer than any DER P-256 signature
		return "ECDSA-P384"
	}
	if name, ok := signatureTLVs[t.typ]; ok {
		return name
	}
	if t.typ >= 0x20 && t.typ <= 0x2f && t.typ != 0x25 { // 0x25 SIG_PURE is a flag, not a signature
		return fmt.Sprintf("SIG-%#02x", t.typ)
	}
	return ""
}
