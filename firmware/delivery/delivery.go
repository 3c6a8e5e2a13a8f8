// Package delivery connects the image catalog to the firmware update driver and to devices:
// package facts and push reads for the driver, download grants for CoAP pulls, HTTP(S) pulls.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/transfer"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Catalog is the part of the image catalog delivery reads (firmware.Catalog implements it).
type Catalog interface {
	Image(ctx context.Context, id string) (*firmware.Image, error)
	DownloadURL(ctx context.Context, id string, ttl time.Duration) (string, error)
}

// Jobs finds update jobs (the fwupdate store).
type Jobs interface {
	GetJob(ctx context.Context, id string) (*fwupdate.Job, error)
}

// Devices finds registrations (the LwM2M core).
type Devices interface {
	Device(ctx context.Context, endpoint string) (*registration.Registration, error)
}

// Config says where devices reach lwota. Empty bases are not offered.
type Config struct {
	CoAPURL  string // "coap://fota.example.com:5683"
	CoAPSURL string // "coaps://fota.example.com:5684"
	// CoAP over TCP and TLS (RFC 8323), for devices whose /5/0/8 lists 4 or 5.
	CoAPTCPURL  string // "coap+tcp://fota.example.com:5683"
	CoAPSTCPURL string // "coaps+tcp://fota.example.com:5684"
	HTTPURL     string // "https://fota.example.com": lwota's HTTP listener, which redirects to the blob store
}

// Packages implements fwupdate.Packages over the catalog and the CoAP transfer server.
type Packages struct {
	bases    func() Config
	catalog  Catalog
	transfer *transfer.Server
}

// NewPackages returns the driver's view of the catalog. bases is asked at every URI, because a
// listener on port 0 knows its address only once it listens.
func NewPackages(bases func() Config, catalog Catalog, xfer *transfer.Server) *Packages {
	return &Packages{bases: bases, catalog: catalog, transfer: xfer}
}

var _ fwupdate.Packages = (*Packages)(nil)

// Package describes image id.
func (p *Packages) Package(ctx context.Context, id string) (fwupdate.Package, error) {
	img, err := image(ctx, p.catalog, id)
	if err != nil {
		return fwupdate.Package{}, err
	}
	return fwupdate.Package{ID: img.ID, Version: img.Version, Size: img.Size, SHA256: img.SHA256}, nil
}

// Body reads image id through the transfer server's chunk cache.
func (p *Packages) Body(ctx context.Context, id string) (io.ReaderAt, error) {
	img, err := image(ctx, p.catalog, id)
	if err != nil {
		return nil, err
	}
	return p.transfer.Reader(ctx, img.BlobKey, img.Size), nil
}

// URI returns job j's download URI for delivery: lwota's own /fw/{token} on CoAP, CoAPS or
// HTTP(S). The token names the job, so every block or request is checked against it.
func (p *Packages) URI(_ context.Context, j *fwupdate.Job, delivery string, until time.Time) (string, error) {
	cfg, base := p.bases(), ""
	switch delivery {
	case fwupdate.DeliveryCoAP:
		base = cfg.CoAPURL
	case fwupdate.DeliveryCoAPS:
		base = cfg.CoAPSURL
	case fwupdate.DeliveryCoAPTCP:
		base = cfg.CoAPTCPURL
	case fwupdate.DeliveryCoAPTLS:
		base = cfg.CoAPSTCPURL
	case fwupdate.DeliveryHTTP, fwupdate.DeliveryHTTPS:
		if strings.HasPrefix(cfg.HTTPURL, delivery+"://") {
			base = cfg.HTTPURL
		}
	}
	if base == "" {
		return "", fmt.Errorf("delivery: %s pulls are not offered", delivery)
	}
	return p.transfer.URIUntil(base, j.ID, until)
}

