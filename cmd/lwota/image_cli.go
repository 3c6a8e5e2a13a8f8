package main

import (
	"encoding/json"
	"github.com/lwota/lwota/api"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"context"
	"crypto/sha256"
	"encoding/hex"
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

// maxSignatureFile caps --sig; real signatures are 64 to 72 bytes.
const maxSignatureFile = 64 << 10

// maxNotesFile caps --notes-file at the server's limit on release notes.
const maxNotesFile = 64 << 10

// imageEdit is the body of PATCH /images/{id}: a nil field is left as it is; an empty, non-nil
// Metadata removes every entry.
type imageEdit struct {
	ReleaseNotes *string            `json:"release_notes,omitempty"`
	Metadata     *map[string]string `json:"metadata,omitempty"`
}

// newImageEditCmd changes what may change after an upload: the release notes and the metadata.
func newImageEditCmd(getenv func(string) string) *cobra.Command {
	var notes, notesFile string
	var clearMeta bool
	meta := labelsFlag{}
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "edit ID [--notes TEXT | --notes-file F] [--metadata k=v ...] [--clear-metadata]",
		Short: "change an image's release notes or metadata (ID may be a unique prefix)",
		Long: "Change an image's release notes or metadata. Its version, target and content never change.\n" +
			"--metadata replaces the whole map; --clear-metadata removes every entry; --notes '' removes the notes.",
		Args: exactArgs(1, "the image id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body imageEdit
			f := cmd.Flags()
			switch {
			case f.Changed("notes") && notesFile != "":
				return usagef("image edit: give --notes or --notes-file, not both")
			case clearMeta && len(meta) > 0:
				return usagef("image edit: give --metadata or --clear-metadata, not both")
			case !f.Changed("notes") && notesFile == "" && len(meta) == 0 && !clearMeta:
				return usagef("image edit: nothing to change: give --notes, --notes-file, --metadata or --clear-metadata")
			}
			if f.Changed("notes") {
				body.ReleaseNotes = &notes
			}
			if notesFile != "" {
				b, err := readSmallFile(notesFile, maxNotesFile)
				if err != nil {
					return fmt.Errorf("image edit: release notes: %w", err)
				}
				s := string(b)
				body.ReleaseNotes = &s
			}
			if len(meta) > 0 || clearMeta {
				m := map[string]string(meta)
				body.Metadata = &m
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			id, err := cl.resolveImage(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("image edit: %w", err)
			}
			answer, err := cl.patchJSON(cmd.Context(), "/images/"+url.PathEscape(id), body)
			if err != nil {
				return fmt.Errorf("image edit %s: %w", id, err)
			}
			return o.print(out(cmd), answer, imageTable(answer, true))
		},
	}
	cmd.Flags().StringVar(&notes, "notes", "", "the new release notes ('' removes them)")
	cmd.Flags().StringVar(&notesFile, "notes-file", "", "read the new release notes from this file")
	cmd.Flags().Var(meta, "metadata", "a metadata entry `k=v`; repeat for more; replaces the whole map")
	cmd.Flags().BoolVar(&clearMeta, "clear-metadata", false, "remove every metadata entry")
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func newImageCmd(getenv func(string) string) *cobra.Command {
	return group("image", "push, list and show firmware images on a server (CI uploads)",
		newImagePushCmd(getenv), newImageListCmd(getenv), newImageShowCmd(getenv), newImageEditCmd(getenv))
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

func (l labelsFlag) Type() string { return "k=v" }

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
	file, sig    string
	meta         imageUpload
	labels       labelsFlag
	targetLabels labelsFlag
	metadata     labelsFlag
	notesFile    string
	progress     string
}

// register binds the flags of image push to c.
func (c *pushConfig) register(fs *pflag.FlagSet) {
	c.labels, c.targetLabels, c.metadata = labelsFlag{}, labelsFlag{}, labelsFlag{}
	fs.StringVar(&c.file, "file", "", "the image file (required)")
	fs.StringVar(&c.sig, "sig", "", "its detached signature, raw bytes as openssl writes them (leave out for unsigned images, development servers only)")
	fs.StringVar(&c.meta.Version, "version", "", "the image's version, e.g. 1.4.2 (required; an MCUboot image's header must agree)")
	fs.StringVar(&c.meta.Target.Model, "model", "", "the device model it is for (required)")
	fs.StringVar(&c.meta.Name, "name", "", "image name (default: the file's base name)")
	fs.StringVar(&c.meta.Target.Manufacturer, "manufacturer", "", "the device manufacturer it is for")
	fs.StringVar(&c.meta.Target.DeviceType, "device-type", "", "the device type it is for")
	fs.Var(c.labels, "label", "the image's label `k=v`; repeat for more")
	fs.Var(c.targetLabels, "target-label", "a device label `k=v` the image is for; repeat for more")
	fs.StringVar(&c.meta.ReleaseNotes, "notes", "", "release notes (free text, shown where an image is picked)")
	fs.StringVar(&c.notesFile, "notes-file", "", "read the release notes from this file (instead of --notes)")
	fs.Var(c.metadata, "metadata", "a metadata entry `k=v` (shown, never matched, unlike --label); repeat for more")
	fs.StringVar(&c.meta.KeyID, "key-id", "", "the id of the one trusted key that must verify the signature")
	fs.StringVar(&c.meta.SHA256, "sha256", "", "the SHA-256 the file must have, hex (checked here and by the server)")
	fs.StringVar(&c.progress, "progress", "auto", "upload progress bar on stderr: auto (when stderr is a terminal), always or never")
}

// check validates the flags and fills in the defaults that depend on others.
func (c *pushConfig) check() error {
	switch {
	case c.file == "":
		return usagef("image push: --file is required")
	case c.meta.Version == "":
		return usagef("image push: --version is required")
	case c.meta.Target.Model == "":
		return usagef("image push: --model is required")
	case c.progress != "auto" && c.progress != "always" && c.progress != "never":
		return usagef("image push: --progress %q: want auto, always or never", c.progress)
	case c.notesFile != "" && c.meta.ReleaseNotes != "":
		return usagef("image push: give --notes or --notes-file, not both")
	}
	if c.notesFile != "" {
		b, err := readSmallFile(c.notesFile, maxNotesFile)
		if err != nil {
			return fmt.Errorf("image push: release notes: %w", err)
		}
		c.meta.ReleaseNotes = string(b)
	}
	c.meta.Metadata = c.metadata
	if c.meta.Name == "" {
		c.meta.Name = filepath.Base(c.file)
	}
	c.meta.Labels, c.meta.Target.Labels = c.labels, c.targetLabels
	return nil
}

func newImagePushCmd(getenv func(string) string) *cobra.Command {
	var cfg pushConfig
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "push --file F --version V --model M [--sig F.sig]",
		Short: "upload a firmware image with its detached signature",
		Long: "Upload a firmware image: the file is hashed in one streaming pass, then streamed as the raw-body\n" +
			"upload with its digest, so that the server checks that what it stored is what was hashed here.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.check(); err != nil {
				return err
			}
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			answer, err := imagePush(cmd.Context(), cl, cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return o.print(out(cmd), answer, imageTable(answer, false))
		},
	}
	cfg.register(cmd.Flags())
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

// imagePush: hash the file in one streaming pass, then stream it as the raw-body upload with its
// digest, so the server checks that what it stored is what was hashed here. It returns the
// server's answer.
func imagePush(ctx context.Context, cl *client, cfg pushConfig, stderr io.Writer) ([]byte, error) {
	var err error
	if cfg.sig != "" {
		if cfg.meta.Signature, err = readSmallFile(cfg.sig, maxSignatureFile); err != nil {
			return nil, fmt.Errorf("image push: signature: %w", err)
		}
	}
	f, err := os.Open(cfg.file)
	if err != nil {
		return nil, fmt.Errorf("image push: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image push: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("image push: %s is not a regular, non-empty file", cfg.file)
	}
	size := st.Size()
	h := sha256.New()
	if n, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("image push: hashing %s: %w", cfg.file, err)
	} else if n != size {
		return nil, fmt.Errorf("image push: %s changed while it was hashed (%d bytes, then %d)", cfg.file, size, n)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if cfg.meta.SHA256 != "" && !strings.EqualFold(cfg.meta.SHA256, sum) {
		return nil, fmt.Errorf("image push: %s has SHA-256 %s, not the %s of --sha256", cfg.file, sum, cfg.meta.SHA256)
	}
	cfg.meta.SHA256 = sum
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("image push: %w", err)
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
		return nil, fmt.Errorf("image push %s: %w", cfg.file, err)
	}
	return answer, nil
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

func newImageListCmd(getenv func(string) string) *cobra.Command {
	var model, ver string
	labels := labelsFlag{}
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "list [--model M] [--version V] [--label k=v]",
		Short: "list images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd, getenv)
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
			images, err := cl.listImages(cmd.Context(), q)
			if err != nil {
				return fmt.Errorf("image list: %w", err)
			}
			return o.printList(out(cmd), images, imageListTable(images))
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "images for this device model")
	cmd.Flags().StringVar(&ver, "version", "", "images of exactly this version")
	cmd.Flags().Var(labels, "label", "images with label `k=v`; repeat for more, all must match")
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

func newImageShowCmd(getenv func(string) string) *cobra.Command {
	var o *outputFormat
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "print one image (ID may be a unique prefix)",
		Args:  exactArgs(1, "the image id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd, getenv)
			if err != nil {
				return err
			}
			id, err := cl.resolveImage(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("image show: %w", err)
			}
			answer, err := cl.image(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("image show %s: %w", id, err)
			}
			return o.print(out(cmd), answer, imageTable(answer, true))
		},
	}
	o = addOutputFlag(cmd, outputAuto)
	return cmd
}

// imageTable draws one image: a row of the list's table, or with detail every field.
func imageTable(raw []byte, detail bool) func(io.Writer) error {
	return func(w io.Writer) error {
		var img api.Image
		if err := json.Unmarshal(raw, &img); err != nil {
			return fmt.Errorf("image answer: %w", err)
		}
		if !detail {
			return imageTableRows(w, []api.Image{img})
		}
		tw := newTable(w)
		row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
		row("image", img.ID)
		row("name", img.Name)
		row("version", img.Version)
		row("target", orDash(strings.Join(nonEmpty(img.Target.Manufacturer, img.Target.Model, img.Target.DeviceType), ", ")))
		if len(img.Target.Labels) > 0 {
			row("target labels", labelsFlag(img.Target.Labels).String())
		}
		row("size", strconv.FormatInt(img.Size, 10)+" bytes")
		row("sha256", img.SHA256)
		row("signature", signatureText(img))
		if len(img.Labels) > 0 {
			row("labels", labelsFlag(img.Labels).String())
		}
		row("uploaded", timeText(img.CreatedAt)+" by "+orDash(img.Uploader))
		if len(img.Metadata) > 0 {
			row("metadata", labelsFlag(img.Metadata).String())
		}
		if img.KeyName != "" {
			row("key", img.KeyName)
		}
		if img.ReleaseNotes != "" {
			row("notes", strings.ReplaceAll(img.ReleaseNotes, "\n", " "))
		}
		return tw.Flush()
	}
}

func signatureText(img api.Image) string {
	if img.Unsigned || img.KeyID == "" {
		return "unsigned"
	}
	return img.SignatureAlgorithm + " by key " + img.KeyID
}

func imageListTable(list []json.RawMessage) func(io.Writer) error {
	return func(w io.Writer) error {
		images, err := decodeList[api.Image]("image list", list)
		if err != nil {
			return err
		}
		if len(images) == 0 {
			_, err := fmt.Fprintln(w, "no images")
			return err
		}
		return imageTableRows(w, images)
	}
}

func imageTableRows(w io.Writer, images []api.Image) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tVERSION\tMODEL\tSIZE\tSIGNATURE\tCREATED")
	for _, img := range images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", img.ID, img.Name, img.Version, orDash(img.Target.Model), img.Size,
			signatureText(img), timeText(img.CreatedAt))
	}
	return tw.Flush()
}
