package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/apitoken"
)

// newRulesEnv has updates and a catalog: dev-a (model S1, running 1.0.0) and dev-c (model S2,
// 1.2.3) next to images for S1 at 1.4.2 and 1.0.0 and one for S2.
func newRulesEnv(t *testing.T) (*testEnv, *fakeUpdates) {
	t.Helper()
	env, u := newUpdatesEnv(t)
	f := &fakeImages{content: map[string][]byte{}, images: []*firmware.Image{
		{ID: "01j0000000000000000000s1new", Version: "1.4.2", Target: firmware.Selector{Model: "S1"}},
		{ID: "01j0000000000000000000s1cur", Version: "1.0.0", Target: firmware.Selector{Model: "S1"}},
		{ID: "01j0000000000000000000s2new", Version: "1.4.2", Target: firmware.Selector{Manufacturer: "Acme", Model: "S2"}},
		{ID: "01j0000000000000000000anyyy", Version: "9.9.9"},
	}}
	env.api.WithImages(f, 0)
	for _, r := range env.devs.regs {
		switch r.Endpoint {
		case "dev-a":
			r.Model = "S1"
		case "dev-c":
			r.Model, r.Manufacturer = "S2", "Other"
		}
	}
	return env, u
}

func TestStartUpdateTargetRules(t *testing.T) {
	tests := []struct {
		name     string
		ep, body string
		role     apitoken.Role
		status   int
		code     string
		message  string // part of the refusal's message
		force    string // the audit entry's force detail
	}{
		{"right model", "dev-a", `{"image_id":"01j0000000000000000000s1new"}`, apitoken.RoleRelease, http.StatusAccepted, "", "", ""},
		{"image for any model", "dev-a", `{"image_id":"01j0000000000000000000anyyy"}`, apitoken.RoleRelease, http.StatusAccepted, "", "", ""},
		{"other model", "dev-a", `{"image_id":"01j0000000000000000000s2new"}`, apitoken.RoleRelease, http.StatusUnprocessableEntity,
			codeModelMismatch, `the image is for model \"S2\", the device's is \"S1\"`, ""},
		{"other manufacturer", "dev-c", `{"image_id":"01j0000000000000000000s2new"}`, apitoken.RoleRelease, http.StatusUnprocessableEntity,
			codeModelMismatch, `manufacturer \"Acme\", the device's is \"Other\"`, ""},
		{"model not known yet", "dev-e", `{"image_id":"01j0000000000000000000s1new"}`, apitoken.RoleRelease, http.StatusUnprocessableEntity,
			codeModelMismatch, "not known yet", ""},
		{"already on the version", "dev-a", `{"image_id":"01j0000000000000000000s1cur"}`, apitoken.RoleRelease, http.StatusConflict,
			codeAlreadyUpToDate, "already runs version 1.0.0", ""},
		{"force needs admin", "dev-a", `{"image_id":"01j0000000000000000000s1cur","force":true}`, apitoken.RoleRelease, http.StatusForbidden,
			codeForbidden, "admin", ""},
		{"admin forces a reinstall", "dev-a", `{"image_id":"01j0000000000000000000s1cur","force":true}`, apitoken.RoleAdmin, http.StatusAccepted,
			"", "", "true,already_up_to_date"},
		{"admin forces another model", "dev-a", `{"image_id":"01j0000000000000000000s2new","force":true}`, apitoken.RoleAdmin, http.StatusAccepted,
			"", "", "true,model_mismatch"},
		{"unknown image", "dev-a", `{"image_id":"nope"}`, apitoken.RoleRelease, http.StatusUnprocessableEntity, codeImageNotFound, "nope", ""},
		{"unknown device", "dev-zz", `{"image_id":"01j0000000000000000000s1new"}`, apitoken.RoleRelease, http.StatusNotFound, codeNotFound, "dev-zz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, u := newRulesEnv(t)
			r := env.do(t, http.MethodPost, "/api/v1/devices/"+tt.ep+"/updates", tt.body, append(jsonCT,
				"Authorization", "Bearer "+env.auth.secrets[tt.role])...)
			if tt.code != "" {
				msg := wantError(t, r, tt.status, tt.code)
				if want := strings.ReplaceAll(tt.message, `\"`, `"`); !strings.Contains(msg, want) {
					t.Fatalf("message %q, want it to contain %q", msg, want)
				}
				if len(u.starts) != 0 {
					t.Fatalf("a refused update reached the driver: %+v", u.starts)
				}
				return
			}
			if r.status != tt.status || len(u.starts) != 1 {
				t.Fatalf("status %d (want %d), %d starts; body %s", r.status, tt.status, len(u.starts), r.body)
			}
			entries := env.auth.audits.entries
			if len(entries) == 0 {
				t.Fatal("no audit entry")
			}
			if got := entries[len(entries)-1].Detail["force"]; got != tt.force {
				t.Fatalf("audit force detail %q, want %q", got, tt.force)
			}
		})
	}
}

