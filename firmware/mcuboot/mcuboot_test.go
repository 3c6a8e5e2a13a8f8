package mcuboot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
)

func body(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n)}).Read(b)
	return b
}

// parseChunks feeds img to a Parser chunk bytes at a time, as an upload arrives.
func parseChunks(img []byte, chunk int) (*Info, error) {
	p := NewParser()
	for len(img) > 0 {
		n := min(chunk, len(img))
		if m, err := p.Write(img[:n]); err != nil {
			if _, rerr := p.Result(); rerr != err {
				return nil, fmt.Errorf("Result() = %v after Write failed with %v", rerr, err)
			}
			return nil, err
		} else if m != n {
			return nil, fmt.Errorf("Write = %d, want %d", m, n)
		}
		img = img[n:]
	}
	return p.Result()
}

var chunkSizes = []int{1, 7, 1 << 30}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		img  testImage
		want Info
	}{
		{
			name: "ed25519 signed, no protected TLVs",
			img:  testImage{major: 1, minor: 2, revision: 3, build: 4, body: body(1000), unprot: []tlv{keyHashTLV, ed25519TLV}},
			want: Info{Version: "1.2.3+4", HeaderSize: 32, ImageSize: 1000, HashVerified: true, SignatureTLVs: []string{"ED25519"}},
		},
		{
			name: "protected TLVs and a 512-byte header, as Zephyr builds them",
			img: testImage{hdrSize: 0x200, loadAddr: 0x08020200, flags: 0x20, major: 2, revision: 513, build: 77, body: body(4099),
				prot: []tlv{secCntTLV, depTLV}, unprot: []tlv{keyHashTLV, ecdsaTLV}},
			want: Info{Version: "2.0.513+77", HeaderSize: 0x200, ImageSize: 4099, LoadAddr: 0x08020200, Flags: 0x20, HashVerified: true, SignatureTLVs: []string{"ECDSA-P256"}},
		},
		{
			name: "every signature kind",
			img: testImage{body: body(10), unprot: []tlv{
				{0x20, make([]byte, 256)}, {0x21, make([]byte, 64)}, ecdsaTLV, {0x22, make([]byte, 103)},
				{0x23, make([]byte, 384)}, ed25519TLV, {0x25, []byte{1}}, {0x26, make([]byte, 10)},
			}},
			want: Info{Version: "0.0.0+0", HeaderSize: 32, ImageSize: 10, HashVerified: true,
				SignatureTLVs: []string{"RSA2048-PSS", "ECDSA224", "ECDSA-P256", "ECDSA-P384", "RSA3072-PSS", "ED25519", "SIG-0x26"}},
		},
		{
			name: "unsigned, unknown TLVs ignored",
			img:  testImage{major: 255, minor: 255, revision: 65535, build: 4294967295, body: body(77), unprot: []tlv{{0x74, make([]byte, 16)}, {0xa000, nil}}},
			want: Info{Version: "255.255.65535+4294967295", HeaderSize: 32, ImageSize: 77, HashVerified: true},
		},
		{
			name: "empty body",
			img:  testImage{major: 1},
			want: Info{Version: "1.0.0+0", HeaderSize: 32, HashVerified: true},
		},
		{
			name: "no SHA-256 TLV: nothing verified",
			img:  testImage{body: body(50), noSHA: true, unprot: []tlv{ed25519TLV}},
			want: Info{Version: "0.0.0+0", HeaderSize: 32, ImageSize: 50, SignatureTLVs: []string{"ED25519"}},
		},
		{
			name: "no TLVs at all",
			img:  testImage{body: body(50), noSHA: true},
			want: Info{Version: "0.0.0+0", HeaderSize: 32, ImageSize: 50},
		},
		{
			name: "encrypted: the TLV hashes plaintext, so it is not compared",
			img: testImage{flags: 0x04, body: body(64), unprot: []tlv{ed25519TLV},
				editTLVs: func(a []byte) []byte { a[8] ^= 0xff; return a }}, // SHA-256 value no longer matches
			want: Info{Version: "0.0.0+0", HeaderSize: 32, ImageSize: 64, Flags: 0x04, SignatureTLVs: []string{"ED25519"}},
		},
	}
	for _, tt := range tests {
		img := tt.img.bytes()
		if !Detect(img) {
			t.Fatalf("%s: Detect = false", tt.name)
		}
		for _, chunk := range chunkSizes {
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, min(chunk, len(img))), func(t *testing.T) {
				got, err := parseChunks(img, chunk)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(*got, tt.want) {
					t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
				}
			})
		}
	}
	// Parse reads the same from an io.Reader.
	got, err := Parse(bytes.NewReader(tests[1].img.bytes()))
	if err != nil || !reflect.DeepEqual(*got, tests[1].want) {
		t.Fatalf("Parse = %+v, %v", got, err)
	}
}

