package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/sqlstore"
)

// storeDevices serves Devices from a real store: server.Server without its live registry.
type storeDevices struct{ *sqlstore.Store }

func (s storeDevices) Device(ctx context.Context, ep string) (*registration.Registration, error) {
	return s.GetRegistration(ctx, ep)
}

func (s storeDevices) ListDevices(ctx context.Context, f registration.Filter) ([]*registration.Registration, error) {
	return s.ListRegistrations(ctx, f)
}

func (s storeDevices) CountDevices(ctx context.Context, f registration.Filter) (int, error) {
	return s.CountRegistrations(ctx, f)
}

// storeEnv is the API over a real SQLite store, image catalog (blobs in a directory) and
// campaign manager: what lwota serve wires, without the LwM2M server.
type storeEnv struct {
	*testEnv
	store *sqlstore.Store
	mgr   *campaigns.Manager
	clock *testClock
}

func newStoreEnv(t *testing.T) *storeEnv {
	t.Helper()
	clock := &testClock{now: testNow}
	store, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	blobs, err := blobstore.OpenDir(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	catalog := firmware.NewCatalog(store, blobs, store, firmware.Config{AllowUnsigned: true}, nil, nil, clock.Now)
	env := &testEnv{logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: env.logs}, nil))
	env.api = New(Config{Now: clock.Now}, storeDevices{store}, nil, nil, testTypes, nil, logger)
	env.auth = newTestAuth(t)
	env.api.WithAuth(env.auth.tokens, env.auth.log)
	env.h = env.auth.asAdmin(env.api.Handler())
	mgr := campaigns.New(campaigns.Config{}, store, &campaignJobs{clock: clock}, newCampaignFleet(testNow), catalog, nil, nil, nil, clock.Now)
	env.api.WithImages(catalog, 0).WithCampaigns(mgr).WithFleet(store)
	return &storeEnv{testEnv: env, store: store, mgr: mgr, clock: clock}
}

// upload posts an image with multipart metadata (and a signature when sig is not nil).
func (env *storeEnv) upload(t *testing.T, meta string, content, sig []byte) imageJSON {
	t.Helper()
	parts := []part{{"metadata", []byte(meta)}}
	if sig != nil {
		parts = append(parts, part{"signature", sig})
	}
	parts = append(parts, part{"file", content})
	body, ct := multipartBody(t, parts...)
	r := env.do(t, http.MethodPost, "/api/v1/images", body.String(), "Content-Type", ct)
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img imageJSON
	decodeJSON(t, r.body, &img)
	return img
}

func (env *storeEnv) image(t *testing.T, id string) imageJSON {
	t.Helper()
	r := env.do(t, http.MethodGet, "/api/v1/images/"+id, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET image %s: %d %s", id, r.status, r.body)
	}
	var img imageJSON
	decodeJSON(t, r.body, &img)
	return img
}

// TestImageMetadataUpload: both upload forms carry release notes and metadata, and bad
// metadata refuses the upload.
func TestImageMetadataUpload(t *testing.T) {
	env := newStoreEnv(t)
	img := env.upload(t, `{"name":"fw","version":"1.0.0","target":{"model":"X"},"release_notes":"Line 1\nLine 2",
		"metadata":{"ticket":"FW-1","branch":"main"}}`, []byte("one"), nil)
	want := map[string]string{"ticket": "FW-1", "branch": "main"}
	if got := env.image(t, img.ID); got.ReleaseNotes != "Line 1\nLine 2" || !reflect.DeepEqual(got.Metadata, want) {
		t.Errorf("multipart upload: notes %q metadata %v, want %v", got.ReleaseNotes, got.Metadata, want)
	}

	r := env.do(t, http.MethodPost, "/api/v1/images", "two", "Content-Type", "application/octet-stream",
		HeaderName, "fw", HeaderVersion, "1.0.1", HeaderModel, "X", HeaderReleaseNotes, "Fixes%20it",
		HeaderMetadata, "ticket=FW-2,url=https%3A%2F%2Fex.com%2Fa%2Cb")
	if r.status != http.StatusCreated {
		t.Fatalf("raw upload: %d %s", r.status, r.body)
	}
	var raw imageJSON
	decodeJSON(t, r.body, &raw)
	if want := map[string]string{"ticket": "FW-2", "url": "https://ex.com/a,b"}; raw.ReleaseNotes != "Fixes it" || !reflect.DeepEqual(raw.Metadata, want) {
		t.Errorf("raw upload: notes %q metadata %v, want %v", raw.ReleaseNotes, raw.Metadata, want)
	}

	for _, tc := range []struct {
		name, meta, code string
	}{
		{"metadata not strings", `{"version":"2.0.0","metadata":{"n":1}}`, codeInvalidJSON},
		{"metadata key too long", `{"version":"2.0.1","metadata":{"` + strings.Repeat("k", 64) + `":"v"}}`, codeInvalidImage},
		{"metadata value unprintable", `{"version":"2.0.2","metadata":{"k":"a\u0007"}}`, codeInvalidImage},
	} {
		body, ct := multipartBody(t, part{"metadata", []byte(tc.meta)}, part{"file", []byte("x")})
		wantError(t, env.do(t, http.MethodPost, "/api/v1/images", body.String(), "Content-Type", ct), 400, tc.code)
	}
	wantError(t, env.do(t, http.MethodPost, "/api/v1/images", "three", "Content-Type", "application/octet-stream",
		HeaderVersion, "3.0.0", HeaderMetadata, "novalue"), 400, codeInvalidUpload)
	r = env.do(t, http.MethodGet, "/api/v1/images", "")
	var list imageList
	decodeJSON(t, r.body, &list)
	if len(list.Images) != 2 {
		t.Errorf("%d images after the refused uploads, want 2", len(list.Images))
	}
}