func TestImageUploadDuplicateVersion(t *testing.T) {
	tests := []struct {
		name, model, version string
		status               int
	}{
		{"same model and version", "S1", "1.4.2", http.StatusConflict},
		{"same version, other model", "S3", "1.4.2", http.StatusCreated},
		{"same model, other version", "S1", "1.4.3", http.StatusCreated},
		{"same version, no model, one exists", "", "9.9.9", http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := newRulesEnv(t)
			f := env.api.images.(*fakeImages)
			file := []byte("firmware")
			req := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader(file))
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set(HeaderVersion, tt.version)
			req.Header.Set(HeaderModel, tt.model)
			req.Header.Set(HeaderName, "app")
			req.Header.Set(HeaderSignature, "q83vEjRWeJA=")
			r := serve(env.h, req)
			if tt.status == http.StatusConflict {
				msg := wantError(t, r, http.StatusConflict, codeDuplicateVersion)
				if !strings.Contains(msg, fmt.Sprintf("version %s", tt.version)) {
					t.Fatalf("message %q does not name the version", msg)
				}
				if f.uploadCount() != 0 {
					t.Fatal("a duplicate was read into the catalog")
				}
				return
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
		})
	}
}

// racingImages stores a competing upload of the same model and version while an upload streams,
// as a second API node (or request) would between the two checks.
type racingImages struct {
	*fakeImages
}

func (r racingImages) Upload(ctx context.Context, req firmware.UploadRequest, body io.Reader) (*firmware.Image, error) {
	img, err := r.fakeImages.Upload(ctx, req, body)
	if err != nil {
		return nil, err
	}
	img.ID = "01j0000000000000000000zzzzz" // later than the competitor
	r.mu.Lock()
	r.images = append(r.images, &firmware.Image{ID: "01j0000000000000000000racer", Version: req.Version, Target: req.Target},
		img)
	r.mu.Unlock()
	return img, nil
}

func TestImageUploadDuplicateVersionRace(t *testing.T) {
	env, _ := newRulesEnv(t)
	f := env.api.images.(*fakeImages)
	env.api.WithImages(racingImages{f}, 0)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader([]byte("firmware")))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(HeaderVersion, "7.0.0")
	req.Header.Set(HeaderModel, "S1")
	req.Header.Set(HeaderName, "app")
	req.Header.Set(HeaderSignature, "q83vEjRWeJA=")
	msg := wantError(t, serve(env.h, req), http.StatusConflict, codeDuplicateVersion)
	if !strings.Contains(msg, "01j0000000000000000000racer") {
		t.Fatalf("message %q does not name the image that won", msg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.deleted) != 1 || f.deleted[0] != "01j0000000000000000000zzzzz" {
		t.Fatalf("deleted %q, want the later upload removed", f.deleted)
	}
}
