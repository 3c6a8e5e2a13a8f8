// Package s3test gives tests a fresh, empty bucket on a real S3 server: a versitygw process on
// 127.0.0.1, started once per test binary over a temporary POSIX directory (see README.md).
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// EnvBinary names the environment variable holding the path of the versitygw binary to use.
const EnvBinary = "LWOTA_VERSITYGW"

// Region is the region the server answers for.
const Region = "us-east-1"

const (
	startTimeout = 30 * time.Second
	installHint  = "`make tools` installs it into bin/ " +
		"(GOBIN=$PWD/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0), or set " + EnvBinary
)

// Server is a running versitygw and a bucket on it that belongs to one Start call.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT, path-style addressing
	Region    string
	AccessKey string // the server's root account: random for each test binary
	SecretKey string
	Bucket    string // new and empty
	// Stop kills the server at once (SIGKILL), as a crash would. The next Start restarts it on
	// the same Dir, port and credentials, so buckets and objects survive.
	Stop func()
	Dir  string // the POSIX root: one directory per bucket, one file per object
}

// Start returns the shared server (starting or restarting it) with a new, empty bucket that is
// removed when t ends.
//
// The first call starts versitygw (from $LWOTA_VERSITYGW, else bin/versitygw in the
// repository, else PATH) on a free port of 127.0.0.1 with random root credentials, over a
// temporary directory, and waits for its /health. A watchdog process kills the server and
// removes the directory as soon as the test binary exits, however it exits; Main does it
// earlier. Start fails the test, never skips it, when versitygw is missing or does not start.
func Start(t testing.TB) Server {
	t.Helper()
	g, err := running()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s := Server{
		Endpoint:  g.endpoint(),
		Region:    Region,
		AccessKey: g.accessKey,
		SecretKey: g.secretKey,
		Bucket:    bucketName(),
		Stop:      g.kill,
		Dir:       g.root,
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("s3test: create bucket %s at %s: %v\n%s", s.Bucket, s.Endpoint, err, g.logTail())
	}
	t.Cleanup(func() {
		if err := removeBucket(filepath.Join(s.Dir, s.Bucket), removeWait, os.RemoveAll); err != nil {
			t.Errorf("s3test: remove bucket %s: %v", s.Bucket, err)
		}
	})
	return s
}

// removeWait bounds how long removing a bucket waits for the server to finish with it.
const removeWait = 10 * time.Second