// TestImageEdit: PATCH changes release notes and metadata only; bad input changes nothing.
func TestImageEdit(t *testing.T) {
	env := newStoreEnv(t)
	img := env.upload(t, `{"name":"fw","version":"1.0.0","target":{"model":"X"},"release_notes":"old","metadata":{"a":"1"}}`,
		[]byte("bytes"), nil)
	path := "/api/v1/images/" + img.ID

	r := env.do(t, http.MethodPatch, path, `{"release_notes":"new notes"}`, jsonCT...)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH notes: %d %s", r.status, r.body)
	}
	got := env.image(t, img.ID)
	if got.ReleaseNotes != "new notes" || !reflect.DeepEqual(got.Metadata, map[string]string{"a": "1"}) {
		t.Errorf("after PATCH notes: %q %v", got.ReleaseNotes, got.Metadata)
	}
	r = env.do(t, http.MethodPatch, path, `{"metadata":{"b":"2","c":""}}`, jsonCT...)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH metadata: %d %s", r.status, r.body)
	}
	got = env.image(t, img.ID)
	if got.ReleaseNotes != "new notes" || !reflect.DeepEqual(got.Metadata, map[string]string{"b": "2", "c": ""}) {
		t.Errorf("after PATCH metadata: %q %v", got.ReleaseNotes, got.Metadata)
	}
	if got.Version != "1.0.0" || got.SHA256 != img.SHA256 || got.Target.Model != "X" {
		t.Errorf("PATCH changed what was uploaded: %+v", got)
	}

	before := env.do(t, http.MethodGet, path, "").body
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		header     []string
	}{
		{"version", `{"version":"2.0.0"}`, 400, codeInvalidJSON, jsonCT},
		{"target with notes", `{"release_notes":"x","target":{"model":"Y"}}`, 400, codeInvalidJSON, jsonCT},
		{"empty object", `{}`, 400, codeInvalidJSON, jsonCT},
		{"not an object", `["release_notes"]`, 400, codeInvalidJSON, jsonCT},
		{"null notes", `{"release_notes":null}`, 400, codeInvalidJSON, jsonCT},
		{"null metadata", `{"metadata":null}`, 400, codeInvalidJSON, jsonCT},
		{"metadata number", `{"metadata":{"a":1}}`, 400, codeInvalidJSON, jsonCT},
		{"notes too long", `{"release_notes":"` + strings.Repeat("x", 64<<10+1) + `"}`, 400, codeInvalidImage, jsonCT},
		{"notes unprintable", `{"release_notes":"bell\u0007"}`, 400, codeInvalidImage, jsonCT},
		{"notes ok, metadata bad", `{"release_notes":"fine","metadata":{"":"v"}}`, 400, codeInvalidImage, jsonCT},
		{"too many keys", `{"metadata":{` + manyKeys(65) + `}}`, 400, codeInvalidImage, jsonCT},
		{"trailing data", `{"release_notes":"x"} {}`, 400, codeInvalidJSON, jsonCT},
		{"not JSON", `release_notes=x`, 415, codeUnsupportedMediaType, []string{"Content-Type", "application/x-www-form-urlencoded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, env.do(t, http.MethodPatch, path, tc.body, tc.header...), tc.status, tc.code)
		})
	}
	if after := env.do(t, http.MethodGet, path, "").body; !bytes.Equal(after, before) {
		t.Errorf("a refused PATCH changed the image:\n%s\n%s", before, after)
	}
	wantError(t, env.do(t, http.MethodPatch, "/api/v1/images/nope", `{"release_notes":"x"}`, jsonCT...), 404, codeNotFound)

	// Clearing, and the roles: release may, ci and support may not.
	r = env.do(t, http.MethodPatch, path, `{"release_notes":"","metadata":{}}`, append(jsonCT, "Authorization", bearer(env.auth.secrets[apitoken.RoleRelease]))...)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH as release: %d %s", r.status, r.body)
	}
	if got := env.image(t, img.ID); got.ReleaseNotes != "" || got.Metadata != nil {
		t.Errorf("after clearing: %q %v", got.ReleaseNotes, got.Metadata)
	}
	for _, role := range []apitoken.Role{apitoken.RoleCI, apitoken.RoleSupport} {
		wantError(t, env.do(t, http.MethodPatch, path, `{"release_notes":"x"}`, append(jsonCT, "Authorization", bearer(env.auth.secrets[role]))...), 403, codeForbidden)
	}
	// Every change is in the audit log.
	r = env.do(t, http.MethodGet, "/api/v1/audit?action="+url.QueryEscape("PATCH /api/v1/images/:id"), "")
	var page struct {
		Entries []auditEntryJSON `json:"entries"`
	}
	decodeJSON(t, r.body, &page)
	ok := 0
	for _, e := range page.Entries {
		if e.Status == http.StatusOK && e.Target == path {
			ok++
		}
	}
	if ok != 3 {
		t.Errorf("%d successful PATCHes audited for %s, want 3: %s", ok, img.ID, r.body)
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal("k" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		b.Write(k)
		b.WriteString(`:"v"`)
	}
	return b.String()
}

