package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// The README's table of `lwota serve` flags is generated from the flag definitions and checked
// against them here. After adding or changing a serve flag, regenerate it with
//
//	go test ./cmd/lwota -run '^TestREADMEServeFlags$' -update-readme
var updateReadme = flag.Bool("update-readme", false, "rewrite the serve flag table in README.md from the flag definitions")

const (
	readmePath       = "../../README.md"
	serveFlagsBegin  = "<!-- serve-flags begin: generated from the flag definitions by `go test ./cmd/lwota -run '^TestREADMEServeFlags$' -update-readme`; do not edit by hand -->"
	serveFlagsEnd    = "<!-- serve-flags end -->"
	serveFlagsHeader = "| flag | default | meaning |\n|---|---|---|\n"
)

// flagSetRecorder keeps the flag set newFlagSet builds with it as the output, and discards text.
type flagSetRecorder struct {
	io.Writer
	fs *flag.FlagSet
}

func (r *flagSetRecorder) keepFlagSet(fs *flag.FlagSet) { r.fs = fs }

// serveFlagSet is the flag set `lwota serve` parses, with every flag at its default.
func serveFlagSet(t *testing.T) *flag.FlagSet {
	t.Helper()
	rec := &flagSetRecorder{Writer: io.Discard}
	if _, err := parseServeFlags(nil, rec, func(string) string { return "" }); err != nil {
		t.Fatalf("serve flags at their defaults: %v", err)
	}
	if rec.fs == nil {
		t.Fatal("parseServeFlags built no flag set through newFlagSet")
	}
	return rec.fs
}

// flagRow is one row of the table: the default and the meaning as markdown cells.
type flagRow struct{ def, meaning string }

// flagRows renders every flag of fs, by name, as the README shows it: the default as `--help`
// prints it (code, or "(none)" for an empty one) and the usage text, '|' escaped.
func flagRows(fs *flag.FlagSet) (names []string, rows map[string]flagRow) {
	rows = map[string]flagRow{}
	fs.VisitAll(func(f *flag.Flag) { // in name order
		def := "(none)"
		if f.DefValue != "" {
			def = "`" + f.DefValue + "`"
		}
		names = append(names, f.Name)
		rows[f.Name] = flagRow{def: def, meaning: strings.ReplaceAll(f.Usage, "|", `\|`)}
	})
	return names, rows
}

// serveFlagTable is the generated block that goes between the markers.
func serveFlagTable(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString(serveFlagsHeader)
	names, rows := flagRows(fs)
	for _, n := range names {
		fmt.Fprintf(&b, "| `--%s` | %s | %s |\n", n, rows[n].def, rows[n].meaning)
	}
	return b.String()
}

// readmeFlagTable returns the text between the markers and where it sits in readme.
func readmeFlagTable(readme string) (table string, start, end int, err error) {
	i := strings.Index(readme, serveFlagsBegin+"\n")
	j := strings.Index(readme, serveFlagsEnd)
	if i < 0 || j < 0 || j < i {
		return "", 0, 0, fmt.Errorf("README.md has no %q ... %q block", serveFlagsBegin, serveFlagsEnd)
	}
	start = i + len(serveFlagsBegin) + 1
	return readme[start:j], start, j, nil
}

// parseFlagRows reads the rows of a README table: `--name` | default | meaning.
func parseFlagRows(table string) (map[string]flagRow, error) {
	rows := map[string]flagRow{}
	for _, line := range strings.Split(strings.TrimPrefix(table, serveFlagsHeader), "\n") {
		if line == "" {
			continue
		}
		cells := splitRow(line)
		if len(cells) != 3 || !strings.HasPrefix(cells[0], "`--") || !strings.HasSuffix(cells[0], "`") {
			return nil, fmt.Errorf("not a flag row (| `--name` | default | meaning |): %q", line)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(cells[0], "`--"), "`")
		if _, dup := rows[name]; dup {
			return nil, fmt.Errorf("--%s has two rows", name)
		}
		rows[name] = flagRow{def: cells[1], meaning: cells[2]}
	}
	return rows, nil
}

