package lwm2mtest

import (
	"encoding/binary"
	"testing"
)

// mcubootHeader is a 32-byte MCUboot image header of version major.minor.revision+build.
func mcubootHeader(major, minor uint8, revision uint16, build uint32) []byte {
	h := make([]byte, 32)
	binary.LittleEndian.PutUint32(h, mcubootMagic)
	binary.LittleEndian.PutUint16(h[8:], 32) // ih_hdr_size
	h[20], h[21] = major, minor
	binary.LittleEndian.PutUint16(h[22:], revision)
	binary.LittleEndian.PutUint32(h[24:], build)
	return h
}

func TestDefaultUpdatedVersionMCUboot(t *testing.T) {
	tests := []struct {
		name string
		pkg  []byte
		want string
	}{
		{"MCUboot header", append(mcubootHeader(1, 4, 2, 0), "body"...), "1.4.2"},
		{"MCUboot header with a build number", mcubootHeader(2, 0, 300, 17), "2.0.300+17"},
		{"header wins over a LWOTA-FW line after it", append(mcubootHeader(3, 1, 0, 0), "\nLWOTA-FW 9.9.9\n"...), "3.1.0"},
		{"first line", []byte("LWOTA-FW 1.4.2\nbody"), "1.4.2"},
		{"magic without a whole header", mcubootHeader(1, 4, 2, 0)[:27], "updated-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DefaultUpdatedVersion(tt.pkg)
			if tt.want == "updated-" {
				if len(got) != len("updated-")+8 || got[:8] != "updated-" {
					t.Fatalf("got %q, want the hash form", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
