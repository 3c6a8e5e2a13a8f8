package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestWaitDrained: --wait ends when the node owns nothing, fails for an unknown node, and gives
// up when its context ends; the answers come from a scripted list, no server needed.
func TestWaitDrained(t *testing.T) {
	list := func(owned ...int) []string {
		var out []string
		for _, n := range owned {
			out = append(out, fmt.Sprintf(`{"nodes":[{"id":1,"name":"a","owned_devices":%d},{"id":2,"name":"b","owned_devices":5}]}`, n))
		}
		return out
	}
	tests := []struct {
		name    string
		node    string
		answers []string
		looks   int
		err     string
	}{
		{"drained at once", "a", list(0), 1, ""},
		{"drains over three looks", "a", list(3, 1, 0), 3, ""},
		{"unknown node", "c", list(0), 0, `no cluster node named "c"`},
		{"never drains", "a", list(2, 2), 2, "context canceled"},
		{"bad answer", "a", []string{"not json"}, 0, "answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			i := 0
			get := func(ctx context.Context) ([]byte, error) {
				if i >= len(tc.answers) {
					cancel() // the script ran out: as --timeout would end the wait
					return nil, ctx.Err()
				}
				i++
				return []byte(tc.answers[i-1]), nil
			}
			looks := 0
			n, err := waitDrained(ctx, time.Millisecond, tc.node, get, func(nodeJSON) { looks++ })
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err %v, want one saying %q", err, tc.err)
			}
			if looks != tc.looks {
				t.Errorf("%d looks, want %d", looks, tc.looks)
			}
			if tc.err == "" && n.Owned != 0 {
				t.Errorf("returned %+v", n)
			}
			if tc.name == "never drains" && !errors.Is(err, context.Canceled) {
				t.Errorf("err %v is not the context's", err)
			}
		})
	}
}
