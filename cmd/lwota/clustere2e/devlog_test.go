package clustere2e

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// deviceLogs keeps the last deviceLogLines log lines of each simulated device (by its "ep"
// attribute), so that a test can show what a device that ended wrong did and when: the nodes
// log at warn, and a device's Stats say how often, not in what order.
type deviceLogs struct {
	start time.Time
	mu    sync.Mutex
	by    map[string][]string
}

const deviceLogLines = 40

func newDeviceLogs() *deviceLogs {
	return &deviceLogs{start: time.Now(), by: map[string][]string{}}
}

// logger returns a debug-level logger recording into l.
func (l *deviceLogs) logger() *slog.Logger { return slog.New(&deviceLogHandler{logs: l}) }

// of returns ep's recorded lines, oldest first.
func (l *deviceLogs) of(ep string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.by[ep], "\n")
}

type deviceLogHandler struct {
	logs  *deviceLogs
	ep    string
	attrs string
}

func (h *deviceLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *deviceLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s +%.3fs %s%s", r.Time.UTC().Format("15:04:05.000"), r.Time.Sub(h.logs.start).Seconds(), r.Message, h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.logs.mu.Lock()
	defer h.logs.mu.Unlock()
	lines := append(h.logs.by[h.ep], b.String())
	if len(lines) > deviceLogLines {
		lines = lines[len(lines)-deviceLogLines:]
	}
	h.logs.by[h.ep] = lines
	return nil
}

func (h *deviceLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	for _, a := range as {
		if a.Key == "ep" {
			n.ep = a.Value.String()
			continue
		}
		n.attrs += fmt.Sprintf(" %s=%v", a.Key, a.Value)
	}
	return &n
}

func (h *deviceLogHandler) WithGroup(string) slog.Handler { return h }