// removeBucket removes a bucket's directory: the POSIX backend keeps a bucket as a plain
// directory, so removing it removes the bucket. The server may still be finishing a request
// its client gave up on (a part of a cancelled upload, stored after the test moved on; slow on
// a busy machine): a directory it fills meanwhile ("directory not empty") is removed again
// until wait has passed. remove is os.RemoveAll.
func removeBucket(dir string, wait time.Duration, remove func(string) error) error {
	deadline := time.Now().Add(wait)
	for {
		err := remove(dir)
		if err == nil || !errors.Is(err, syscall.ENOTEMPTY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns an S3 client for the server with its root credentials.
func (s Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Env returns the environment ("KEY=value") that points the AWS SDK's default chain at the
// server's root account and nothing else (no profile, no shared files, no instance metadata):
// for subprocesses, appended to os.Environ().
func (s Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env in this process for the duration of t (so not in parallel tests).
func (s Server) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Main runs the tests of a package and then stops the server, if one was started, before
// exiting: func TestMain(m *testing.M) { s3test.Main(m) }. Without it the watchdog stops the
// server right after the test binary exits.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown kills the server and removes its directory, waiting for both. Later calls to Start
// fail. It does nothing when no server was started.
func Shutdown() {
	mu.Lock()
	g := gw
	shut = true
	mu.Unlock()
	if g != nil {
		g.kill()
		g.pipe.Close()
		_ = g.watchdog.Wait()
	}
}

var (
	mu       sync.Mutex // guards gw, shut, startErr
	gw       *gateway
	shut     bool
	startErr error // sticky: a server that failed to start is not retried by every test
	seq      atomic.Int64
)

// running returns the server, starting it on first use and restarting it after a Stop.
func running() (*gateway, error) {
	mu.Lock()
	defer mu.Unlock()
	switch {
	case shut:
		return nil, errors.New("the server was shut down")
	case startErr != nil:
		return nil, startErr
	}
	if gw == nil {
		gw, startErr = newGateway()
		if startErr != nil {
			return nil, startErr
		}
	}
	if err := gw.ensureRunning(); err != nil {
		startErr = err
		return nil, err
	}
	return gw, nil
}

func bucketName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("lwota-%d-%d-%s", os.Getpid(), seq.Add(1), hex.EncodeToString(b[:]))
}

// gateway is a versitygw process over a temporary directory, watched by a process that kills
// it and removes the directory when this process's end of a pipe closes.
type gateway struct {
	bin       string
	dir       string // temporary: root and the log
	root      string // versitygw's POSIX root
	log       string
	port      int
	accessKey string
	secretKey string

	watchdog *exec.Cmd
	pipe     *os.File // our end: each line is the PID to kill at exit, 0 for none

	pmu    sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd
	exited chan struct{}
}

func newGateway() (*gateway, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lwota-s3test-")
	if err != nil {
		return nil, err
	}
	g := &gateway{
		bin:       bin,
		dir:       dir,
		root:      filepath.Join(dir, "root"),
		log:       filepath.Join(dir, "versitygw.log"),
		accessKey: "LWOTA" + strings.ToUpper(randomHex(8)),
		secretKey: randomHex(20),
	}
	if err := os.Mkdir(g.root, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The watchdog comes first so that whatever happens next is cleaned up.
	if err := g.startWatchdog(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return g, nil
}

// startWatchdog starts "sh" remembering the last PID written to a pipe this process holds;
// at EOF it kills that PID and removes the directory. It has its own process group so that an
// interrupt of the test run does not kill it before it has cleaned up.
func (g *gateway) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	script := `pid=0; while read -r p; do pid=$p; done; [ "$pid" = 0 ] || kill -9 "$pid" 2>/dev/null; rm -rf "$S3TEST_DIR"`
	cmd := exec.Command("/bin/sh", "-c", script, "s3test-watchdog")
	cmd.Env = append(os.Environ(), "S3TEST_DIR="+g.dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start watchdog: %w", err)
	}
	r.Close()
	g.watchdog, g.pipe = cmd, w
	return nil
}

func (g *gateway) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", g.port) }

// ensureRunning starts versitygw unless it is running: on the previous port if it had one
// (a restart), else on a free one.
func (g *gateway) ensureRunning() error {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	if g.cmd != nil {
		select {
		case <-g.exited:
			g.cmd = nil // died on its own: start it again
		default:
			return nil
		}
	}
	var lastErr error
	for attempt := range 3 { // a free port can be taken between picking and binding it
		if g.port == 0 || attempt > 0 {
			port, err := freePort()
			if err != nil {
				return err
			}
			g.port = port
		}
		if lastErr = g.start(); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

// start runs versitygw on g.port and waits for /health; pmu is held.
func (g *gateway) start() error {
	logf, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- s3test: starting on port %d\n", g.port)
	cmd := exec.Command(g.bin, "--port", fmt.Sprintf("127.0.0.1:%d", g.port), "--health", "/health", "--quiet",
		"posix", g.root)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROOT_") && !strings.HasPrefix(kv, "VGW_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "ROOT_ACCESS_KEY_ID="+g.accessKey, "ROOT_SECRET_ACCESS_KEY="+g.secretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", g.bin, err)
	}
	fmt.Fprintf(g.pipe, "%d\n", cmd.Process.Pid)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		fmt.Fprintf(g.pipe, "0\n")
		close(exited)
	}()
	g.cmd, g.exited = cmd, exited

	client := &http.Client{Timeout: time.Second}
	health := g.endpoint() + "/health"
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			g.cmd = nil
			return fmt.Errorf("versitygw on port %d exited during startup (%v):\n%s", g.port, cmd.ProcessState, g.logTail())
		default:
		}
		if resp, err := client.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			g.cmd = nil
			return fmt.Errorf("versitygw on port %d not healthy after %v:\n%s", g.port, startTimeout, g.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops versitygw with SIGKILL and waits until it is gone.
func (g *gateway) kill() {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	<-g.exited
	g.cmd = nil
}

func (g *gateway) logTail() string {
	b, _ := os.ReadFile(g.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// findBinary looks in $LWOTA_VERSITYGW, then bin/ at the repository root, then PATH.
func findBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("versitygw: %s=%s: %w; %s", EnvBinary, p, err, installHint)
		}
		return p, nil
	}
	var tried []string
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := sysdeps.Lookup("versitygw"); err == nil {
		return p, nil
	}
	tried = append(tried, "PATH")
	return "", fmt.Errorf("versitygw not found (looked in $%s, %s): %s", EnvBinary, strings.Join(tried, ", "), installHint)
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
