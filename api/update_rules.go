package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/registration"
)

// The rules every update obeys, whether one device's or a campaign's: the image must be built for
// the device (its target's manufacturer, model, type and labels), the device must not already run
// the image's version, and one model has one image per version. Campaigns check the first two when
// they are created and when they start each device (campaigns/manager.go, campaigns/tick.go); the
// single-device route checks them here, and the upload routes check the third. Their error codes,
// model_mismatch, already_up_to_date and duplicate_version, are in errors.go.

// checkUpdateTarget applies the model and version rules to a single-device update of ep to
// imageID. force overrides both, for admin tokens only; what it overrode is noted in the audit
// entry. It returns nil when the update may start. Without a catalog the driver's own checks are
// all there is (ErrImageNotFound).
func (a *API) checkUpdateTarget(c echo.Context, ep, imageID string, force bool) error {
	if force {
		if tok := principal(c); tok == nil || tok.Role != apitoken.RoleAdmin {
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden,
				Message: "force overrides the model and version checks and needs an admin token"}
		}
	}
	if a.images == nil {
		return nil
	}
	ctx := c.Request().Context()
	img, err := a.images.Image(ctx, imageID)
	if errors.Is(err, firmware.ErrNotFound) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: codeImageNotFound,
			Message: fmt.Sprintf("image %s does not exist", imageID), Err: err}
	}
	if err != nil {
		return mapImageError("image "+imageID, err)
	}
	reg, err := a.devices.Device(ctx, ep)
	if errors.Is(err, registration.ErrNotFound) {
		return notFound("device %s has never registered", ep)
	}
	if err != nil {
		return mapError("device "+ep, err)
	}
	var overridden []string
	if why := targetMismatch(img.Target, reg); why != "" {
		if !force {
			return &apiError{Status: http.StatusUnprocessableEntity, Code: codeModelMismatch,
				Message: fmt.Sprintf("image %s (%s) is not for device %s: %s; an admin may force it", img.ID, img.Version, ep, why)}
		}
		overridden = append(overridden, codeModelMismatch)
	}
	if reg.FirmwareVersion != "" && reg.FirmwareVersion == img.Version {
		if !force {
			return &apiError{Status: http.StatusConflict, Code: codeAlreadyUpToDate,
				Message: fmt.Sprintf("device %s already runs version %s; an admin may force a reinstall", ep, img.Version)}
		}
		overridden = append(overridden, codeAlreadyUpToDate)
	}
	if force {
		auditNote(c, "force", strings.Join(append([]string{"true"}, overridden...), ","))
	}
	return nil
}

// targetMismatch says in words why the device is not one the image's target names, or "" when it
// is: every non-empty field of the target must equal the device's, as campaigns require; a device
// whose model is not known yet does not match a target that names one.
func targetMismatch(t firmware.Selector, r *registration.Registration) string {
	var why []string
	for _, f := range []struct{ name, want, have string }{
		{"manufacturer", t.Manufacturer, r.Manufacturer},
		{"model", t.Model, r.Model},
		{"device type", t.DeviceType, r.DeviceType},
	} {
		if f.want != "" && f.want != f.have {
			have := fmt.Sprintf("%q", f.have)
			if f.have == "" {
				have = "not known yet"
			}
			why = append(why, fmt.Sprintf("the image is for %s %q, the device's is %s", f.name, f.want, have))
		}
	}
	keys := make([]string, 0, len(t.Labels))
	for k := range t.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if r.Labels[k] != t.Labels[k] {
			why = append(why, fmt.Sprintf("the image is for label %s=%q, the device's is %q", k, t.Labels[k], r.Labels[k]))
		}
	}
	return strings.Join(why, "; ")
}

// duplicateVersion refuses a second image of a version the model already has: a version names one
// build, and "update to 1.4.2" must not depend on which of two uploads a device got.
func duplicateVersion(ctx context.Context, images Images, model, version, except string) error {
	f := firmware.ImageFilter{Model: model, Version: version, Limit: 100}
	for {
		page, err := images.Images(ctx, f)
		if err != nil {
			return mapImageError("images of model "+model, err)
		}
		for _, img := range page {
			if img.ID != except && img.Target.Model == model && img.Version == version && (except == "" || img.ID < except) {
				return &apiError{Status: http.StatusConflict, Code: codeDuplicateVersion,
					Message: fmt.Sprintf("model %q already has an image of version %s: %s; delete it first or choose another version", model, version, img.ID)}
			}
		}
		if len(page) < f.Limit {
			return nil
		}
		f.After = page[len(page)-1].ID
	}
}

// uploadUnique uploads the image unless its model already has one of its version. The check runs
// before the bytes are read (so a duplicate is refused at once) and again after they are stored:
// of two uploads that raced past the first check, the later (the larger, time-ordered id) is
// removed and refused.
func (a *API) uploadUnique(ctx context.Context, images Images, req firmware.UploadRequest, body io.Reader) (*firmware.Image, error) {
	if req.Version != "" {
		if err := duplicateVersion(ctx, images, req.Target.Model, req.Version, ""); err != nil {
			return nil, err
		}
	}
	img, err := images.Upload(ctx, req, body)
	if err != nil {
		return nil, err
	}
	if err := duplicateVersion(ctx, images, img.Target.Model, img.Version, img.ID); err != nil {
		if derr := images.Delete(context.WithoutCancel(ctx), img.ID); derr != nil {
			a.logger.Warn("removing a duplicate upload failed", "image", img.ID, "err", derr)
		}
		return nil, err
	}
	return img, nil
}
