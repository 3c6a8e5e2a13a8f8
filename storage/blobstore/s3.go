package blobstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
)

// S3 defaults and limits.
const (
	DefaultPartSize    = 8 << 20 // bytes per multipart part
	MinPartSize        = 5 << 20 // S3's minimum for every part but the last
	MaxPartSize        = 5 << 30 // S3's maximum part (and CopyObject) size
	DefaultConcurrency = 4       // parts of one Put in flight
	MaxPresignTTL      = 7 * 24 * time.Hour

	maxParts           = 10000            // S3's limit per multipart upload
	abortTimeout       = 30 * time.Second // for AbortMultipartUpload and CompleteMultipartUpload
	responseTimeout    = time.Minute      // a server that accepts a request but never answers
	defaultRegion      = "us-east-1"      // with a custom endpoint and no region configured
	contentTypeDefault = "application/octet-stream"
)

// S3Config configures OpenS3. Credentials are not part of it: they come from the AWS SDK's
// default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared
// files, web identity, ECS or EC2 instance roles).
type S3Config struct {
	// Endpoint is the S3 API's base URL for MinIO, Ceph RGW, versitygw and the like
	// ("http://127.0.0.1:7070"); empty means AWS (or AWS_ENDPOINT_URL_S3).
	Endpoint string
	// Region defaults to the SDK's (AWS_REGION, the shared config), then to us-east-1 when
	// Endpoint is set.
	Region string
	Bucket string
	// Prefix, when set, is prepended to every key with a "/": several lwota instances or
	// other data can share a bucket.
	Prefix string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of BUCKET.ENDPOINT/KEY;
	// most self-hosted S3 servers need it.
	PathStyle bool
	// CreateBucket creates the bucket when it does not exist.
	CreateBucket bool
	// PartSize is the multipart upload's part size, between MinPartSize and MaxPartSize; 0
	// means DefaultPartSize. Objects smaller than one part are sent with a single PutObject.
	PartSize int64
	// Concurrency is the number of parts of one Put uploaded at once; 0 means
	// DefaultConcurrency. A Put holds at most Concurrency × PartSize bytes of buffers.
	Concurrency int
}

// S3 keeps blobs as objects in an S3 bucket, under an optional key prefix. It is safe for
// concurrent use.
type S3 struct {
	client      *s3.Client
	presign     *s3.PresignClient
	bucket      string
	prefix      string // "" or ending in "/"
	where       string // endpoint or region, for error messages
	partSize    int64
	concurrency int
	bufs        sync.Pool // of *[]byte of partSize
}

// OpenS3 connects to the bucket: it loads the SDK configuration and credentials, then checks
// the bucket with HeadBucket, creating it when it is missing and cfg.CreateBucket is set. A
// nil logger discards the SDK's warnings.
func OpenS3(ctx context.Context, cfg S3Config, logger *slog.Logger) (*S3, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("blobstore: s3: %w", err)
	}
	opts := []func(*config.LoadOptions) error{
		config.WithLogger(sdkLogger{logger}),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = responseTimeout
		})),
		// Integrity is checked by the firmware layer (SHA-256 while uploading). Checksums
		// only where S3 requires them keeps older MinIO and Ceph releases working.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("blobstore: s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, errors.New("blobstore: s3: no region: set Region or AWS_REGION")
		}
		awsCfg.Region = defaultRegion
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("blobstore: s3: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "+
			"or AWS_PROFILE, or run with an instance role): %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	s := &S3{
		client:      client,
		presign:     s3.NewPresignClient(client),
		bucket:      cfg.Bucket,
		where:       cmp.Or(cfg.Endpoint, "AWS "+awsCfg.Region),
		partSize:    cmp.Or(cfg.PartSize, DefaultPartSize),
		concurrency: cmp.Or(cfg.Concurrency, DefaultConcurrency),
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	if err := s.checkBucket(ctx, awsCfg.Region, cfg.CreateBucket, logger); err != nil {
		return nil, err
	}
	return s, nil
}

