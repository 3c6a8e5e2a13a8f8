package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lwota/lwota/api"
)

// client talks to lwota's REST API for the CI-facing commands (image, key). It knows the routes and
// the error shape; what to print is the commands' business.
type client struct {
	base  string // server root without a trailing slash: http://127.0.0.1:8080, or https://host/lwota
	token string
	http  *http.Client
}

// maxAnswerBytes caps the JSON answers the client reads.
const maxAnswerBytes = 32 << 20

func newClient(server, token string) (*client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: want an http:// or https:// URL", server)
	}
	// No overall timeout: a large upload takes as long as it takes; ctx (Ctrl-C) ends it.
	return &client{base: strings.TrimSuffix(server, "/"), token: token, http: &http.Client{}}, nil
}

// apiError is an error answer of the API: {"error":{"code":...,"message":...}}. Its Status
// decides the exit status of the command (exit.go).
type apiError struct {
	Status    int
	Code      string // empty when the answer was not the API's error shape (a proxy, say)
	Message   string
	RequestID string
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("server answered %d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// send sends req with the token and lwota's User-Agent, accepting the media type accept.
func (c *client) send(req *http.Request, accept string) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "lwota/"+lwotaVersion())
	return c.http.Do(req)
}

// errorShape reads the API's error answer {"error":{"code":...,"message":...}}; ok is false for
// anything else.
func errorShape(body []byte) (code, message string, ok bool) {
	var eb api.ErrorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" {
		return "", "", false
	}
	return eb.Error.Code, eb.Error.Message, true
}

// do sends req and returns the answer's body when its status is want, an *apiError otherwise.
func (c *client) do(req *http.Request, want int) ([]byte, error) {
	resp, err := c.send(req, "application/json")
	if err != nil {
		return nil, err // *url.Error: names method, URL and cause
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Redacted(), err)
	}
	if resp.StatusCode == want {
		return body, nil
	}
	se := &apiError{Status: resp.StatusCode, RequestID: resp.Header.Get(api.HeaderRequestID)}
	if code, msg, ok := errorShape(body); ok {
		se.Code, se.Message = code, msg
	} else {
		se.Message = http.StatusText(resp.StatusCode)
		if line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n"); line != "" && len(line) <= 200 {
			se.Message += ": " + line
		}
	}
	return nil, se
}

func (c *client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, method, c.base+api.Prefix+path, body)
}

func (c *client) get(ctx context.Context, path string) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return c.do(req, http.StatusOK)
}

func (c *client) postJSON(ctx context.Context, path string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, http.StatusCreated)
}

// patchJSON sends v as a PATCH and returns the 200 answer.
func (c *client) patchJSON(ctx context.Context, path string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPatch, path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, http.StatusOK)
}

// imageUpload is the metadata of an image push: the API's upload metadata, sent as headers, and
// the detached signature.
type imageUpload struct {
	api.UploadMetadata
	Signature []byte // nil: unsigned
}

// pushImage streams body (size bytes) as the raw-body upload and returns the created image's JSON.
func (c *client) pushImage(ctx context.Context, m imageUpload, body io.Reader, size int64) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "/images", body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	h := req.Header
	h.Set("Content-Type", "application/octet-stream")
	for name, v := range map[string]string{
		api.HeaderName: m.Name, api.HeaderVersion: m.Version, api.HeaderManufacturer: m.Target.Manufacturer,
		api.HeaderModel: m.Target.Model, api.HeaderDeviceType: m.Target.DeviceType, api.HeaderReleaseNotes: m.ReleaseNotes,
		api.HeaderLabels: labelHeader(m.Labels), api.HeaderTargetLabels: labelHeader(m.Target.Labels),
		api.HeaderKeyID: m.KeyID, api.HeaderSHA256: m.SHA256, api.HeaderMetadata: labelHeader(m.Metadata),
	} {
		if v != "" {
			if name != api.HeaderLabels && name != api.HeaderTargetLabels && name != api.HeaderMetadata {
				v = headerEscape(v)
			}
			h.Set(name, v)
		}
	}
	if m.Signature != nil {
		h.Set(api.HeaderSignature, base64.StdEncoding.EncodeToString(m.Signature))
	}
	return c.do(req, http.StatusCreated)
}

