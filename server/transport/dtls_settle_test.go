package transport

import (
	"context"
	"testing"
)

// TestSessionConnSettleWakesAtNextRead: a settle while pion is busy waits on a channel that
// pion's next entry into ReadFrom closes; a settle while pion is idle returns at once.
func TestSessionConnSettleWakesAtNextRead(t *testing.T) {
	c := &sessionConn{l: &dtlsLink{}, sessionRx: sessionRx{rx: make(chan inbound, 1)}}
	c.state.Store(rxIdle)
	c.settle(context.Background()) // idle: returns at once, makes nothing
	if c.entered != nil {
		t.Fatal("settle on an idle conn made a channel")
	}
	c.state.Store(rxBusy)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // settle returns at once, having made the channel it would wait on
	c.settle(ctx)
	c.mu.Lock()
	entered := c.entered
	c.mu.Unlock()
	if entered == nil {
		t.Fatal("settle on a busy conn made no channel to wait on")
	}
	select {
	case <-entered:
		t.Fatal("closed before pion read again")
	default:
	}
	// pion's next read: it enters ReadFrom and takes a datagram.
	c.rx <- inbound{b: []byte{1}}
	if _, _, err := c.ReadFrom(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	default:
		t.Fatal("pion's next read did not close the channel settle waits on")
	}
	if c.entered != nil {
		t.Fatal("the closed channel was kept")
	}
}
