package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
)

// DeviceCounter is the optional capability of Devices to count the devices a filter matches:
// the device list's total and an image's devices (server.Server implements it).
type DeviceCounter interface {
	CountDevices(ctx context.Context, f registration.Filter) (int, error)
}

// ImageEditor is the optional capability of Images to change an image's release notes and
// metadata (firmware.Catalog has it): firmware.ErrInvalid, firmware.ErrNotFound. Without it
// PATCH /images/{id} answers 404.
type ImageEditor interface {
	Edit(ctx context.Context, id string, edit firmware.ImageEdit) (*firmware.Image, error)
}

// imageUsageJSON is what uses an image: the devices that run its version (on its model) and the
// campaigns that name it.
type imageUsageJSON struct {
	// Devices run the image's version on its target model (and manufacturer), whatever
	// installed it; absent when the server cannot count devices.
	Devices   *int                `json:"devices,omitempty"`
	Campaigns []imageCampaignJSON `json:"campaigns"`
}

type imageCampaignJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	State string `json:"state"`
}

// imageDevicesFilter selects the devices running img: its version on its target's model and
// manufacturer (those the target leaves empty match any).
func imageDevicesFilter(img *firmware.Image) registration.Filter {
	return registration.Filter{FirmwareVersion: img.Version, Model: img.Target.Model, Manufacturer: img.Target.Manufacturer}
}

// imageUsage counts the devices on img and lists the campaigns naming it (campaigns are few:
// the list is read whole).
func (a *API) imageUsage(ctx context.Context, img *firmware.Image) (*imageUsageJSON, error) {
	u := &imageUsageJSON{Campaigns: []imageCampaignJSON{}}
	if dc, ok := a.devices.(DeviceCounter); ok {
		f := imageDevicesFilter(img)
		f.Now = a.cfg.Now()
		n, err := dc.CountDevices(ctx, f)
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return nil, mapError("devices on image "+img.ID, err)
		}
		if err == nil {
			u.Devices = &n
		}
	}
	if a.campaigns != nil {
		cs, err := a.campaigns.List(ctx)
		if err != nil {
			return nil, mapCampaignError("campaigns of image "+img.ID, err)
		}
		for _, c := range cs {
			if c.ImageID == img.ID {
				u.Campaigns = append(u.Campaigns, imageCampaignJSON{ID: c.ID, Name: c.Name, State: string(c.State)})
			}
		}
	}
	return u, nil
}

// keyNames maps signing key ids to their names; empty when the keys cannot be read, as a name
// is only a label beside the key id.
func (a *API) keyNames(ctx context.Context, images Images) map[string]string {
	keys, err := images.Keys(ctx)
	if err != nil {
		a.logger.WarnContext(ctx, "reading signing key names failed", "err", err)
		return nil
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k.ID] = k.Name
	}
	return out
}

// editableImageFields may change with PATCH /images/{id}; every other field of an image is
// what was uploaded and signed.
var editableImageFields = []string{"release_notes", "metadata"}

// editImage: PATCH /images/{id} with {"release_notes": "...", "metadata": {"k": "v"}}; either
// may be left out (kept). "" removes the notes, {} every metadata key.
func (a *API) editImage(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	editor, ok := images.(ImageEditor)
	if !ok {
		return notFound("this server's image catalog cannot edit images")
	}
	id, err := idParam(c, "image")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	edit, err := decodeImageEdit(body)
	if err != nil {
		return err
	}
	img, err := editor.Edit(c.Request().Context(), id, edit)
	if err != nil {
		return mapImageError("image "+id, err)
	}
	if edit.ReleaseNotes != nil {
		auditNote(c, "release_notes", "changed")
	}
	if edit.Metadata != nil {
		keys := strings.Join(sortedMapKeys(edit.Metadata), ",")
		if keys == "" {
			keys = "(all removed)"
		}
		auditNote(c, "metadata_keys", keys)
	}
	out := newImageJSON(img)
	out.KeyName = a.keyNames(c.Request().Context(), images)[img.KeyID]
	return c.JSON(http.StatusOK, out)
}

// decodeImageEdit reads a PATCH body: an object with release_notes (a string) and/or metadata
// (an object of strings), nothing else.
func decodeImageEdit(body []byte) (firmware.ImageEdit, error) {
	var edit firmware.ImageEdit
	var fields map[string]json.RawMessage
	if err := decodeStrict(body, &fields); err != nil {
		return edit, err
	}
	if fields == nil {
		return edit, badRequest(codeInvalidJSON, "request body must be a JSON object")
	}
	for name := range fields {
		if !slices.Contains(editableImageFields, name) {
			return edit, badRequest(codeInvalidJSON, "%s of an image cannot change: only release_notes and metadata can (upload a new image instead)", name)
		}
	}
	if raw, ok := fields["release_notes"]; ok {
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil || s == nil {
			return edit, badRequest(codeInvalidJSON, `release_notes must be a string ("" removes them)`)
		}
		edit.ReleaseNotes = s
	}
	if raw, ok := fields["metadata"]; ok {
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return edit, badRequest(codeInvalidJSON, "metadata must be an object of string values ({} removes every key)")
		}
		edit.Metadata = m
	}
	if edit.ReleaseNotes == nil && edit.Metadata == nil {
		return edit, badRequest(codeInvalidJSON, "nothing to change: give release_notes, metadata or both")
	}
	return edit, nil
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