func TestParseBad(t *testing.T) {
	good := testImage{major: 1, body: body(300), prot: []tlv{secCntTLV}, unprot: []tlv{keyHashTLV, ed25519TLV}}
	img := good.bytes()
	hdr, prot := good.header()
	tlvStart := len(hdr) + len(good.body) + len(prot)
	le := binary.LittleEndian
	with := func(edit func(b []byte) []byte) []byte { return edit(append([]byte(nil), img...)) }
	noProt := testImage{body: body(10), unprot: []tlv{ed25519TLV}}

	tests := []struct {
		name    string
		in      []byte
		wantErr error
		msg     string // substring of the error
	}{
		{"empty", nil, ErrTruncated, "empty stream"},
		{"truncated header", img[:10], ErrTruncated, "short of the end of the header"},
		{"bad magic", with(func(b []byte) []byte { b[0] ^= 1; return b }), ErrNotMCUboot, "magic 0x96f3b83c"},
		{"old v1 magic", with(func(b []byte) []byte { le.PutUint32(b, 0x96f3b83c); return b }), ErrNotMCUboot, ""},
		{"erased flash", bytes.Repeat([]byte{0xff}, 64), ErrNotMCUboot, ""},
		{"hdr_size below 32", with(func(b []byte) []byte { le.PutUint16(b[8:], 16); return b }), ErrMalformed, "ih_hdr_size 16"},
		{"hdr_size zero", with(func(b []byte) []byte { le.PutUint16(b[8:], 0); return b }), ErrMalformed, "ih_hdr_size 0"},
		{"truncated body", img[:len(hdr)+100], ErrTruncated, "short of the end of the image body"},
		{"img_size past the stream end", with(func(b []byte) []byte { le.PutUint32(b[12:], 1<<31); return b }), ErrTruncated, "image body"},
		{"hdr_size past the stream end", with(func(b []byte) []byte { le.PutUint16(b[8:], 0xffff); return b })[:200], ErrTruncated, "header padding"},
		{"no TLV area", img[:len(hdr)+len(good.body)], ErrTruncated, "protected TLV area"},
		{"no unprotected TLV area", img[:tlvStart], ErrTruncated, "TLV info"},
		{"truncated TLV area", img[:len(img)-1], ErrTruncated, "1 bytes short of the end of the TLV area"},
		{"trailing garbage", append(append([]byte(nil), img...), 0xff), ErrMalformed, "trailing data"},
		{"padded to slot size", append(append([]byte(nil), img...), bytes.Repeat([]byte{0xff}, 4096)...), ErrMalformed, "trailing data"},
		{"body byte flipped", with(func(b []byte) []byte { b[len(hdr)+5] ^= 0x80; return b }), ErrHashMismatch, ""},
		{"version in header changed", with(func(b []byte) []byte { b[20]++; return b }), ErrHashMismatch, ""},
		{"protected TLV changed", with(func(b []byte) []byte { b[tlvStart-1] ^= 1; return b }), ErrHashMismatch, ""},
		{"SHA-256 TLV changed", with(func(b []byte) []byte { b[tlvStart+8] ^= 1; return b }), ErrHashMismatch, ""},
		{"bad TLV info magic", with(func(b []byte) []byte { le.PutUint16(b[tlvStart:], 0x6906); return b }), ErrMalformed, "TLV info magic 0x6906"},
		{"bad protected TLV magic", with(func(b []byte) []byte { le.PutUint16(b[len(hdr)+len(good.body):], 0x6907); return b }), ErrMalformed, "protected TLV info magic"},
		{"protected area without ih_protect_tlv_size", testImage{body: body(10), unprot: []tlv{ed25519TLV},
			editTLVs: func(a []byte) []byte { le.PutUint16(a, tlvProtMagic); return a }}.bytes(), ErrMalformed, "ih_protect_tlv_size is 0"},
		{"ih_protect_tlv_size disagrees with the area", testImage{body: body(10), prot: []tlv{secCntTLV},
			editHeader: func(h []byte) { le.PutUint16(h[10:], 16) }}.bytes(), ErrMalformed, "header says 16"},
		{"ih_protect_tlv_size below a TLV info", testImage{body: body(10), editHeader: func(h []byte) { le.PutUint16(h[10:], 2) }}.bytes(), ErrMalformed, "ih_protect_tlv_size 2"},
		{"TLV area length below its info", noProt.edit(func(a []byte) []byte { le.PutUint16(a[2:], 3); return a[:4] }), ErrMalformed, "shorter than its own info"},
		{"TLV length past the end of the area", noProt.edit(func(a []byte) []byte { le.PutUint16(a[len(a)-66:], 65); return a }), ErrMalformed, "runs past the end"},
		{"TLV length past the end of the stream", noProt.edit(func(a []byte) []byte { le.PutUint16(a[2:], 0xffff); return a }), ErrTruncated, "TLV area"},
		{"stray bytes after the last TLV", noProt.edit(func(a []byte) []byte { le.PutUint16(a[2:], uint16(len(a)+2)); return append(a, 0x24, 0) }), ErrMalformed, "2 stray bytes"},
		{"stray bytes in the protected area", testImage{body: body(10), prot: []tlv{{0x50, nil}},
			editHeader: func(h []byte) {}}.withProt(func(p []byte) []byte { return p[:len(p)-1] }), ErrMalformed, "protected TLV area: 3 stray bytes"},
		{"SHA-256 TLV of the wrong length", testImage{body: body(10), noSHA: true, unprot: []tlv{{tlvSHA256, make([]byte, 31)}}}.bytes(), ErrMalformed, "SHA-256 TLV of 31 bytes"},
		{"TLV area over the limit", testImage{body: body(10), prot: []tlv{{0x50, make([]byte, 40000)}}, unprot: []tlv{{0x01, make([]byte, 30000)}}}.bytes(), ErrMalformed, "exceeds the 65536-byte limit"},
	}
	for _, tt := range tests {
		for _, chunk := range chunkSizes {
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, min(chunk, max(len(tt.in), 1))), func(t *testing.T) {
				info, err := parseChunks(tt.in, chunk)
				if !errors.Is(err, tt.wantErr) || !bytes.Contains([]byte(fmt.Sprint(err)), []byte(tt.msg)) {
					t.Fatalf("err = %v (info %+v), want %v containing %q", err, info, tt.wantErr, tt.msg)
				}
			})
		}
	}
}

