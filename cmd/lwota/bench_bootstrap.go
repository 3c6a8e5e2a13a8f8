package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// benchBootstrapCommand is `lwota bench bootstrap`: bootstraps per second over DTLS PSK, as a
// ratio to DTLS PSK registrations per second of the same run.
func benchBootstrapCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench bootstrap", stderr)
	devices := fs.Int("devices", 1000, "devices: each registers once over DTLS (the baseline), then bootstraps once over DTLS")
	concurrency := fs.Int("concurrency", 64, "devices registering or bootstrapping at once")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	if *devices < 1 || *concurrency < 1 {
		return errors.New("bench bootstrap: --devices and --concurrency must be at least 1")
	}
	return BenchBootstrap(ctx, stdout, stderr, *devices, *concurrency)
}

// BenchBootstrap runs lwota (SQLite in a temporary directory, DTLS DM and bootstrap listeners on
// loopback) and measures, with n emulated devices c at a time, in this process:
//   - the baseline: DTLS PSK registrations/s (a handshake and a Register per device, each with a
//     DM PSK stored beforehand);
//   - bootstraps/s over DTLS PSK: a handshake with the bootstrap PSK, Bootstrap-Request,
//     Discover, Delete /0 and /1, Write /0/1 and /1/0, Finish, a minted DM key stored with the
//     session; counted until lwota has stored every session.
func BenchBootstrap(ctx context.Context, w, stderr io.Writer, n, c int) error {
	svc, err := startBenchService(ctx, "bootstrap", []string{"--coap-addr", "127.0.0.1:0", "--coaps-addr", "127.0.0.1:0", "--bootstraps-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--read-device-info=false", "--dtls-handshake-rate", "0", "--coap-source-rate", "0"}, nil, slog.LevelWarn, stderr)
	if err != nil {
		return err
	}
	defer svc.stop()
	sc := svc.cfg

	key, err := credentialKey(sc)
	if err != nil {
		return err
	}
	dmCreds, err := credentials.New(svc.store, key, nil)
	if err != nil {
		return err
	}
	bsCreds, err := credentials.New(svc.store.BootstrapCredentials(), key, nil)
	if err != nil {
		return err
	}
	psk := []byte("lwota-bench-psk-0123456789abcdef")
	var dmEntries, bsEntries []credentials.ImportEntry
	for i := range n {
		dmEntries = append(dmEntries, credentials.ImportEntry{Line: i + 1, Endpoint: "breg-" + strconv.Itoa(i), Identity: "breg-" + strconv.Itoa(i), Key: psk})
		bsEntries = append(bsEntries, credentials.ImportEntry{Line: i + 1, Endpoint: "bboot-" + strconv.Itoa(i), Identity: "bs-bboot-" + strconv.Itoa(i), Key: psk})
	}
	if _, err := dmCreds.Import(ctx, dmEntries); err != nil {
		return fmt.Errorf("bench bootstrap: DM credentials: %w", err)
	}
	if _, err := bsCreds.Import(ctx, bsEntries); err != nil {
		return fmt.Errorf("bench bootstrap: bootstrap credentials: %w", err)
	}
	coaps := svc.core.CoAPSAddr().String()
	admin := bootstrap.NewAdmin(svc.store, bsCreds, dmCreds)
	if err := admin.SetConfig(ctx, &bootstrap.Config{Scope: bootstrap.ScopePrefix, Name: "bboot-", ServerURI: "coaps://" + coaps, PSK: bootstrap.PSKGenerate}, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(w, "bootstrap: %d devices, %d at once, DTLS PSK (AES_128_CCM_8), SQLite; client and server share this process\n", n, c)

	// Baseline: DTLS PSK registrations.
	var devs []*lwm2mtest.Device
	var mu sync.Mutex
	regStart := time.Now()
	err = parallelN(ctx, n, c, func(i int) error {
		d := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "breg-" + strconv.Itoa(i), PSKIdentity: "breg-" + strconv.Itoa(i), PSK: psk,
			Lifetime: time.Hour, RequestTimeout: 30 * time.Second}, nil)
		mu.Lock()
		devs = append(devs, d)
		mu.Unlock()
		return d.Start(ctx, coaps)
	})
	regTook := time.Since(regStart)
	for _, d := range devs {
		_ = d.Close()
	}
	if err != nil {
		return fmt.Errorf("bench bootstrap: registrations: %w", err)
	}
	regRate := float64(n) / regTook.Seconds()
	fmt.Fprintf(w, "registrations over DTLS: %d in %s: %.0f/s (the baseline)\n", n, regTook.Round(time.Millisecond), regRate)

	// Bootstraps over DTLS.
	uri := "coaps://" + svc.boot.SecureAddr().String()
	bootStart := time.Now()
	err = parallelN(ctx, n, c, func(i int) error {
		ep := "bboot-" + strconv.Itoa(i)
		_, _, err := lwm2mtest.Bootstrap(ctx, ep, lwm2mtest.BootstrapConfig{URI: uri, PSKIdentity: "bs-" + ep, PSK: psk, Timeout: time.Minute}, nil, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("bench bootstrap: bootstraps: %w", err)
	}
	// Until lwota stored every result: the last Finish is answered before its commit.
	var ok, failed float64
	for ok+failed < float64(n) {
		if ok, failed, err = sessionsEnded(svc.metrics); err != nil {
			return err
		}
		if time.Since(bootStart) > 5*time.Minute {
			return fmt.Errorf("bench bootstrap: %v of %d sessions ended after 5 minutes", ok+failed, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	bootTook := time.Since(bootStart)
	bootRate := float64(n) / bootTook.Seconds()
	fmt.Fprintf(w, "bootstraps over DTLS: %d in %s: %.0f/s (%.2f of the registrations/s)\n", n, bootTook.Round(time.Millisecond), bootRate, bootRate/regRate)
	if failed > 0 {
		fmt.Fprintf(w, "  %v sessions failed on lwota's side although the device finished:\n", failed)
		for i := range n {
			ss, err := svc.store.BootstrapSessions(ctx, "bboot-"+strconv.Itoa(i), 1)
			if err == nil && len(ss) == 1 && ss[0].Outcome == bootstrap.OutcomeFailure {
				fmt.Fprintf(w, "    %s: %s\n", ss[0].Endpoint, ss[0].Reason)
			}
		}
	}
	return nil
}

// sessionsEnded sums lwota_bootstrap_sessions_total by outcome.
func sessionsEnded(g prometheus.Gatherer) (ok, failed float64, err error) {
	fams, err := g.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, f := range fams {
		if f.GetName() != "lwota_bootstrap_sessions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch {
				case l.GetName() != "outcome":
				case l.GetValue() == bootstrap.OutcomeSuccess:
					ok += m.GetCounter().GetValue()
				default:
					failed += m.GetCounter().GetValue()
				}
			}
		}
	}
	return ok, failed, nil
}

// parallelN runs fn(0..n-1), c at a time, and returns the first error.
func parallelN(ctx context.Context, n, c int, fn func(i int) error) error {
	sem := make(chan struct{}, c)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("device %d: %w", i, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
