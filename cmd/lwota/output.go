package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats of -o/--output. json is the API's own JSON, indented; yaml is the same document
// as YAML; table is for people.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
	outputAuto  = "auto" // table on a terminal, JSON otherwise: the default of the commands scripts pipe into jq
)

// outputFormat is the value of -o: checked when parsed, so that a typo is a usage error before
// any request is sent.
type outputFormat struct {
	value string
	json  *bool // --json, the older spelling of -o json
}

func (o *outputFormat) String() string { return o.value }
func (o *outputFormat) Type() string   { return "format" }

func (o *outputFormat) Set(s string) error {
	switch s {
	case outputTable, outputJSON, outputYAML:
		o.value = s
		return nil
	}
	return fmt.Errorf("want json, yaml or table")
}

// addOutputFlag gives cmd -o/--output with the default def (outputTable or outputAuto), and
// --json, which is -o json.
func addOutputFlag(cmd *cobra.Command, def string) *outputFormat {
	o := &outputFormat{value: def, json: new(bool)}
	usage := "output format: table, json (the API's JSON) or yaml"
	if def == outputAuto {
		usage += " (default: table on a terminal, else json)"
	}
	cmd.Flags().VarP(o, "output", "o", usage)
	if def == outputAuto {
		cmd.Flags().Lookup("output").DefValue = ""
	}
	cmd.Flags().BoolVar(o.json, "json", false, "same as -o json")
	return o
}

// format is the format to print in on w.
func (o *outputFormat) format(w io.Writer) string {
	if *o.json {
		return outputJSON
	}
	if o.value == outputAuto {
		if isTerminal(w) {
			return outputTable
		}
		return outputJSON
	}
	return o.value
}

// print writes raw, the API's JSON answer, in the chosen format; table draws the table.
func (o *outputFormat) print(w io.Writer, raw []byte, table func(io.Writer) error) error {
	switch o.format(w) {
	case outputJSON:
		return writeJSON(w, raw)
	case outputYAML:
		return writeYAML(w, raw)
	}
	return table(w)
}

// printList is print for a list of the API's objects; no objects are [], not null.
func (o *outputFormat) printList(w io.Writer, list []json.RawMessage, table func(io.Writer) error) error {
	if o.format(w) == outputJSON {
		return writeJSONList(w, list)
	}
	if list == nil {
		list = []json.RawMessage{}
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return o.print(w, raw, table)
}

// writeYAML prints the JSON document raw as YAML.
func writeYAML(w io.Writer, raw []byte) error {
	y, err := yaml.JSONToYAML(bytes.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	_, err = w.Write(y)
	return err
}

// newTable is a tabwriter with the CLI's column spacing.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// decodeList decodes each raw object into a T.
func decodeList[T any](what string, list []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(list))
	for _, raw := range list {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s answer: %w", what, err)
		}
		out = append(out, v)
	}
	return out, nil
}