// edit builds the image and rewrites its unprotected TLV area (sizes in the header untouched).
func (im testImage) edit(f func(area []byte) []byte) []byte {
	im.editTLVs = f
	return im.bytes()
}

// withProt builds the image with its protected TLV area rewritten, the header and the
// protected TLV info still claiming the rewritten length, and the SHA-256 TLV correct.
func (im testImage) withProt(f func(prot []byte) []byte) []byte {
	hdr, prot := im.header()
	prot = f(prot)
	binary.LittleEndian.PutUint16(hdr[10:], uint16(len(prot)))
	binary.LittleEndian.PutUint16(prot[2:], uint16(len(prot)))
	h := sha256.New()
	h.Write(hdr)
	h.Write(im.body)
	h.Write(prot)
	return append(append(append(hdr, im.body...), prot...), im.trailer(h.Sum(nil))...)
}

func TestParseWriteFailsEarly(t *testing.T) {
	p := NewParser()
	if _, err := p.Write([]byte("PK\x03\x04 a zip file, not firmware")); !errors.Is(err, ErrNotMCUboot) {
		t.Fatalf("Write = %v, want ErrNotMCUboot", err)
	}
	if _, err := p.Write([]byte{1}); !errors.Is(err, ErrNotMCUboot) {
		t.Fatalf("second Write = %v, want the same error", err)
	}
}

