package transport

import (
	"context"
	"testing"
)

// TestSessionConnSettleWakesAtNextRead: a settle while pion is busy waits on a channel that
// pion's next entry into ReadFrom closes; a settle while pion is idle returns at once.
func TestSessionConnSettleWakesAtNextRead(t *testing.T) {
	c := &sessionConn{}
	c.setIdle(true)
	c.settle(context.Background()) // idle: returns at once, makes nothing
	if c.entered != nil {
		t.Fatal("settle on an idle conn made a channel")
	}
	c.setIdle(false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // settle returns at once, having made the channel it would wait on
	c.settle(ctx)
	c.idleMu.Lock()
	entered := c.entered
	c.idleMu.Unlock()
	if entered == nil {
		t.Fatal("settle on a busy conn made no channel to wait on")
	}
	select {
	case <-entered:
		t.Fatal("closed before pion read again")
	default:
	}
	c.setIdle(true)
	select {
	case <-entered:
	default:
		t.Fatal("pion's next read did not close the channel settle waits on")
	}
	if c.entered != nil {
		t.Fatal("the closed channel was kept")
	}
}