// image is the catalog's image, with its not-found translated for the driver.
func image(ctx context.Context, c Catalog, id string) (*firmware.Image, error) {
	img, err := c.Image(ctx, id)
	if errors.Is(err, firmware.ErrNotFound) {
		return nil, fmt.Errorf("image %s: %w", id, fwupdate.ErrImageNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", id, err)
	}
	return img, nil
}

// Progress follows how far each job's CoAP pull has got (fwupdate.Driver implements it).
type Progress interface {
	// Progress is told that jobID's image was served up to byte n. It is called for every
	// block, so it must return at once.
	Progress(jobID string, n int64)
}

// Grants implements transfer.Grants: a CoAP download is served to the job's own device while
// the job is delivering. It is a transfer.Tracker too, passing every block served on to the
// Progress it follows.
type Grants struct {
	jobs     Jobs
	devices  Devices
	catalog  Catalog
	progress Progress // nil until Follow
}

// NewGrants returns the transfer server's access check.
func NewGrants(jobs Jobs, devices Devices, catalog Catalog) *Grants {
	return &Grants{jobs: jobs, devices: devices, catalog: catalog}
}

var (
	_ transfer.Grants  = (*Grants)(nil)
	_ transfer.Tracker = (*Grants)(nil)
)

// Follow makes g tell p about every block the transfer server serves. Call it before the
// transfer server serves: the driver that implements p is built after g (its Package URIs
// need the transfer server, which needs g).
func (g *Grants) Follow(p Progress) { g.progress = p }

// Served implements transfer.Tracker.
func (g *Grants) Served(jobID string, end int64) {
	if g.progress != nil {
		g.progress.Progress(jobID, end)
	}
}

// Grant answers transfer.ErrForbidden for a job that is not from's or not delivering.
func (g *Grants) Grant(ctx context.Context, jobID string, from transport.Peer) (transfer.Grant, error) {
	j, reg, err := g.lookup(ctx, jobID)
	if err != nil {
		return transfer.Grant{}, err
	}
	if err := fwupdate.MayDownload(j, reg, from); err != nil {
		return transfer.Grant{}, fmt.Errorf("%w: %v", transfer.ErrForbidden, err)
	}
	img, err := image(ctx, g.catalog, j.ImageID)
	if errors.Is(err, fwupdate.ErrImageNotFound) {
		return transfer.Grant{}, fmt.Errorf("%w: %v", transfer.ErrForbidden, err)
	}
	if err != nil {
		return transfer.Grant{}, err
	}
	return transfer.Grant{BlobKey: img.BlobKey, Size: img.Size, SHA256: img.SHA256}, nil
}

// lookup returns the job and its device's registration; an unknown job or device is forbidden.
func (g *Grants) lookup(ctx context.Context, jobID string) (*fwupdate.Job, *registration.Registration, error) {
	j, err := g.jobs.GetJob(ctx, jobID)
	if errors.Is(err, fwupdate.ErrJobNotFound) {
		return nil, nil, fmt.Errorf("%w: no job %s", transfer.ErrForbidden, jobID)
	}
	if err != nil {
		return nil, nil, err
	}
	reg, err := g.devices.Device(ctx, j.Endpoint)
	if errors.Is(err, registration.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: device %s unknown", transfer.ErrForbidden, j.Endpoint)
	}
	if err != nil {
		return nil, nil, err
	}
	return j, reg, nil
}

// HTTPHandler serves GET /fw/{token} on lwota's HTTP listener for HTTP(S) pulls: the same
// token as CoAP names the job, and the answer is a redirect to the blob store (a presigned S3
// URL, or the local store's signed URL), so the bytes bypass lwota while the URI the device is
// given stays short (Object 5's Package URI holds at most 255 characters; a presigned URL does not fit).
type HTTPHandler struct {
	tokens *transfer.Tokens
	grants *Grants
	ttl    time.Duration
	log    *slog.Logger
}

// NewHTTPHandler returns the HTTP pull handler; mount it at transfer.PathPrefix. ttl is how
// long the blob store URL it redirects to stays valid (0: 15 minutes).
func NewHTTPHandler(tokens *transfer.Tokens, grants *Grants, ttl time.Duration, logger *slog.Logger) *HTTPHandler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	return &HTTPHandler{tokens: tokens, grants: grants, ttl: ttl, log: logger}
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	tok, ok := strings.CutPrefix(r.URL.Path, transfer.PathPrefix)
	if !ok || tok == "" || strings.Contains(tok, "/") {
		http.NotFound(w, r)
		return
	}
	jobID, err := h.tokens.Parse(tok)
	if err != nil {
		http.Error(w, "no such package", http.StatusNotFound) // expired and forged alike
		return
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "bad client address", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	j, reg, err := h.grants.lookup(ctx, jobID)
	if err == nil {
		err = fwupdate.MayFetchHTTP(j, reg, ap.Addr())
	}
	var u string
	if err == nil {
		u, err = h.grants.catalog.DownloadURL(ctx, j.ImageID, h.ttl)
	}
	switch {
	case errors.Is(err, transfer.ErrForbidden), errors.Is(err, fwupdate.ErrForbidden):
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	case err != nil:
		h.log.Warn("http pull failed", "job", jobID, "err", err)
		http.Error(w, "package unavailable, try again", http.StatusServiceUnavailable)
		return
	}
	if _, perr := url.Parse(u); perr != nil {
		http.Error(w, "package unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusTemporaryRedirect) // 307: a HEAD stays a HEAD, a Range stays
}
