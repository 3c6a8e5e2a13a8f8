package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
)

// The pull over DTLS that lwota bench pull --dtls adds, once per cipher suite (--cipher): PSK
// devices are bench-N with one shared key (bench_dtls.go); certificate devices all present one
// device certificate of a throwaway CA, which also signs lwota's.

// benchDTLSServer is the DTLS Endpoint a pull benchmark runs against, and how its devices dial.
type benchDTLSServer struct {
	addr   string
	device lwm2mtest.Issued // the certificate devices present
	caPEM  []byte           // the CA they trust
	stop   func()
}

// serveBenchPullDTLS runs a DTLS Endpoint answering with h on loopback, with lwota's defaults,
// PSK and certificates both accepted.
func serveBenchPullDTLS(ctx context.Context, h transport.Handler) (*benchDTLSServer, error) {
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		return nil, err
	}
	server, err := pki.Server()
	if err != nil {
		return nil, err
	}
	device, err := pki.Device("bench-x509")
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	dc := transport.DTLSConfig{PSK: benchPSKs{}, X509: &transport.X509Config{Certificate: server.TLS, ClientCAs: pki.Pool}}
	ep, err := transport.NewDTLS(pc, h, transport.DefaultConfig(), dc, nil, nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- ep.Serve(sctx) }()
	return &benchDTLSServer{
		addr:   pc.LocalAddr().String(),
		device: device,
		caPEM:  pki.CAPEM,
		stop:   func() { cancel(); <-served },
	}, nil
}

// pullDTLSRound runs one round of the pull load over DTLS with suite at n devices for slot, its
// devices in a child process, as the plain rounds' are (bench_pull_clients.go); cpu measures
// the pull once the handshakes are done (bench_pull.go), its profile set for a profiled round.
func pullDTLSRound(ctx context.Context, srv *benchDTLSServer, uri string, suite lwm2mtest.DTLSSuite,
	n int, slot time.Duration, clientsProfile string, cpu *pullCPU) (lwm2mtest.PullReport, error) {
	rep, err := pullClients{URI: uri, Devices: n, Duration: slot, Window: slot, Suite: suite.Name, CPUProfile: clientsProfile,
		CertPEM: srv.device.CertPEM, KeyPEM: srv.device.KeyPEM, CAPEM: srv.caPEM}.run(ctx, cpu) // bench_pull_clients.go
	if err := errors.Join(err, cpu.stopProfile()); err != nil {
		return rep, fmt.Errorf("dtls %s: %w", suite.Name, err)
	}
	return rep, nil
}

// printPullDTLS prints suite's rounds in the columns of the plain run (their ratio to echo, the
// UDP echo baseline's median), then as a ratio to plain CoAP: the median of the ratios of each
// DTLS round to the plain round beside it, the figure issue 16 sets at ≥ 0.6; under it the
// diagnosis and every pair, with the median of their CPU ratios (plain's CPU per block ÷
// DTLS's: the rate ratio of a machine that gave both the same CPU).
func printPullDTLS(w io.Writer, suite lwm2mtest.DTLSSuite, s pullSeries, echo float64) {
	rep := s.rep
	perBlock, srvPerBlock := s.cpuPerBlock()
	ratio, _, _ := pairRatios(s.paired, rep.Windows, pullGoal)
	toEcho := 0.0
	if echo > 0 {
		toEcho = rep.BlocksPerSec / echo
	}
	fmt.Fprintf(w, "%8s %12s %12.0f %6.2fx %9s %9.2f %10.1f %11s %12s %8d %8d %7d MiB %7d MiB  dtls %s: %.2f of plain CoAP's blocks/s\n",
		"dtls", "", rep.BlocksPerSec, toEcho, "", rep.Decline(), perBlock, cpuSplit(srvPerBlock, perBlock), "", rep.Retransmits, rep.Errors,
		s.rssStart>>20, s.rssEnd>>20, suite.Name, ratio.Median)
	if rep.FirstError != "" {
		fmt.Fprintf(w, "%8s first error: %s\n", "", rep.FirstError)
	}
	printPullDiag(w, rep)
	fmt.Fprintln(w, roundsLine(suite.Name+"/plain", s.paired, rep.Windows, s.cpus, s.pairedCPU))
}
