package s3test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestMain(m *testing.M) { Main(m) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartSharesOneServer(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Endpoint != b.Endpoint || a.Dir != b.Dir || a.SecretKey != b.SecretKey {
		t.Errorf("two servers: %+v and %+v", a, b)
	}
	if a.Bucket == b.Bucket {
		t.Errorf("the same bucket twice: %s", a.Bucket)
	}
	ctx := ctxFor(t)
	for _, s := range []Server{a, b} {
		out, err := s.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.Bucket})
		if err != nil {
			t.Fatalf("list %s: %v", s.Bucket, err)
		}
		if len(out.Contents) != 0 {
			t.Errorf("bucket %s not empty", s.Bucket)
		}
	}
	if !strings.HasPrefix(a.Endpoint, "http://127.0.0.1:") {
		t.Errorf("endpoint %s: want loopback", a.Endpoint)
	}
}

func TestWrongSecretRefused(t *testing.T) {
	s := Start(t)
	s.SecretKey += "x"
	_, err := s.Client().ListObjectsV2(ctxFor(t), &s3.ListObjectsV2Input{Bucket: &s.Bucket})
	if err == nil {
		t.Fatal("a wrong secret was accepted")
	}
}

func TestEnv(t *testing.T) {
	s := Start(t)
	env := strings.Join(s.Env(), "\n")
	for _, want := range []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_S3=" + s.Endpoint} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("Env lacks %s:\n%s", want, env)
		}
	}
}

// After Stop the next Start restarts the server on the same port and directory: objects stay.
func TestStopRestart(t *testing.T) {
	s := Start(t)
	ctx := ctxFor(t)
	if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: aws.String("k"),
		Body: strings.NewReader("kept")}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop() // twice is fine
	if _, err := s.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.Bucket}); err == nil {
		t.Fatal("the server answers after Stop")
	}
	again := Start(t)
	if again.Endpoint != s.Endpoint || again.Dir != s.Dir {
		t.Fatalf("restarted at %s over %s, was %s over %s", again.Endpoint, again.Dir, s.Endpoint, s.Dir)
	}
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "kept" {
		t.Errorf("after the restart: %q", b)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Chdir(t.TempDir()) // no go.mod above
	t.Setenv("PATH", "")
	t.Setenv(EnvBinary, "")
	if _, err := findBinary(); err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("findBinary = %v, want an error naming make tools", err)
	}
	t.Setenv(EnvBinary, "/nonexistent/versitygw")
	if _, err := findBinary(); err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("findBinary with %s = %v, want an error naming make tools", EnvBinary, err)
	}
}

const childEnv = "S3TEST_WATCHDOG_CHILD"

// A test binary that exits without Shutdown (a panic, os.Exit, a kill) leaves no versitygw
// process and no directory behind. The test runs itself as a child that starts the server and
// exits at once.
func TestWatchdog(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		s := Start(t)
		gw.pmu.Lock()
		pid := gw.cmd.Process.Pid
		gw.pmu.Unlock()
		fmt.Printf("\nchild: %d %s\n", pid, s.Dir)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdog$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	_, line, ok := strings.Cut(string(out), "\nchild: ")
	if !ok {
		t.Fatalf("child said:\n%s", out)
	}
	var pid int
	var dir string
	if _, err := fmt.Sscan(line, &pid, &dir); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for processAlive(pid) || exists(dir) {
		if time.Now().After(deadline) {
			t.Fatalf("15s after the child exited: versitygw %d alive %v, %s exists %v", pid, processAlive(pid), dir, exists(dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// A bucket the server is still writing into ("directory not empty": a part of an upload the
// client gave up on, stored late on a busy machine) is removed again until it is gone; other
// errors, and one that lasts, are reported.
func TestRemoveBucketWhileServerWrites(t *testing.T) {
	notEmpty := &os.PathError{Op: "unlinkat", Path: "b", Err: syscall.ENOTEMPTY}
	denied := &os.PathError{Op: "unlinkat", Path: "b", Err: syscall.EACCES}
	for _, tc := range []struct {
		name  string
		errs  []error // what each removal returns; the last one repeats
		wait  time.Duration
		want  error
		tries int
	}{
		{"removed at once", []error{nil}, time.Second, nil, 1},
		{"filled twice, then removed", []error{notEmpty, notEmpty, nil}, 10 * time.Second, nil, 3},
		{"other errors are not retried", []error{denied}, 10 * time.Second, denied, 1},
		{"still filled after wait", []error{notEmpty}, 200 * time.Millisecond, notEmpty, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			err := removeBucket("b", tc.wait, func(string) error {
				e := tc.errs[min(tries, len(tc.errs)-1)]
				tries++
				return e
			})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("removeBucket = %v, want %v", err, tc.want)
			}
			if tc.tries > 0 && tries != tc.tries {
				t.Fatalf("%d removals, want %d", tries, tc.tries)
			}
		})
	}
}
