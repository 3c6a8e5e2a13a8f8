package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/lwota/lwota/server/apitoken"
)

// TestWhoami: every role learns its own token's name and role; no token is a 401.
func TestWhoami(t *testing.T) {
	env := newTestEnv(t, Config{})
	for _, role := range apitoken.Roles {
		t.Run(string(role), func(t *testing.T) {
			res := env.do(t, http.MethodGet, "/api/v1/whoami", "", "Authorization", bearer(env.auth.secrets[role]))
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			var got whoamiJSON
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatalf("%s: %v", res.body, err)
			}
			// newTestAuth names each token after its role.
			if want := (whoamiJSON{Name: string(role), Role: string(role)}); got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/whoami", "", "Authorization", ""), http.StatusUnauthorized, codeUnauthorized)
}
