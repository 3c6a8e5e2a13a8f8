package clustere2e

import (
	"context"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// `lwota bench cluster`, tiny: it runs its three setups and prints both ratio lines with
// numbers (every run served registrations and blocks, or it fails).
func TestBenchClusterTiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, lwotaBin, "bench", "cluster", "--devices", "40", "--concurrency", "8",
		"--pull-devices", "4", "--duration", "1s").CombinedOutput()
	if err != nil {
		t.Fatalf("lwota bench cluster: %v\n%s", err, out)
	}
	for _, re := range []string{
		`registrations: nginx/direct [0-9.]+, 3 nodes/1 node \(behind nginx\) [0-9.]+, 3 nodes/1 node direct [0-9.]+`,
		`blocks: nginx/direct [0-9.]+, 3 nodes/1 node \(behind nginx\) [0-9.]+, 3 nodes/1 node direct [0-9.]+`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("no line matching %q in:\n%s", re, out)
		}
	}
}