func (cfg S3Config) check() error {
	if cfg.Bucket == "" {
		return errors.New("no bucket")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
		}
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		if err := checkKey(p); err != nil {
			return fmt.Errorf("prefix: %w", err)
		}
	}
	if cfg.PartSize != 0 && (cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize) {
		return fmt.Errorf("part size %d: want %d to %d bytes", cfg.PartSize, MinPartSize, MaxPartSize)
	}
	if cfg.Concurrency < 0 {
		return fmt.Errorf("concurrency %d is negative", cfg.Concurrency)
	}
	return nil
}

func (s *S3) checkBucket(ctx context.Context, region string, create bool, logger *slog.Logger) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	switch status := httpStatus(err); {
	case err == nil:
		return nil
	case status == http.StatusForbidden:
		return fmt.Errorf("blobstore: s3 bucket %q at %s: access denied (check the credentials and the bucket's policy): %w",
			s.bucket, s.where, err)
	case status != http.StatusNotFound:
		return fmt.Errorf("blobstore: s3 bucket %q at %s: %w", s.bucket, s.where, err)
	case !create:
		return fmt.Errorf("blobstore: s3 bucket %q does not exist at %s (create it, or set CreateBucket)", s.bucket, s.where)
	}
	in := &s3.CreateBucketInput{Bucket: &s.bucket}
	if region != defaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	if _, err := s.client.CreateBucket(ctx, in); err != nil {
		if _, ok := errors.AsType[*types.BucketAlreadyOwnedByYou](err); ok {
			return nil // created meanwhile by another instance
		}
		return fmt.Errorf("blobstore: s3 create bucket %q at %s: %w", s.bucket, s.where, err)
	}
	logger.Info("created S3 bucket", "bucket", s.bucket, "at", s.where)
	return nil
}

func (s *S3) objectKey(key string) string { return s.prefix + key }

// Put streams r to key and returns the number of bytes written.
//
// A source shorter than one part goes up with a single PutObject. A longer one goes up as a
// multipart upload of PartSize parts, Concurrency of them at once: the Put holds at most
// Concurrency part buffers (Concurrency × PartSize bytes), never the whole object. On any
// error (r's, the server's, or ctx's) the multipart upload is aborted, so nothing is left
// under key: a previous object under key stays as it was. Only when the abort itself fails
// (the server is gone) can the upload's parts stay behind; the error says so, and
// AbortUploads or a bucket lifecycle rule removes them.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, fmt.Errorf("blobstore: put: %w", err)
	}
	n, err := s.put(ctx, s.objectKey(key), ctxReader{ctx, r})
	if err != nil {
		return 0, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	return n, nil
}

func (s *S3) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, s.partSize)
	return &b
}

func (s *S3) put(ctx context.Context, k string, r io.Reader) (int64, error) {
	buf := s.getBuf()
	n, err := io.ReadFull(r, *buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		defer s.bufs.Put(buf)
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &k,
			Body:          bytes.NewReader((*buf)[:n]),
			ContentLength: aws.Int64(int64(n)),
			ContentType:   aws.String(contentTypeDefault),
		})
		if err != nil {
			return 0, err
		}
		return int64(n), nil
	case err != nil:
		s.bufs.Put(buf)
		return 0, fmt.Errorf("read: %w", err)
	}
	return s.putMultipart(ctx, k, buf, r)
}

// putMultipart uploads first (a full part) and the rest of r as a multipart upload, and
// aborts the upload on any error.
func (s *S3) putMultipart(ctx context.Context, k string, first *[]byte, r io.Reader) (int64, error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      &s.bucket,
		Key:         &k,
		ContentType: aws.String(contentTypeDefault),
	})
	if err != nil {
		s.bufs.Put(first)
		return 0, fmt.Errorf("create multipart upload: %w", err)
	}
	id := created.UploadId
	total, parts, err := s.uploadParts(ctx, k, id, first, r)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		// The commit point: once every part is up, a cancellation no longer interrupts.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		_, err = s.client.CompleteMultipartUpload(cctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &s.bucket,
			Key:             &k,
			UploadId:        id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		cancel()
		if err == nil {
			return total, nil
		}
		err = fmt.Errorf("complete multipart upload: %w", err)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: &k, UploadId: id,
	}); aerr != nil && httpStatus(aerr) != http.StatusNotFound {
		err = errors.Join(err, fmt.Errorf("abort multipart upload %s (its parts stay in the bucket until aborted): %w",
			aws.ToString(id), aerr))
	}
	return 0, err
}

