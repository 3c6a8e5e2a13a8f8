package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

const imageUsage = `usage: lwota image <command> [flags]

commands:
  push    upload a firmware image with its detached signature
  list    list images (--model, --version, --label k=v)
  show ID print one image

Every command takes --server (env LWOTA_SERVER, default http://127.0.0.1:8080) and --token
(env LWOTA_TOKEN, sent as Authorization: Bearer). Output is JSON on stdout.
`

// maxSignatureFile caps --sig; real signatures are 64 to 72 bytes.
const maxSignatureFile = 64 << 10

func imageCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runSubcommand(ctx, "image", imageUsage, map[string]subcommand{
		"push": imagePush,
		"list": imageList,
		"show": imageShow,
	}, args, stdout, stderr, getenv)
}

// clientFlags are the flags every API client command has.
type clientFlags struct {
	server string
	token  string
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.server, "server", "http://127.0.0.1:8080", "lwota server URL (env LWOTA_SERVER)")
	fs.StringVar(&cf.token, "token", "", "API token, sent as Authorization: Bearer (env LWOTA_TOKEN)")
}

// parseClient parses args, flags and positional arguments in any order, and returns the positional
// ones. Only --server and --token have environment twins here: LWOTA_FILE or LWOTA_VERSION lying
// around in a CI job must not change what is uploaded.
func parseClient(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	env := func(name string) string {
		if name == envName("server") || name == envName("token") {
			return getenv(name)
		}
		return ""
	}
	var positional []string
	for {
		if err := parseWithEnv(fs, args, env); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// labelsFlag is a repeatable k=v flag.
type labelsFlag map[string]string

func (l labelsFlag) String() string {
	var s []string
	for k, v := range l {
		s = append(s, k+"="+v)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func (l labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, not %q", s)
	}
	if _, dup := l[k]; dup {
		return fmt.Errorf("label %q given twice", k)
	}
	l[k] = v
	return nil
}

type pushConfig struct {
	clientFlags
	file, sig    string
	meta         imageUpload
	labels       labelsFlag
	targetLabels labelsFlag
	progress     string
}

func parsePushFlags(args []string, stderr io.Writer, getenv func(string) string) (pushConfig, error) {
	c := pushConfig{labels: labelsFlag{}, targetLabels: labelsFlag{}}
	fs := newFlagSet("image push", stderr)
	c.register(fs)
	fs.StringVar(&c.file, "file", "", "the image file (required)")
	fs.StringVar(&c.sig, "sig", "", "its detached signature, raw bytes as openssl writes them (leave out for unsigned images, development servers only)")
	fs.StringVar(&c.meta.Version, "version", "", "the image's version, e.g. 1.4.2 (required; an MCUboot image's header must agree)")
	fs.StringVar(&c.meta.Model, "model", "", "the device model it is for (required)")
	fs.StringVar(&c.meta.Name, "name", "", "image name (default: the file's base name)")
	fs.StringVar(&c.meta.Manufacturer, "manufacturer", "", "the device manufacturer it is for")
	fs.StringVar(&c.meta.DeviceType, "device-type", "", "the device type it is for")
	fs.Var(c.labels, "label", "the image's label `k=v`; repeat for more")
	fs.Var(c.targetLabels, "target-label", "a device label `k=v` the image is for; repeat for more")
	fs.StringVar(&c.meta.ReleaseNotes, "notes", "", "release notes")
	fs.StringVar(&c.meta.KeyID, "key-id", "", "the id of the one trusted key that must verify the signature")
	fs.StringVar(&c.meta.SHA256, "sha256", "", "the SHA-256 the file must have, hex (checked here and by the server)")
	fs.StringVar(&c.progress, "progress", "auto", "upload progress bar on stderr: auto (when stderr is a terminal), always or never")
	rest, err := parseClient(fs, args, getenv)
	if err != nil {
		return c, err
	}
	switch {
	case len(rest) > 0:
		return c, fmt.Errorf("image push: unexpected argument %q", rest[0])
	case c.file == "":
		return c, errors.New("image push: --file is required")
	case c.meta.Version == "":
		return c, errors.New("image push: --version is required")
	case c.meta.Model == "":
		return c, errors.New("image push: --model is required")
	case c.progress != "auto" && c.progress != "always" && c.progress != "never":
		return c, fmt.Errorf("image push: --progress %q: want auto, always or never", c.progress)
	}
	if c.meta.Name == "" {
		c.meta.Name = filepath.Base(c.file)
	}
	c.meta.Labels, c.meta.TargetLabels = c.labels, c.targetLabels
	return c, nil
}

// imagePush: hash the file in one streaming pass, then stream it as the raw-body upload with its
// digest, so the server checks that what it stored is what was hashed here.
func imagePush(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parsePushFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	cl, err := cfg.client("image push")
	if err != nil {
		return err
	}
	if cfg.sig != "" {
		if cfg.meta.Signature, err = readSmallFile(cfg.sig, maxSignatureFile); err != nil {
			return fmt.Errorf("image push: signature: %w", err)
		}
	}
	f, err := os.Open(cfg.file)
	if err != nil {
		return fmt.Errorf("image push: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image push: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return fmt.Errorf("image push: %s is not a regular, non-empty file", cfg.file)
	}
	size := st.Size()
	h := sha256.New()
	if n, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("image push: hashing %s: %w", cfg.file, err)
	} else if n != size {
		return fmt.Errorf("image push: %s changed while it was hashed (%d bytes, then %d)", cfg.file, size, n)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if cfg.meta.SHA256 != "" && !strings.EqualFold(cfg.meta.SHA256, sum) {
		return fmt.Errorf("image push: %s has SHA-256 %s, not the %s of --sha256", cfg.file, sum, cfg.meta.SHA256)
	}
	cfg.meta.SHA256 = sum
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("image push: %w", err)
	}

	var body io.Reader = f
	var bar *progressbar.ProgressBar
	if cfg.progress == "always" || cfg.progress == "auto" && isTerminal(stderr) {
		bar = newProgressBar(stderr, size, "uploading "+filepath.Base(cfg.file))
		body = io.TeeReader(f, bar)
	}
	answer, err := cl.pushImage(ctx, cfg.meta, body, size)
	if bar != nil && !bar.IsFinished() {
		_ = bar.Exit() // ends the bar's line so the error starts on its own
	}
	if err != nil {
		return fmt.Errorf("image push %s: %w", cfg.file, err)
	}
	return writeJSON(stdout, answer)
}

// isTerminal reports whether w is a terminal (and not a pipe, a file or a CI log).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgressBar(w io.Writer, size int64, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetRenderBlankState(true),
	)
}

func imageList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	var model, ver string
	labels := labelsFlag{}
	fs := newFlagSet("image list", stderr)
	cf.register(fs)
	fs.StringVar(&model, "model", "", "images for this device model")
	fs.StringVar(&ver, "version", "", "images of exactly this version")
	fs.Var(labels, "label", "images with label `k=v`; repeat for more, all must match")
	cl, err := noArgClient("image list", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	q := url.Values{}
	if model != "" {
		q.Set("model", model)
	}
	if ver != "" {
		q.Set("version", ver)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		q.Add("label", k+"="+labels[k])
	}
	images, err := cl.listImages(ctx, q)
	if err != nil {
		return fmt.Errorf("image list: %w", err)
	}
	return writeJSONList(stdout, images)
}

func imageShow(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var cf clientFlags
	fs := newFlagSet("image show", stderr)
	cf.register(fs)
	cl, id, err := oneArgClient("image show", "image id", fs, &cf, args, getenv)
	if err != nil {
		return err
	}
	if id, err = cl.resolveImage(ctx, id); err != nil {
		return fmt.Errorf("image show: %w", err)
	}
	answer, err := cl.image(ctx, id)
	if err != nil {
		return fmt.Errorf("image show %s: %w", id, err)
	}
	return writeJSON(stdout, answer)
}
