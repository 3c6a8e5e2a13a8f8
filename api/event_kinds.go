package api

import (
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/events"
)

// eventFilter reads the stream's filters, ?endpoint= (one device) and ?kind= (comma-separated:
// registration, notification, request, update_job, campaign), and returns the test an event must
// pass. Without ?kind= every kind is streamed. An unknown kind is refused before the stream starts.
func eventFilter(c echo.Context) (func(events.Event) bool, error) {
	endpoint := c.QueryParam("endpoint")
	var kinds []string
	if s := strings.TrimSpace(c.QueryParam("kind")); s != "" {
		for k := range strings.SplitSeq(s, ",") {
			k = strings.TrimSpace(k)
			if !slices.Contains(events.AllKinds, k) {
				return nil, badRequest(codeInvalidQuery, "kind must be a comma-separated list of %s, not %q",
					strings.Join(events.AllKinds, ", "), k)
			}
			kinds = append(kinds, k)
		}
	}
	return func(ev events.Event) bool {
		if endpoint != "" && ev.Endpoint != endpoint {
			return false
		}
		return kinds == nil || slices.Contains(kinds, events.KindOf(ev.Type))
	}, nil
}
