package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
)

// Ids on the command line may be shortened to a unique prefix, as git's commit ids are: image ids
// are 26-character ULIDs, job ids 16 characters, campaign ids "cmp_" and 16. An id shorter than
// its kind's is looked up among the candidates the server lists; when none starts with it, it is
// sent as given, so the server's own answer (404, image_not_found) reports it.
const (
	imageIDLen    = 26
	jobIDLen      = 16
	campaignIDLen = 20
)

// uniquePrefix returns the one id among ids (of what, a plural) that is, or starts with, prefix; prefix itself when
// none does; an error when several do.
func uniquePrefix(what, prefix string, ids []string) (string, error) {
	var found []string
	for _, id := range ids {
		if id == prefix {
			return id, nil
		}
		if strings.HasPrefix(id, prefix) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return prefix, nil
	case 1:
		return found[0], nil
	}
	return "", usagef("%q starts the ids of %d %s (%s): give more of it", prefix, len(found), what,
		strings.Join(found[:min(len(found), 5)], ", "))
}

// idsOf reads the "id" of each raw JSON object.
func idsOf(list []json.RawMessage) []string {
	out := make([]string, 0, len(list))
	for _, raw := range list {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &v) == nil && v.ID != "" {
			out = append(out, v.ID)
		}
	}
	return out
}

// resolveImage returns the id of the image whose id is, or starts with, prefix. A list the server
// refuses leaves prefix as it is: the call that uses it reports the problem.
func (c *client) resolveImage(ctx context.Context, prefix string) (string, error) {
	if prefix == "" || len(prefix) >= imageIDLen {
		return prefix, nil
	}
	list, err := c.listImages(ctx, url.Values{})
	if err != nil {
		return prefix, nil
	}
	return uniquePrefix("images", prefix, idsOf(list))
}

// resolveJob returns the id of the endpoint's update job whose id is, or starts with, prefix,
// among its newest 200 jobs.
func (c *client) resolveJob(ctx context.Context, endpoint, prefix string) (string, error) {
	if prefix == "" || len(prefix) >= jobIDLen {
		return prefix, nil
	}
	list, err := c.updates(ctx, endpoint, 200)
	if err != nil {
		return prefix, nil
	}
	return uniquePrefix("updates of "+endpoint, prefix, idsOf(list))
}

// resolveCampaign returns the id of the campaign whose id is, or starts with, prefix ("cmp_" may
// be left out).
func (c *client) resolveCampaign(ctx context.Context, prefix string) (string, error) {
	if prefix == "" || len(prefix) >= campaignIDLen {
		return prefix, nil
	}
	answer, err := c.get(ctx, "/campaigns")
	if err != nil {
		return prefix, nil
	}
	var l struct {
		Campaigns []json.RawMessage `json:"campaigns"`
	}
	if json.Unmarshal(answer, &l) != nil {
		return prefix, nil
	}
	ids := idsOf(l.Campaigns)
	if !strings.HasPrefix(prefix, "cmp_") {
		if id, err := uniquePrefix("campaigns", "cmp_"+prefix, ids); err != nil || id != "cmp_"+prefix {
			return id, err
		}
	}
	return uniquePrefix("campaigns", prefix, ids)
}
