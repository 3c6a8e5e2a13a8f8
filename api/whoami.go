package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

const whoamiPath = Prefix + "/whoami"

// whoamiJSON names the caller's token and its role.
type whoamiJSON struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// whoami: GET /whoami, the name and role of the calling token, for every role. Clients such as
// the web console use it to check a token at sign-in and to offer only what the role may do.
func (a *API) whoami(c echo.Context) error {
	t := principal(c)
	if t == nil {
		// authenticate runs first, so this is a wiring mistake, not a caller's.
		return unauthorized(c, `Bearer realm="lwota"`, "an API token is required: Authorization: Bearer <token>")
	}
	return c.JSON(http.StatusOK, whoamiJSON{Name: t.Name, Role: string(t.Role)})
}
