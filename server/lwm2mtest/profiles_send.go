package lwm2mtest

import (
	"bytes"
	"context"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/lwm2m"
)

// Device profiles of real-client habits (issue 12), registered in profiles.go.
const (
	// ProfileReportsBySend is a LwM2M 1.1+ client that reports its firmware update progress
	// with the Send operation (POST /dp, SenML CBOR) instead of notifications: every change of
	// /5/0/3 State or /5/0/5 Update Result is sent, and Observe on Object 5 is refused (4.05).
	ProfileReportsBySend = "reports-by-send"
	// ProfileEmptyDeviceType answers /3/0/17 Device Type with an empty string.
	ProfileEmptyDeviceType = "empty-device-type"
)

// startSender starts the goroutine that Sends firmware reports in order, when the device
// reports by Send; Close waits for it.
func (d *Device) startSender() {
	d.sendDone = make(chan struct{})
	if !d.cfg.FirmwareBySend {
		close(d.sendDone)
		return
	}
	d.sendQ = make(chan struct{}, 1)
	go func() {
		defer close(d.sendDone)
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-d.sendQ:
			}
			if err := d.Send(d.ctx, fwStatePath, fwResultPath); err != nil {
				d.log.Info("send firmware state", "err", err)
			}
		}
	}()
}

// queueFirmwareReport asks the sender to Send State and Update Result; with d.mu held. One
// pending request covers any number of changes: the Send reads the values when it goes out.
func (d *Device) queueFirmwareReport() {
	if d.sendQ == nil {
		return
	}
	select {
	case d.sendQ <- struct{}{}:
	default:
	}
}

// Send reports the current values of paths (resources or resource instances) with the LwM2M
// Send operation: POST /dp in SenML CBOR. A non-success answer is a *RejectedError.
func (d *Device) Send(ctx context.Context, paths ...lwm2m.Path) error {
	cc, err := d.currentConn()
	if err != nil {
		return err
	}
	d.mu.Lock()
	var recs []lwm2m.Record
	for _, p := range paths {
		recs = append(recs, d.records(p)...)
	}
	d.mu.Unlock()
	body, err := codec.Encode(lwm2m.FormatSenMLCBOR, lwm2m.RootPath, recs)
	if err != nil {
		return fmt.Errorf("send: encode: %w", err)
	}
	rctx, cancel := d.requestContext(ctx)
	defer cancel()
	d.wake()
	resp, err := cc.Post(rctx, "/dp", message.MediaType(lwm2m.FormatSenMLCBOR), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if resp.Code() != codes.Changed {
		return &RejectedError{Op: "send", Code: codeString(resp.Code())}
	}
	d.stats.add(func(s *Stats) { s.Sends++ })
	return nil
}
