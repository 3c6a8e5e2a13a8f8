package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestImageNotesAndMetadataCLI: image push sends release notes (from a file) and metadata to a
// real lwota; image edit changes them through PATCH; a refused edit changes nothing and is a
// conflict/usage class error, not a success.
func TestImageNotesAndMetadataCLI(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned")
	dir := t.TempDir()
	fw := filepath.Join(dir, "fw.bin")
	writeImage(t, fw, 4096, 7)
	notes := filepath.Join(dir, "NOTES.md")
	if err := os.WriteFile(notes, []byte("Fixes:\n- the reboot loop (FW-812)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type image struct {
		ID           string            `json:"id"`
		ReleaseNotes string            `json:"release_notes"`
		Metadata     map[string]string `json:"metadata"`
	}
	decode := func(out string) image {
		t.Helper()
		var img image
		if err := json.Unmarshal([]byte(out), &img); err != nil || img.ID == "" {
			t.Fatalf("not an image: %v\n%s", err, out)
		}
		return img
	}

	out, stderr, err := cli(t, "image", "push", "--server", ts.base, "--file", fw, "--version", "2.0.0", "--model", "X1",
		"--notes-file", notes, "--metadata", "ticket=FW-812", "--metadata", "branch=release/2.0", "-o", "json")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, stderr)
	}
	img := decode(out)
	if img.ReleaseNotes != "Fixes:\n- the reboot loop (FW-812)\n" || !reflect.DeepEqual(img.Metadata, map[string]string{"ticket": "FW-812", "branch": "release/2.0"}) {
		t.Fatalf("pushed image %+v", img)
	}

	out, stderr, err = cli(t, "image", "edit", "--server", ts.base, img.ID[:10], "--notes", "Superseded by 2.0.1", "--metadata", "ticket=FW-900", "-o", "json")
	if err != nil {
		t.Fatalf("edit: %v\n%s", err, stderr)
	}
	if got := decode(out); got.ReleaseNotes != "Superseded by 2.0.1" || !reflect.DeepEqual(got.Metadata, map[string]string{"ticket": "FW-900"}) {
		t.Fatalf("edited image %+v", got)
	}

	// Refusals: nothing to change (usage), a value the server refuses (400: usage class).
	for _, args := range [][]string{
		{"image", "edit", "--server", ts.base, img.ID},
		{"image", "edit", "--server", ts.base, img.ID, "--metadata", "bad key=\x01"},
	} {
		_, _, err := cli(t, args...)
		if err == nil || exitCode(err) != exitUsage {
			t.Errorf("%q: err %v (exit %d), want a usage error", args[4:], err, exitCode(err))
		}
	}
	out, _, err = cli(t, "image", "show", "--server", ts.base, img.ID, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(out); got.ReleaseNotes != "Superseded by 2.0.1" || !reflect.DeepEqual(got.Metadata, map[string]string{"ticket": "FW-900"}) {
		t.Fatalf("a refused edit changed the image: %+v", got)
	}

	_, _, err = cli(t, "image", "edit", "--server", ts.base, img.ID, "--clear-metadata", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ = cli(t, "image", "show", "--server", ts.base, img.ID, "-o", "json")
	if got := decode(out); len(got.Metadata) != 0 || got.ReleaseNotes == "" {
		t.Fatalf("--clear-metadata: %+v", got)
	}
}
