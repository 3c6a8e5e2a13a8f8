package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

type simConfig struct {
	Server       string
	Count        int
	Prefix       string
	Lifetime     time.Duration
	Binding      string
	Version      string
	Firmware     string
	Manufacturer string
	Model        string
	DeviceType   string
	Concurrency  int
	LogFormat    string
	LogLevel     string
	ExitAfterReg bool
}

func parseSimFlags(args []string, stderr io.Writer, getenv func(string) string) (simConfig, error) {
	var c simConfig
	fs := newFlagSet("sim", stderr)
	fs.StringVar(&c.Server, "server", "127.0.0.1:5683", "CoAP address of the LwM2M server")
	fs.IntVar(&c.Count, "count", 10, "number of devices, each on its own UDP socket")
	fs.StringVar(&c.Prefix, "prefix", "sim-", "endpoint name prefix; devices are PREFIX000000, PREFIX000001, ...")
	fs.DurationVar(&c.Lifetime, "lifetime", 5*time.Minute, "registration lifetime; devices send Update before it runs out")
	fs.StringVar(&c.Binding, "binding", "U", "binding: U, or UQ for queue mode")
	fs.StringVar(&c.Version, "lwm2m", "1.1", "LwM2M version the devices speak: 1.0, 1.1 or 1.2")
	fs.StringVar(&c.Firmware, "firmware", "1.0.0", "firmware version the devices report at /3/0/3")
	fs.StringVar(&c.Manufacturer, "manufacturer", "lwota", "manufacturer the devices report at /3/0/0")
	fs.StringVar(&c.Model, "model", "lwota-sim", "model number the devices report at /3/0/1")
	fs.StringVar(&c.DeviceType, "device-type", "simulator", "device type the devices report at /3/0/17")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "registrations in flight at once")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "warn", "log level")
	fs.BoolVar(&c.ExitAfterReg, "exit-after-register", false, "exit once every device has registered")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return c, err
	}
	if c.Count < 1 {
		return c, fmt.Errorf("sim: --count must be at least 1")
	}
	return c, nil
}

func sim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseSimFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	tmpl := lwm2mtest.DeviceConfig{
		Lifetime:        cfg.Lifetime,
		Binding:         cfg.Binding,
		LwM2MVersion:    cfg.Version,
		Manufacturer:    cfg.Manufacturer,
		Model:           cfg.Model,
		FirmwareVersion: cfg.Firmware,
		DeviceType:      cfg.DeviceType,
	}
	fleet := lwm2mtest.NewFleet(cfg.Count, tmpl, func(i int) string { return fmt.Sprintf("%s%06d", cfg.Prefix, i) }, logger)
	defer fleet.Close()
	start := time.Now()
	if _, err := fleet.Start(ctx, cfg.Server, cfg.Concurrency); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "registered %d devices in %s (%.0f registrations/s)\n", cfg.Count, took.Round(time.Millisecond), float64(cfg.Count)/took.Seconds())
	if cfg.ExitAfterReg {
		return nil
	}
	<-ctx.Done()
	return nil
}