// headerEscape percent-encodes a header value as the API decodes it: everything but unreserved
// characters, spaces as %20 (never "+").
func headerEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// labelHeader is k=v,k=v with keys and values escaped one by one, so they may hold "," and "=".
func labelHeader(labels map[string]string) string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		pairs = append(pairs, headerEscape(k)+"="+headerEscape(labels[k]))
	}
	return strings.Join(pairs, ",")
}

// imagePage is one page of GET /images, each image kept as the server wrote it.
type imagePage struct {
	Images     []json.RawMessage `json:"images"`
	NextCursor string            `json:"next_cursor"`
}

// listImages follows next_cursor to the end and returns every image.
func (c *client) listImages(ctx context.Context, q url.Values) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for {
		body, err := c.get(ctx, "/images?"+q.Encode())
		if err != nil {
			return nil, err
		}
		var p imagePage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("image list answer: %w", err)
		}
		all = append(all, p.Images...)
		if p.NextCursor == "" {
			return all, nil
		}
		if p.NextCursor == q.Get("cursor") {
			return nil, errors.New("image list: the server repeated its cursor")
		}
		q.Set("cursor", p.NextCursor)
	}
}

func (c *client) image(ctx context.Context, id string) ([]byte, error) {
	return c.get(ctx, "/images/"+url.PathEscape(id))
}

func (c *client) addKey(ctx context.Context, name string, pem []byte) ([]byte, error) {
	return c.postJSON(ctx, "/signing-keys", map[string]string{"name": name, "public_key_pem": string(pem)})
}

func (c *client) keys(ctx context.Context) ([]json.RawMessage, error) {
	body, err := c.get(ctx, "/signing-keys")
	if err != nil {
		return nil, err
	}
	var l struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("key list answer: %w", err)
	}
	return l.Keys, nil
}

func (c *client) revokeKey(ctx context.Context, id string) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodDelete, "/signing-keys/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	return c.do(req, http.StatusOK)
}

// updatesPath is the update routes of one device.
func updatesPath(endpoint string) string { return "/devices/" + url.PathEscape(endpoint) + "/updates" }

// startUpdate asks for a firmware update of endpoint; body is the request's JSON. The answer is the job.
func (c *client) startUpdate(ctx context.Context, endpoint string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, updatesPath(endpoint), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, http.StatusAccepted)
}

// updates returns the newest limit jobs of endpoint, newest first, each as the server wrote it.
func (c *client) updates(ctx context.Context, endpoint string, limit int) ([]json.RawMessage, error) {
	body, err := c.get(ctx, updatesPath(endpoint)+"?limit="+strconv.Itoa(limit))
	if err != nil {
		return nil, err
	}
	var l struct {
		Updates []json.RawMessage `json:"updates"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("update list answer: %w", err)
	}
	return l.Updates, nil
}

// update returns one job of endpoint with its history.
func (c *client) update(ctx context.Context, endpoint, id string) ([]byte, error) {
	return c.get(ctx, updatesPath(endpoint)+"/"+url.PathEscape(id))
}

// cancelUpdate cancels a job of endpoint; reason may be empty.
func (c *client) cancelUpdate(ctx context.Context, endpoint, id, reason string) ([]byte, error) {
	var body io.Reader
	if reason != "" {
		b, err := json.Marshal(map[string]string{"reason": reason})
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, http.MethodPost, updatesPath(endpoint)+"/"+url.PathEscape(id)+"/cancel", body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, http.StatusOK)
}

// writeJSONList prints a list of raw JSON values as writeJSON does; no values print as [], not null.
func writeJSONList(w io.Writer, list []json.RawMessage) error {
	if list == nil {
		return writeJSON(w, []byte("[]"))
	}
	return writeJSON(w, list)
}

// writeJSON prints v (raw JSON, or a list of raw JSON values) indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return err
		}
	}
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(b), "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}
