// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 28 (LWOTA-PATCHES.md): Conn.Write builds its record in the pooled buffer,
// not through writePackets.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/transport/v5/dpipe"
)

// capturingConn keeps a copy of every datagram written and, once discard is set, drops them
// instead of sending them.
type capturingConn struct {
	net.PacketConn
	discard atomic.Bool
	mu      sync.Mutex
	sent    [][]byte
	capture bool
}

func (c *capturingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	if c.capture {
		c.sent = append(c.sent, bytes.Clone(b))
	}
	c.mu.Unlock()
	if c.discard.Load() {
		return len(b), nil
	}

	return c.PacketConn.WriteTo(b, addr)
}

// last returns the last datagram written and forgets those before.
func (c *capturingConn) last() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sent) == 0 {
		return nil
	}
	b := c.sent[len(c.sent)-1]
	c.sent = nil

	return b
}

// pskPairCapturing returns a PSK client and server of suite over an in-memory pipe, the
// client's datagrams going through the returned capturingConn; with cid, the server has the
// client send it an 8-byte connection id (RFC 9146).
func pskPairCapturing(t *testing.T, suite CipherSuiteID, cid bool) (client, server *Conn, sock *capturingConn) {
	t.Helper()

	return pskPairCapturingWith(t, suite, cid, nil)
}

// pskPairCapturingWith is pskPairCapturing with clientConfig, if not nil, changing the client's
// configuration.
func pskPairCapturingWith(t *testing.T, suite CipherSuiteID, cid bool, clientConfig func(*Config)) (
	client, server *Conn, sock *capturingConn,
) {
	t.Helper()
	ca, cb := dpipe.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := func(gen func() []byte) *Config {
		return &Config{
			PSK:                   func([]byte) ([]byte, error) { return []byte{0xab, 0xc1, 0x23}, nil },
			PSKIdentityHint:       []byte("lwota"),
			CipherSuites:          []CipherSuiteID{suite},
			ConnectionIDGenerator: gen,
		}
	}
	var clientGen, serverGen func() []byte
	if cid {
		clientGen, serverGen = OnlySendCIDGenerator(), RandomCIDGenerator(8)
	}
	sock = &capturingConn{PacketConn: dtlsnet.PacketConnFromConn(ca)}
	type result struct {
		c   *Conn
		err error
	}
	clientCh := make(chan result, 1)
	go func() {
		config := cfg(clientGen)
		if clientConfig != nil {
			clientConfig(config)
		}
		c, err := testClient(ctx, sock, ca.RemoteAddr(), config, false)
		clientCh <- result{c, err}
	}()
	server, err := testServer(ctx, dtlsnet.PacketConnFromConn(cb), cb.RemoteAddr(), cfg(serverGen), false)
	res := <-clientCh
	if err != nil || res.err != nil {
		t.Fatalf("handshake: server %v, client %v", err, res.err)
	}
	t.Cleanup(func() { _ = res.c.Close(); _ = server.Close() })
	if got := len(res.c.state.remoteConnectionID) > 0; got != cid {
		t.Fatalf("client sends a connection id: %v, want %v", got, cid)
	}

	return res.c, server, sock
}

// TestWriteApplicationDataMatchesReference: the datagram Write sends is, byte for byte, what
// writePackets made of the packet v3.1.15's Write built, for PSK CCM_8 and GCM, with and
// without a connection id, for payloads of several sizes; and the peer reads the payload.
// Both are sealed at the same sequence number (the test takes it back between them), so
// the AEAD's output is deterministic.
func TestWriteApplicationDataMatchesReference(t *testing.T) {
	for _, suite := range []CipherSuiteID{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256} {
		for _, cid := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cid=%v", suite, cid), func(t *testing.T) {
				testWriteApplicationDataMatchesReference(t, suite, cid)
			})
		}
	}
}

func testWriteApplicationDataMatchesReference(t *testing.T, suite CipherSuiteID, cid bool) {
	t.Helper()
	client, server, sock := pskPairCapturing(t, suite, cid)
	sock.mu.Lock()
	sock.capture = true
	sock.mu.Unlock()
	buf := make([]byte, 2048)
	for _, n := range []int{0, 1, 13, 48, 255, 256, 257, 1000, 1024, 1200} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i*31 + n)
		}
		if _, err := client.Write(payload); err != nil {
			t.Fatal(err)
		}
		got := sock.last()
		_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
		read, err := server.Read(buf)
		if err != nil {
			t.Fatalf("%d bytes: server read: %v", n, err)
		}
		if !bytes.Equal(buf[:read], payload) {
			t.Fatalf("%d bytes: the server read %d bytes that differ", n, read)
		}

		// The same record the old way, at the same sequence number.
		client.lock.Lock()
		epoch := client.state.getLocalEpoch()
		client.state.localSequenceNumber[epoch]--
		client.lock.Unlock()
		err = client.writePackets(client.writeContext(), []*packet{{
			record: &recordlayer.RecordLayer{
				Header:  recordlayer.Header{Epoch: epoch, Version: protocol.Version1_2},
				Content: &protocol.ApplicationData{Data: payload},
			},
			shouldWrapCID: len(client.state.remoteConnectionID) > 0,
			shouldEncrypt: true,
		}})
		if err != nil {
			t.Fatal(err)
		}
		want := sock.last()
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: Write sent\n%x\nthe old path\n%x", n, got, want)
		}
		if cid && protocol.ContentType(got[0]) != protocol.ContentTypeConnectionID {
			t.Fatalf("%d bytes: content type %d, want a connection id record", n, got[0])
		}
	}
}

// TestWriteApplicationDataAllocations: Write allocates nothing for a record sealed in place
// (PSK GCM with 1 KiB, CCM_8 with 48 bytes, whose CCM builds no CTR stream; with and without
// a connection id), the socket discarding it. v3.1.15's path through writePackets made five
// allocations per record: the RecordLayer, the boxed ApplicationData, the marshalled header,
// and the two slices of one record and one datagram.
func TestWriteApplicationDataAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, tc := range []struct {
		suite CipherSuiteID
		size  int
	}{
		{TLS_PSK_WITH_AES_128_GCM_SHA256, 1024},
		{TLS_PSK_WITH_AES_128_CCM_8, 48},
	} {
		for _, cid := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cid=%v", tc.suite, cid), func(t *testing.T) {
				client, _, sock := pskPairCapturing(t, tc.suite, cid)
				sock.discard.Store(true)
				payload := make([]byte, tc.size)
				write := func() {
					if _, err := client.Write(payload); err != nil {
						t.Fatal(err)
					}
				}
				write()
				if allocs := testing.AllocsPerRun(500, write); allocs != 0 {
					t.Fatalf("%.2f allocations per %d-byte record written, want 0", allocs, tc.size)
				}
			})
		}
	}
}