// uploadParts reads r part by part into at most s.concurrency buffers (first is one of them)
// and uploads each as soon as it is full. It returns the bytes read and the completed parts
// in order, or the first error.
//
// The first error (r's, or a part's) stops the reading, but the parts already on their way
// run to their end under ctx before uploadParts returns: an abort does not stop a part the
// server is still storing, and a part stored after the abort brings the upload back (on
// versitygw, as a directory in the bucket). Only ctx itself cuts them.
func (s *S3) uploadParts(ctx context.Context, k string, id *string, first *[]byte, r io.Reader) (int64, []types.CompletedPart, error) {
	stop, cancel := context.WithCancelCause(ctx) // ends the reading: the first error, or ctx
	defer cancel(nil)
	// slots holds the buffers not in use; nil stands for one not allocated yet.
	slots := make(chan *[]byte, s.concurrency)
	for range s.concurrency - 1 {
		slots <- nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		parts []types.CompletedPart
		total int64
	)
	buf, n, last := first, len(*first), false
	for num := int32(1); ; num++ {
		if num > maxParts {
			slots <- buf
			cancel(fmt.Errorf("more than %d parts of %d bytes: raise the part size", maxParts, s.partSize))
			break
		}
		total += int64(n)
		wg.Add(1)
		go func(num int32, buf *[]byte, n int) {
			defer wg.Done()
			defer func() { slots <- buf }()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:        &s.bucket,
				Key:           &k,
				UploadId:      id,
				PartNumber:    aws.Int32(num),
				Body:          bytes.NewReader((*buf)[:n]),
				ContentLength: aws.Int64(int64(n)),
			})
			if err != nil {
				cancel(fmt.Errorf("upload part %d: %w", num, err))
				return
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
			mu.Unlock()
		}(num, buf, n)
		if last {
			break
		}
		buf = nil
		select {
		case buf = <-slots:
		case <-stop.Done():
		}
		if stop.Err() != nil {
			if buf != nil {
				s.bufs.Put(buf)
			}
			break
		}
		if buf == nil {
			buf = s.getBuf()
		}
		var err error
		n, err = io.ReadFull(r, *buf)
		if err == io.ErrUnexpectedEOF {
			last = true
		} else if err != nil {
			slots <- buf
			if err != io.EOF {
				cancel(fmt.Errorf("read: %w", err))
			}
			break
		}
	}
	wg.Wait()
	close(slots)
	for b := range slots {
		if b != nil {
			s.bufs.Put(b)
		}
	}
	if err := context.Cause(stop); err != nil {
		return 0, nil, err
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return cmp.Compare(*a.PartNumber, *b.PartNumber) })
	return total, parts, nil
}

// Rename copies from to to on the server (CopyObject: objects up to 5 GiB), replacing to, then
// deletes from. If the delete fails, both keys hold the blob and Rename can be retried.
func (s *S3) Rename(ctx context.Context, from, to string) error {
	if err := errors.Join(checkKey(from), checkKey(to)); err != nil {
		return fmt.Errorf("blobstore: rename: %w", err)
	}
	src, dst := s.objectKey(from), s.objectKey(to)
	if from == to {
		ok, err := s.exists(ctx, src)
		if err == nil && !ok {
			err = ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, err)
		}
		return nil
	}
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:     &s.bucket,
		Key:        &dst,
		CopySource: aws.String(s.bucket + "/" + escapeKey(src)),
	})
	if err != nil {
		return fmt.Errorf("blobstore: rename %q to %q: copy: %w", from, to, notFound(err))
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &src}); err != nil {
		return fmt.Errorf("blobstore: rename %q to %q: copied, but delete the source: %w", from, to, err)
	}
	return nil
}

// Exists reports whether key holds an object (HeadObject). On AWS, the credentials need
// s3:ListBucket, or a missing key answers 403 instead of 404.
func (s *S3) Exists(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("blobstore: exists: %w", err)
	}
	ok, err := s.exists(ctx, s.objectKey(key))
	if err != nil {
		return false, fmt.Errorf("blobstore: exists %q: %w", key, err)
	}
	return ok, nil
}

