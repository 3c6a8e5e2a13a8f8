package api

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLabelFilterBothRoutes: GET /devices and GET /images read label filters with one parser.
// key=value is the syntax; key:value (the devices' older one) is read only from a parameter
// without '='. Each case runs on both routes: same filter or same 400.
func TestLabelFilterBothRoutes(t *testing.T) {
	tests := []struct {
		name   string
		labels []string          // label= parameters, unescaped
		want   map[string]string // nil with wantErr
		// deviceErr: a key no device can have, refused on /devices only (image label keys are free text).
		wantErr, deviceErr string
	}{
		{name: "key=value", labels: []string{"region=eu"}, want: map[string]string{"region": "eu"}},
		{name: "key:value", labels: []string{"region:eu"}, want: map[string]string{"region": "eu"}},
		{name: "both forms together", labels: []string{"region=eu", "cell:c17"}, want: map[string]string{"region": "eu", "cell": "c17"}},
		{name: "value with colon", labels: []string{"rack=a:7"}, want: map[string]string{"rack": "a:7"}},
		{name: "value with equals", labels: []string{"note=a=b"}, want: map[string]string{"note": "a=b"}},
		{name: "empty value", labels: []string{"region="}, want: map[string]string{"region": ""}},
		{name: "empty value, colon", labels: []string{"region:"}, want: map[string]string{"region": ""}},
		{name: "same pair twice", labels: []string{"region=eu", "region:eu"}, want: map[string]string{"region": "eu"}},
		{name: "colon before equals is the key", labels: []string{"a:b=c"}, want: map[string]string{"a:b": "c"}, deviceErr: "the key must be"},
		{name: "upper-case key", labels: []string{"Region=eu"}, want: map[string]string{"Region": "eu"}, deviceErr: "the key must be"},
		{name: "no separator", labels: []string{"region"}, wantErr: "label must be key=value"},
		{name: "empty key", labels: []string{"=eu"}, wantErr: "label must be key=value"},
		{name: "empty key, colon", labels: []string{":eu"}, wantErr: "label must be key=value"},
		{name: "two values", labels: []string{"region=eu", "region:us"}, wantErr: "given twice"},
	}
	for _, tt := range tests {
		q := url.Values{"label": tt.labels}.Encode()
		t.Run(tt.name+"/devices", func(t *testing.T) {
			env := newTestEnv(t, Config{})
			r := env.do(t, http.MethodGet, "/api/v1/devices?"+q, "")
			wantLabelFilter(t, r, tt.wantErr+tt.deviceErr, tt.want, func() map[string]string { return env.devs.lastFilter(t).Labels })
		})
		t.Run(tt.name+"/images", func(t *testing.T) {
			env, f := newImageEnv(t, 0)
			r := env.do(t, http.MethodGet, "/api/v1/images?"+q, "")
			wantLabelFilter(t, r, tt.wantErr, tt.want, func() map[string]string {
				if len(f.filters) != 1 {
					t.Fatalf("%d calls of Images, want 1", len(f.filters))
				}
				return f.filters[0].Labels
			})
		})
	}
}

func wantLabelFilter(t *testing.T, r response, wantErr string, want map[string]string, got func() map[string]string) {
	t.Helper()
	if wantErr != "" {
		if msg := wantError(t, r, http.StatusBadRequest, codeInvalidQuery); !strings.Contains(msg, wantErr) {
			t.Fatalf("message %q, want it to say %q", msg, wantErr)
		}
		return
	}
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if g := got(); !maps.Equal(g, want) {
		t.Fatalf("filter labels %v, want %v", g, want)
	}
}

// FuzzLabelFilter: any parameter parses or is refused without a panic; a pair it reads is read
// back the same from its key=value form (the canonical one), and the device key check only ever
// refuses more.
func FuzzLabelFilter(f *testing.F) {
	for _, s := range []string{"region=eu", "region:eu", "a:b=c", "rack=a:7", "=", ":", "", "k=", "Region:eu", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := parseLabelFilter(url.Values{"label": {p}}, nil)
		dev, derr := parseLabelFilter(url.Values{"label": {p}}, deviceLabelKey)
		if err != nil {
			if derr == nil {
				t.Fatalf("%q: refused on images (%v) but read on devices", p, err)
			}
			return
		}
		if derr == nil && !maps.Equal(got, dev) {
			t.Fatalf("%q: images %v, devices %v", p, got, dev)
		}
		if len(got) != 1 {
			t.Fatalf("%q: %d labels", p, len(got))
		}
		for k, v := range got {
			again, err := parseLabelFilter(url.Values{"label": {k + "=" + v}}, nil)
			if err != nil || !maps.Equal(again, got) {
				t.Fatalf("%q read as %v, but %q as %v (%v)", p, got, k+"="+v, again, err)
			}
		}
	})
}
