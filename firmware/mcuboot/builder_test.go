package mcuboot

import (
	"crypto/sha256"
	"encoding/binary"
)

// This file builds MCUboot images from the format, as imgtool lays them out:
// header | padding to hdr_size | body | protected TLV area | TLV info 0x6907 | SHA-256 TLV | other TLVs.

type tlv struct {
	typ   uint16
	value []byte
}

type testImage struct {
	magic    uint32 // 0: Magic
	loadAddr uint32
	hdrSize  uint16 // 0: 32
	flags    uint32
	major    uint8
	minor    uint8
	revision uint16
	build    uint32
	body     []byte
	prot     []tlv // protected TLVs: hashed with the image
	unprot   []tlv // after the SHA-256 TLV
	noSHA    bool  // leave out the SHA-256 TLV

	// Hooks to corrupt the layout after the hash is computed.
	editHeader func(h []byte)
	editTLVs   func(area []byte) []byte // the unprotected TLV area, info included
}

func putTLVs(b []byte, ts []tlv) []byte {
	for _, t := range ts {
		b = binary.LittleEndian.AppendUint16(b, t.typ)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(t.value)))
		b = append(b, t.value...)
	}
	return b
}

func tlvArea(magic uint16, ts []tlv) []byte {
	body := putTLVs(nil, ts)
	area := binary.LittleEndian.AppendUint16(nil, magic)
	area = binary.LittleEndian.AppendUint16(area, uint16(tlvInfoSize+len(body)))
	return append(area, body...)
}

// header returns the header (with padding) and the protected TLV area.
func (im testImage) header() (hdr, prot []byte) {
	le := binary.LittleEndian
	if im.magic == 0 {
		im.magic = Magic
	}
	if im.hdrSize == 0 {
		im.hdrSize = HeaderSize
	}
	if len(im.prot) > 0 {
		prot = tlvArea(tlvProtMagic, im.prot)
	}
	hdr = make([]byte, max(int(im.hdrSize), HeaderSize))
	le.PutUint32(hdr[0:], im.magic)
	le.PutUint32(hdr[4:], im.loadAddr)
	le.PutUint16(hdr[8:], im.hdrSize)
	le.PutUint16(hdr[10:], uint16(len(prot)))
	le.PutUint32(hdr[12:], uint32(len(im.body)))
	le.PutUint32(hdr[16:], im.flags)
	hdr[20], hdr[21] = im.major, im.minor
	le.PutUint16(hdr[22:], im.revision)
	le.PutUint32(hdr[24:], im.build)
	return hdr, prot
}

// trailer returns the unprotected TLV area for an image whose hashed part has digest sum.
func (im testImage) trailer(sum []byte) []byte {
	var ts []tlv
	if !im.noSHA {
		ts = append(ts, tlv{tlvSHA256, sum})
	}
	area := tlvArea(tlvInfoMagic, append(ts, im.unprot...))
	if im.editTLVs != nil {
		area = im.editTLVs(area)
	}
	return area
}

func (im testImage) bytes() []byte {
	hdr, prot := im.header()
	h := sha256.New()
	h.Write(hdr)
	h.Write(im.body)
	h.Write(prot)
	if im.editHeader != nil {
		im.editHeader(hdr)
	}
	out := append(append(append(hdr, im.body...), prot...), im.trailer(h.Sum(nil))...)
	return out
}

// Fake signature TLVs: right type and length, arbitrary content.
var (
	keyHashTLV = tlv{0x01, make32(0x11)}
	ed25519TLV = tlv{0x24, make([]byte, 64)}
	ecdsaTLV   = tlv{0x22, append([]byte{0x30, 0x46}, make([]byte, 70)...)}
	secCntTLV  = tlv{0x50, []byte{7, 0, 0, 0}}
	depTLV     = tlv{0x40, []byte{1, 0, 0, 0, 1, 2, 3, 0, 4, 0, 0, 0}}
)

func make32(b byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = b
	}
	return out
}