// TestImageDetail: GET /images/{id} names the signing key and tells the devices on the image
// and the campaigns using it; DELETE refuses while a campaign does.
func TestImageDetail(t *testing.T) {
	env := newStoreEnv(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	r := env.do(t, http.MethodPost, "/api/v1/signing-keys", `{"name":"release-2026","public_key_pem":`+string(keyPEM)+`}`, jsonCT...)
	if r.status != http.StatusCreated {
		t.Fatalf("add key: %d %s", r.status, r.body)
	}
	content := []byte("firmware 1.4.2")
	img := env.upload(t, `{"name":"fw","version":"1.4.2","target":{"model":"X"}}`, content, ed25519.Sign(priv, content))
	other := env.upload(t, `{"name":"fw","version":"1.4.3","target":{"model":"X"}}`, []byte("other"), nil)

	// Devices: two run 1.4.2 on model X, one 1.4.2 on another model, one another version.
	for ep, d := range map[string][2]string{"a": {"1.4.2", "X"}, "b": {"1.4.2", "X"}, "c": {"1.4.2", "Y"}, "d": {"1.4.1", "X"}} {
		if err := env.store.SaveRegistration(context.Background(), &registration.Registration{Endpoint: ep, ID: ep,
			FirmwareVersion: d[0], Model: d[1]}); err != nil {
			t.Fatal(err)
		}
	}
	env.mgr.Tick(context.Background()) // nothing yet
	r = env.do(t, http.MethodPost, "/api/v1/campaigns", `{"name":"roll","image_id":"`+img.ID+`","selector":{"endpoints":["dev-00"]},"waves":[{"percent":100}],"start":true}`, jsonCT...)
	if r.status != http.StatusCreated {
		t.Fatalf("create campaign: %d %s", r.status, r.body)
	}
	var cmp struct {
		ID string `json:"id"`
	}
	decodeJSON(t, r.body, &cmp)

	got := env.image(t, img.ID)
	if got.KeyName != "release-2026" || got.KeyID == "" {
		t.Errorf("key_name %q (key_id %q), want release-2026", got.KeyName, got.KeyID)
	}
	if got.Usage == nil || got.Usage.Devices == nil || *got.Usage.Devices != 2 {
		t.Fatalf("usage %+v, want 2 devices", got.Usage)
	}
	if len(got.Usage.Campaigns) != 1 || got.Usage.Campaigns[0].ID != cmp.ID || got.Usage.Campaigns[0].Name != "roll" {
		t.Errorf("usage campaigns %+v, want %s", got.Usage.Campaigns, cmp.ID)
	}
	if o := env.image(t, other.ID); o.Usage == nil || *o.Usage.Devices != 0 || len(o.Usage.Campaigns) != 0 || o.KeyName != "" {
		t.Errorf("unused unsigned image: %+v", o)
	}
	// The list names keys too, but shows no usage.
	r = env.do(t, http.MethodGet, "/api/v1/images", "")
	var list imageList
	decodeJSON(t, r.body, &list)
	for _, i := range list.Images {
		if i.Usage != nil || (i.ID == img.ID) != (i.KeyName == "release-2026") {
			t.Errorf("listed image %s: key_name %q usage %+v", i.ID, i.KeyName, i.Usage)
		}
	}
	wantError(t, env.do(t, http.MethodDelete, "/api/v1/images/"+img.ID, ""), 409, codeImageInUse)
	if r := env.do(t, http.MethodDelete, "/api/v1/images/"+other.ID, ""); r.status != http.StatusNoContent {
		t.Errorf("delete unused: %d %s", r.status, r.body)
	}
}
