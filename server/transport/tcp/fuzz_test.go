package tcp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"testing/iotest"
)

// Seeds: lwota's CSM, a CSM as libcoap 4.3.1 sends it (Max-Message-Size 8 MiB + 4 bytes, Block-Wise-Transfer),
// a Ping with a token, a GET /fw/x with Block2, and a frame with a 13-based extended length.
var frameSeeds = []string{
	"40e122100020",
	"50e1248000000420",
	"02e2abcd",
	"a1010ab3667708617d3103",
	"d001024700" + "ff" + hex.EncodeToString(bytes.Repeat([]byte("x"), 20)),
}

// FuzzReadFrame: readFrame never panics, reads the same frame whole or one byte at a time, and a
// frame it reads encodes back to one it reads the same. Every CSM it reads goes through parseCSM.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, err1 := readFrame(bufio.NewReader(bytes.NewReader(data)), 4096)
		split, err2 := readFrame(bufio.NewReader(iotest.OneByteReader(bytes.NewReader(data))), 4096)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %v, byte by byte: %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if whole.code != split.code || !bytes.Equal(whole.token, split.token) || !bytes.Equal(whole.payload, split.payload) {
			t.Fatalf("whole %+v, byte by byte %+v", whole, split)
		}
		if whole.code == codeCSM {
			if _, err := parseCSM(whole.opts); err != nil && !errors.Is(err, ErrBadCSM) {
				t.Fatalf("parseCSM: %v", err)
			}
		}
		enc, err := encodeFrame(whole)
		if err != nil {
			return // options the decoder kept that the encoder refuses
		}
		again, err := readFrame(bufio.NewReader(bytes.NewReader(enc)), 1<<20)
		if err != nil || again.code != whole.code || !bytes.Equal(again.payload, whole.payload) || !bytes.Equal(again.token, whole.token) {
			t.Fatalf("re-read of %x: %+v, %v", enc, again, err)
		}
	})
}
