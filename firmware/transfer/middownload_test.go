package transfer

import (
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/transport"
)

// TestErrorsMidDownload: a failure while a device is part-way through a pull reaches it as what
// it is, on the wire: 5.03 with Max-Age (retry later), 4.04 "expired", 4.03. It used to arrive
// as 4.02 Bad Option for every block number above 0, which a device takes as the end of a
// broken transfer. Only a block past the end of the image is 4.02.
func TestErrorsMidDownload(t *testing.T) {
	f := startServer(t, Config{RetryAfter: 7 * time.Second}, imageSize)
	f.grants.jobs["missing"] = Grant{BlobKey: "images/sha256/none", Size: imageSize, SHA256: f.sum}
	short, err := f.tokens.Mint("job1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		path   string
		before func() // after block 0 was served, before block 3 is asked for
		code   codes.Code
		diag   string
		maxAge int64
	}{
		{"token expired", PathPrefix + short, func() { f.clock.add(11 * time.Second) }, codes.NotFound, "expired", -1},
		{"grants failing", PathPrefix + f.token(t, "job1"), func() {
			f.grants.mu.Lock()
			f.grants.fail = errors.New("database down")
			f.grants.mu.Unlock()
		}, codes.ServiceUnavailable, "", 7},
		{"blob store failing", PathPrefix + f.token(t, "missing"), nil, codes.ServiceUnavailable, "", 7},
		{"job not active", PathPrefix + f.token(t, "gone"), nil, codes.Forbidden, "", -1},
		{"past the end", PathPrefix + f.token(t, "job1"), nil, codes.BadOption, "", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() { f.grants.mu.Lock(); f.grants.fail = nil; f.grants.mu.Unlock() }()
			c := newRawClient(t, f.addr) // a new peer: no grant cached for it
			num := uint32(3)
			if tc.code == codes.BadOption {
				num = imageSize / 64
			}
			if tc.before != nil {
				r, err := c.get(tc.path, &transport.Block{Num: 0, SZX: 2})
				if err != nil || r.code != codes.Content {
					t.Fatalf("block 0: %v %v", r.code, err)
				}
				f.srv.gc.purge() // the failure shows on the next grant, as after GrantTTL
				tc.before()
			}
			r, err := c.get(tc.path, &transport.Block{Num: num, SZX: 2})
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tc.code || string(r.payload) != tc.diag || r.maxAge != tc.maxAge || r.block2 != nil {
				t.Fatalf("block %d: got %v %q Max-Age %d Block2 %+v, want %v %q Max-Age %d and no Block2",
					num, r.code, r.payload, r.maxAge, r.block2, tc.code, tc.diag, tc.maxAge)
			}
		})
	}
}
