package s3test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StartServer starts a versitygw of its own outside a test (lwota dev cluster) with one empty
// bucket. stop kills it and removes its directory; the watchdog does the same if this process
// dies first.
func StartServer(ctx context.Context) (srv Server, stop func(), err error) {
	g, err := newGateway()
	if err != nil {
		return Server{}, nil, fmt.Errorf("s3test: %w", err)
	}
	stop = func() {
		g.kill()
		g.pipe.Close()
		_ = g.watchdog.Wait()
	}
	if err := g.ensureRunning(); err != nil {
		stop()
		return Server{}, nil, fmt.Errorf("s3test: %w", err)
	}
	srv = Server{Endpoint: g.endpoint(), Region: Region, AccessKey: g.accessKey, SecretKey: g.secretKey,
		Bucket: "lwota", Stop: g.kill, Dir: g.root}
	if _, err := srv.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &srv.Bucket}); err != nil {
		stop()
		return Server{}, nil, fmt.Errorf("s3test: create bucket: %w\n%s", err, g.logTail())
	}
	return srv, stop, nil
}
