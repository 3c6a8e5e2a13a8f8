package transfer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// BenchmarkPullBlock2 guards issue 16's "keep what is there": plain CoAP Block2 from this
// package's Server (its tokens, grants, block cache and a directory blob store, behind a
// transport.Endpoint on loopback) at 0.6x or more of a raw UDP echo (20-byte request, 1 KiB
// answer) at the same concurrency. The echo and the pull alternate in 1-second slots (echo,
// pull, pull, echo, ...), as lwota bench pull does, so that load from outside hits both alike;
// it reports the pull's blocks/s and the median of the slots' ratios. One iteration is the
// whole run, so ns/op means nothing. Run:
//
//	go test -run '^$' -bench PullBlock2 -benchtime 1x ./firmware/transfer/
func BenchmarkPullBlock2(b *testing.B) {
	f := startServer(b, DefaultConfig(), 1<<20)
	uri := fmt.Sprintf("coap://%s/fw/%s", f.addr, f.token(b, "job1"))
	const slot, slots = time.Second, 4
	ctx := context.Background()
	for _, c := range []int{16, 64} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			for b.Loop() {
				var ratios, rates []float64
				for i := range slots {
					var (
						echo float64
						rep  lwm2mtest.PullReport
						err  error
					)
					pull := func() {
						rep, err = lwm2mtest.PullLoad(ctx, lwm2mtest.PullConfig{URI: uri, Devices: c, Duration: slot, Window: slot})
						if err == nil && (rep.Errors > 0 || rep.Blocks == 0) {
							err = fmt.Errorf("%d errors, %d blocks: %s", rep.Errors, rep.Blocks, rep.FirstError)
						}
					}
					if i%2 == 0 {
						if echo, err = lwm2mtest.UDPEcho(ctx, c, slot); err == nil {
							pull()
						}
					} else if pull(); err == nil {
						echo, err = lwm2mtest.UDPEcho(ctx, c, slot)
					}
					if err != nil {
						b.Fatal(err)
					}
					rates = append(rates, rep.BlocksPerSec)
					ratios = append(ratios, rep.BlocksPerSec/max(echo, 1))
				}
				b.ReportMetric(middle(rates), "blocks/s")
				b.ReportMetric(middle(ratios), "ratio_to_raw")
			}
		})
	}
}

// middle is the median of v (the mean of the two middle values for an even count).
func middle(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
