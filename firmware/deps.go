package firmware

import (
	"io"
	"time"

	"github.com/lwota/lwota/firmware/mcuboot"
	"github.com/lwota/lwota/firmware/signing"
)

// What the catalog uses of firmware/signing and firmware/mcuboot, in one place.

// sigVerifier is the signature check of an upload (*signing.Verifier): the image bytes are
// written to it, then Verify names the trusted key that signed them.
type sigVerifier interface {
	io.Writer
	Verify() (*signing.Key, error)
}

// bootParser reads an MCUboot image as it streams past (*mcuboot.Parser).
type bootParser interface {
	io.Writer
	Result() (*mcuboot.Info, error)
}

// errNoKey is the verifier's answer when no trusted key has the signature's algorithm.
var errNoKey = signing.ErrNoKey

func newVerifier(sig []byte, keys []*signing.Key) (sigVerifier, error) {
	v, err := signing.NewVerifier(sig, keys)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func newSigningKey(name string, pem []byte, now time.Time) (*signing.Key, error) {
	return signing.NewKey(name, pem, now)
}

func detectMCUboot(prefix []byte) bool { return mcuboot.Detect(prefix) }

func newBootParser() bootParser { return mcuboot.NewParser() }

func bootVersionMatches(info *mcuboot.Info, declared string) bool {
	return mcuboot.VersionMatches(info, declared)
}