// splitRow splits a markdown table row into trimmed cells; "\|" stays inside its cell.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil
	}
	var cells []string
	var cell strings.Builder
	for i := 1; i < len(line)-1; i++ {
		switch {
		case line[i] == '\\' && line[i+1] == '|':
			cell.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

// diffFlagRows names each flag missing from the README, each extra one, and each whose default
// or meaning differs.
func diffFlagRows(want, got map[string]flagRow) []string {
	var out []string
	for n, w := range want {
		g, ok := got[n]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("--%s is missing from the README table", n))
		case g.def != w.def:
			out = append(out, fmt.Sprintf("--%s: the README says default %s, the flag has %s", n, g.def, w.def))
		case g.meaning != w.meaning:
			out = append(out, fmt.Sprintf("--%s: the README says %q, the flag says %q", n, g.meaning, w.meaning))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			out = append(out, fmt.Sprintf("--%s is in the README table but is no serve flag", n))
		}
	}
	return out
}

// TestREADMEServeFlags: the README's flag table lists exactly `lwota serve`'s flags, with their
// defaults and usage text, in name order.
func TestREADMEServeFlags(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	table, start, end, err := readmeFlagTable(readme)
	if err != nil {
		t.Fatal(err)
	}
	fs := serveFlagSet(t)
	want := serveFlagTable(fs)
	if *updateReadme {
		if table != want {
			if err := os.WriteFile(readmePath, []byte(readme[:start]+want+readme[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the serve flag table in README.md")
		}
		return
	}
	got, err := parseFlagRows(table)
	if err != nil {
		t.Fatalf("README.md serve flag table: %v", err)
	}
	_, rows := flagRows(fs)
	problems := diffFlagRows(rows, got)
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) == 0 && table != want {
		t.Errorf("the README's serve flag table is not as generated (order or layout)")
	}
	if t.Failed() {
		t.Logf("regenerate it: go test ./cmd/lwota -run '^TestREADMEServeFlags$' -update-readme")
	}
}

// TestFlagTableDiff: the comparison catches each way the README can drift from the flags.
func TestFlagTableDiff(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("addr", ":80", "where to listen | or not")
	fs.Bool("debug", false, "more logs")
	fs.String("empty", "", "no default")
	table := serveFlagTable(fs)
	if !strings.Contains(table, "| `--addr` | `:80` | where to listen \\| or not |\n") || !strings.Contains(table, "| `--empty` | (none) | no default |") {
		t.Fatalf("generated table:\n%s", table)
	}
	_, want := flagRows(fs)
	cases := []struct {
		name   string
		edit   func(string) string
		report string
	}{
		{"as generated", func(s string) string { return s }, ""},
		{"missing", func(s string) string { return strings.Replace(s, "| `--debug` | `false` | more logs |\n", "", 1) }, "--debug is missing"},
		{"extra", func(s string) string { return s + "| `--gone` | `1` | an old flag |\n" }, "--gone is in the README table but is no serve flag"},
		{"default", func(s string) string { return strings.Replace(s, "`:80`", "`:8080`", 1) }, "--addr: the README says default `:8080`"},
		{"meaning", func(s string) string { return strings.Replace(s, "more logs", "fewer logs", 1) }, `--debug: the README says "fewer logs"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFlagRows(tc.edit(table))
			if err != nil {
				t.Fatal(err)
			}
			problems := strings.Join(diffFlagRows(want, got), "\n")
			if tc.report == "" && problems != "" || !strings.Contains(problems, tc.report) {
				t.Fatalf("problems %q, want %q", problems, tc.report)
			}
		})
	}
	if _, err := parseFlagRows("| `--a` | `1` |\n"); err == nil {
		t.Errorf("a row of two cells was read")
	}
}