func TestDetect(t *testing.T) {
	img := testImage{}.bytes()
	tests := []struct {
		name string
		in   []byte
		want bool
	}{
		{"image", img, true},
		{"magic only", img[:4], true},
		{"three bytes", img[:3], false},
		{"empty", nil, false},
		{"big-endian magic", []byte{0x96, 0xf3, 0xb8, 0x3d}, false},
		{"elf", []byte("\x7fELF"), false},
	}
	for _, tt := range tests {
		if got := Detect(tt.in); got != tt.want {
			t.Errorf("%s: Detect = %v", tt.name, got)
		}
	}
}

func TestVersionMatches(t *testing.T) {
	info := &Info{Version: "1.2.3+4"}
	tests := []struct {
		declared string
		want     bool
	}{
		{"1.2.3", true},
		{"1.2.3+4", true},
		{"1.2.3+5", false},
		{"1.2.3+0", false},
		{"1.2.30", false},
		{"1.2.3.4", false},
		{"1.2", false},
		{"1", false},
		{"11.2.3", false},
		{"1.2.3+", false},
		{"1.2.3+4+4", false},
		{"1.2.03", false},
		{"01.2.3", false},
		{"+1.2.3", false},
		{"1.2.+3", false},
		{"1.2.-3", false},
		{" 1.2.3", false},
		{"1.2.3 ", false},
		{"v1.2.3", false},
		{"", false},
		{"1.2.3+04", false},
		{"257.2.3", false}, // wider than the major field: never matches
	}
	for _, tt := range tests {
		if got := VersionMatches(info, tt.declared); got != tt.want {
			t.Errorf("VersionMatches(%q, %q) = %v, want %v", info.Version, tt.declared, got, tt.want)
		}
	}
	zero := &Info{Version: "0.0.0+0"}
	if !VersionMatches(zero, "0.0.0") || !VersionMatches(zero, "0.0.0+0") {
		t.Error("0.0.0+0 does not match itself")
	}
	big := &Info{Version: "255.255.65535+4294967295"}
	if !VersionMatches(big, "255.255.65535+4294967295") || VersionMatches(big, "255.255.65535+4294967296") {
		t.Error("field limits")
	}
	if VersionMatches(nil, "1.2.3") || VersionMatches(&Info{Version: "1.2.3"}, "1.2.3") {
		t.Error("an Info without a parsed MCUboot version matched")
	}
}

// TestParseBoundedMemory streams a 32 MiB image, made on the fly, through Parse: only the TLV
// area may stay in memory.
func TestParseBoundedMemory(t *testing.T) {
	const size = 32 << 20
	im := testImage{major: 3, body: nil, prot: []tlv{secCntTLV}, unprot: []tlv{keyHashTLV, ed25519TLV}}
	hdr, prot := im.header()
	binary.LittleEndian.PutUint32(hdr[12:], size)
	bodyReader := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{42}), size) }
	h := sha256.New()
	h.Write(hdr)
	io.Copy(h, bodyReader())
	h.Write(prot)
	trailer := im.trailer(h.Sum(nil))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	info, err := Parse(io.MultiReader(bytes.NewReader(hdr), bodyReader(), bytes.NewReader(prot), bytes.NewReader(trailer)))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HashVerified || info.ImageSize != size || info.Version != "3.0.0+0" {
		t.Fatalf("info = %+v", info)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB parsed, %d KiB allocated", size>>20, allocated>>10)
	if allocated > 1<<20 {
		t.Fatalf("allocated %d bytes parsing a %d-byte image", allocated, size)
	}
}
