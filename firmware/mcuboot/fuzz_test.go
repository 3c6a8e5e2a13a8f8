package mcuboot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzParse from the test image builder")

// FuzzParse feeds arbitrary bytes to the parser whole and in pieces: it must never panic, both
// ways must agree, and an accepted image must be self-consistent.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, img []byte, chunk uint8) {
		whole, errWhole := Parse(bytes.NewReader(img))
		pieces, errPieces := parseChunks(img, 1+int(chunk)%64)
		if fmt.Sprint(errWhole) != fmt.Sprint(errPieces) || !reflect.DeepEqual(whole, pieces) {
			t.Fatalf("whole: %+v, %v\npieces of %d: %+v, %v", whole, errWhole, 1+int(chunk)%64, pieces, errPieces)
		}
		if errWhole != nil {
			if !errors.Is(errWhole, ErrNotMCUboot) && !errors.Is(errWhole, ErrTruncated) &&
				!errors.Is(errWhole, ErrMalformed) && !errors.Is(errWhole, ErrHashMismatch) {
				t.Fatalf("error outside the sentinels: %v", errWhole)
			}
			return
		}
		if !Detect(img) || whole.HeaderSize < HeaderSize || !VersionMatches(whole, whole.Version) {
			t.Fatalf("accepted an inconsistent image: %+v", whole)
		}
		ptlv := int(binary.LittleEndian.Uint16(img[10:]))
		tlvs := len(img) - int(whole.HeaderSize) - int(whole.ImageSize) - ptlv
		if tlvs < tlvInfoSize || ptlv+tlvs > MaxTLVArea {
			t.Fatalf("accepted a TLV area of %d+%d bytes in a %d-byte image", ptlv, tlvs, len(img))
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus with -update-seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		return
	}
	good := testImage{major: 1, minor: 2, revision: 3, build: 4, body: body(64), prot: []tlv{secCntTLV, depTLV}, unprot: []tlv{keyHashTLV, ecdsaTLV}}
	img := good.bytes()
	le := binary.LittleEndian
	with := func(edit func(b []byte) []byte) []byte { return edit(append([]byte(nil), img...)) }
	seeds := map[string]struct {
		img   []byte
		chunk uint8
	}{
		"good-protected":     {img, 0},
		"good-protected-7":   {img, 6},
		"good-plain":         {testImage{body: body(40), unprot: []tlv{ed25519TLV}}.bytes(), 31},
		"good-hdr-512":       {testImage{hdrSize: 512, body: body(16), unprot: []tlv{{0x20, make([]byte, 256)}}}.bytes(), 63},
		"good-no-tlvs":       {testImage{noSHA: true}.bytes(), 3},
		"encrypted":          {testImage{flags: 4, body: body(16)}.bytes(), 5},
		"truncated-tlvs":     {img[:len(img)-5], 2},
		"trailing":           {append(append([]byte(nil), img...), 0, 0), 9},
		"hash-mismatch":      {with(func(b []byte) []byte { b[40] ^= 1; return b }), 0},
		"hdr-size-small":     {with(func(b []byte) []byte { le.PutUint16(b[8:], 8); return b }), 0},
		"tlv-len-past-end":   {testImage{body: body(4), unprot: []tlv{ed25519TLV}}.edit(func(a []byte) []byte { le.PutUint16(a[42:], 200); return a }), 1},
		"prot-size-mismatch": {testImage{body: body(4), prot: []tlv{secCntTLV}, editHeader: func(h []byte) { le.PutUint16(h[10:], 4) }}.bytes(), 0},
		"magic-only":         {img[:4], 0},
		"not-mcuboot":        {[]byte("\x7fELF\x02\x01\x01\x00"), 0},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbyte(%q)\n", s.img, s.chunk)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
