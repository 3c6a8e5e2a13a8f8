package main

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestDeleteImageRacesUpdateStart: DELETE /images/{id} and POST .../updates naming that image, sent
// at once, many times. One of them wins: the image is deleted and the update refused (422
// image_not_found), or the update starts and the delete is 409 image_in_use. Never an update job
// for an image that is gone.
func TestDeleteImageRacesUpdateStart(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	const trials = 12
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Faults.BytesPerSecond = 1 << 10 // slow: a started job stays active while the test looks
	devs := startFleet(t, ts, "race", trials, cfg).Devices()
	waitModels(t, ts, devs) // the API refuses an image for a device whose model it does not know yet
	wins := map[string]int{}
	for i, dev := range devs {
		img := uploadImage(t, ts, fmt.Sprintf("7.0.%d", i), fwImage(fmt.Sprintf("7.0.%d", i), 16<<10))
		ep := dev.Endpoint()
		var delCode, startCode int
		var delBody, startBody map[string]any
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			delCode = ts.apiCall(t, "DELETE", "/api/v1/images/"+img, nil, &delBody)
		}()
		go func() {
			defer wg.Done()
			<-start
			startCode = ts.apiCall(t, "POST", "/api/v1/devices/"+ep+"/updates", map[string]any{"image_id": img, "method": "pull"}, &startBody)
		}()
		close(start)
		wg.Wait()
		errCode := func(b map[string]any) any {
			e, _ := b["error"].(map[string]any)
			return e["code"]
		}
		switch {
		case delCode < 300 && startCode == http.StatusUnprocessableEntity && errCode(startBody) == "image_not_found":
			wins["delete"]++
			var list struct {
				Updates []map[string]any `json:"updates"`
			}
			ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates", nil, &list)
			if len(list.Updates) != 0 {
				t.Fatalf("trial %d: image deleted, yet the device has jobs %v", i, list.Updates)
			}
		case delCode == http.StatusConflict && errCode(delBody) == "image_in_use" && startCode == http.StatusAccepted:
			wins["update"]++
			if code := ts.apiCall(t, "GET", "/api/v1/images/"+img, nil, nil); code != http.StatusOK {
				t.Fatalf("trial %d: the update started but the image is %d", i, code)
			}
		default:
			t.Fatalf("trial %d: DELETE %d %v, start %d %v: want exactly one to win", i, delCode, delBody, startCode, startBody)
		}
	}
	t.Logf("wins: %v", wins)
}