func (s *S3) exists(ctx context.Context, k string) (bool, error) {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if httpStatus(err) == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// Delete removes key; a missing key is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("blobstore: delete: %w", err)
	}
	k := s.objectKey(key)
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil &&
		httpStatus(err) != http.StatusNotFound {
		return fmt.Errorf("blobstore: delete %q: %w", key, err)
	}
	return nil
}

// Open returns length bytes of key from offset (length < 0: to the end) with a ranged
// GetObject. A range reaching past the end is cut at the end; an offset at or past the end
// gives an empty reader. A missing key is ErrNotFound. The reader streams from the server and
// fails once ctx is done.
func (s *S3) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("blobstore: open: %w", err)
	}
	if err := checkRange(offset, length); err != nil {
		return nil, fmt.Errorf("blobstore: open %q: %w", key, err)
	}
	k := s.objectKey(key)
	if length == 0 {
		ok, err := s.exists(ctx, k)
		if err == nil && !ok {
			err = ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: open %q: %w", key, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &k}
	if offset > 0 || length > 0 {
		rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(offset+min(length, 1<<62)-1, 10)
		}
		in.Range = &rng
	}
	out, err := s.client.GetObject(ctx, in)
	if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		return io.NopCloser(strings.NewReader("")), nil // the object exists, offset is at or past its end
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: open %q: %w", key, notFound(err))
	}
	return out.Body, nil
}

// List returns the keys (without the configured Prefix) starting with prefix, sorted.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	p := s.objectKey(prefix)
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &p})
	var keys []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("blobstore: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix); k != probeKey { // Check's object is no blob
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// PresignGet returns an S3 presigned GetObject URL for key, valid for ttl (at most
// MaxPresignTTL, and no longer than the credentials when they are temporary). It does not
// check that key exists.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("blobstore: presign: %w", err)
	}
	if ttl < time.Second || ttl > MaxPresignTTL {
		return "", fmt.Errorf("blobstore: presign %q: ttl %v: want 1s to %v", key, ttl, MaxPresignTTL)
	}
	k := s.objectKey(key)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("blobstore: presign %q: %w", key, err)
	}
	return req.URL, nil
}

// Upload is a multipart upload in progress (or left behind by a crash).
type Upload struct {
	Key       string // without the configured Prefix
	ID        string
	Initiated time.Time
}

// Uploads lists the multipart uploads in progress under the configured Prefix.
func (s *S3) Uploads(ctx context.Context) ([]Upload, error) {
	pages := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &s.prefix})
	var ups []Upload
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("blobstore: list multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			ups = append(ups, Upload{
				Key:       strings.TrimPrefix(aws.ToString(u.Key), s.prefix),
				ID:        aws.ToString(u.UploadId),
				Initiated: aws.ToTime(u.Initiated),
			})
		}
	}
	return ups, nil
}

// AbortUploads aborts the multipart uploads under the configured Prefix initiated before
// cutoff: the parts a crashed or cut-off Put left behind. Choose a cutoff older than any Put
// still running (on any instance sharing the bucket). It returns how many it aborted.
func (s *S3) AbortUploads(ctx context.Context, cutoff time.Time) (int, error) {
	ups, err := s.Uploads(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range ups {
		if !u.Initiated.Before(cutoff) {
			continue
		}
		k := s.objectKey(u.Key)
		if _, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &k, UploadId: &u.ID,
		}); err != nil && httpStatus(err) != http.StatusNotFound {
			return n, fmt.Errorf("blobstore: abort multipart upload %s of %q: %w", u.ID, u.Key, err)
		}
		n++
	}
	return n, nil
}

// httpStatus is the HTTP status of an S3 error, or 0.
func httpStatus(err error) int {
	if re, ok := errors.AsType[interface {
		error
		HTTPStatusCode() int
	}](err); ok {
		return re.HTTPStatusCode()
	}
	return 0
}

// notFound adds ErrNotFound to a 404.
func notFound(err error) error {
	if httpStatus(err) == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// sdkLogger hands the AWS SDK's log lines to slog.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}
