package fwupdate

import (
	"errors"
	"fmt"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// statusPaths are what verify needs after the device came back: its firmware version, the
// State and the Update Result.
var statusPaths = []lwm2m.Path{pathFirmwareVer, pathState, pathResult}

// readStatus reads /5/0/3, /5/0/5 and /3/0/3. A device whose registration allows composite
// operations (LwM2M 1.1+ declaring SenML or LwM2M CBOR, dm.CompositeFormat) is asked once with
// Read-Composite; one that refuses it (any 4.xx) is asked the old way, with a Read of /5/0 and
// one of /3/0/3, for the rest of the attempt. version is "" when the device did not say;
// versionErr is the error of the separate /3/0/3 read, if one was sent.
func (r *run) readStatus(j *Job) (o object5, version string, versionErr error, err error) {
	if !r.noComposite {
		if reg, rerr := r.d.dev.Device(r.ctx, j.Endpoint); rerr == nil {
			if _, ok := dm.CompositeFormat(reg); ok {
				res, cerr := r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: statusPaths})
				var de *dm.DeviceError
				switch {
				case cerr == nil:
					r.d.m.compositeReads.WithLabelValues("ok").Inc()
					o = parseObject5(res.Records)
					version = stringAt(res.Records, pathFirmwareVer)
					if version == "" {
						// As the Read of /5/0 would have given: the package's version stands in.
						if full, ferr := r.readObject5(j); ferr == nil {
							version = full.PkgVersion
						}
					}
					return o, version, nil, nil
				case errors.As(cerr, &de) && len(de.Code) > 0 && de.Code[0] == '4':
					r.d.m.compositeReads.WithLabelValues("refused").Inc()
					r.noComposite = true
					r.d.log.Debug("read-composite refused; reading one path at a time", "job", j.ID, "endpoint", j.Endpoint, "err", cerr)
				default:
					return object5{}, "", nil, fmt.Errorf("read-composite %v: %w", statusPaths, cerr)
				}
			}
		}
	}
	o, err = r.readObject5(j)
	if err != nil {
		return object5{}, "", nil, err
	}
	res, verr := r.d.dev.DoNow(r.ctx, j.Endpoint, dm.Request{Op: dm.OpRead, Path: pathFirmwareVer})
	if verr == nil {
		version = stringAt(res.Records, pathFirmwareVer)
	}
	if version == "" {
		version = o.PkgVersion
	}
	return o, version, verr, nil
}
