package agent

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Limits on what of the data goes into a prompt.
const (
	sampleRows  = 20
	sampleChars = 4000
)

// table is inline data as rows of strings, with its columns.
type table struct {
	columns []string
	rows    [][]string
}

func parseInline(d InlineData) (table, error) {
	if strings.TrimSpace(d.Content) == "" {
		return table{}, &InputError{Field: "data.content", Message: "must not be empty"}
	}
	switch d.Format {
	case "csv":
		return parseCSV(d.Content)
	case "json":
		return parseJSON(d.Content)
	default:
		return table{}, &InputError{Field: "data.format", Message: fmt.Sprintf("must be \"csv\" or \"json\", got %q", d.Format)}
	}
}

func parseCSV(content string) (table, error) {
	r := csv.NewReader(strings.NewReader(content))
	r.FieldsPerRecord = 0
	header, err := r.Read()
	if err != nil {
		return table{}, &InputError{Field: "data.content", Message: "invalid CSV: " + err.Error()}
	}
	t := table{columns: header}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return table{}, &InputError{Field: "data.content", Message: "invalid CSV: " + err.Error()}
		}
		t.rows = append(t.rows, rec)
	}
	return t, nil
}

func parseJSON(content string) (table, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(content)))
	dec.UseNumber()
	var objs []map[string]any
	if err := dec.Decode(&objs); err != nil {
		return table{}, &InputError{Field: "data.content", Message: "must be a JSON array of objects: " + err.Error()}
	}
	seen := map[string]bool{}
	var t table
	for _, o := range objs {
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				t.columns = append(t.columns, k)
			}
		}
	}
	for _, o := range objs {
		row := make([]string, len(t.columns))
		for i, c := range t.columns {
			if v, ok := o[c]; ok && v != nil {
				switch v := v.(type) {
				case string:
					row[i] = v
				default:
					b, _ := json.Marshal(v)
					row[i] = string(b)
				}
			}
		}
		t.rows = append(t.rows, row)
	}
	return t, nil
}

// describe renders a compact schema and sample for the prompt.
func (t table) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rows, %d columns.\nColumns:\n", len(t.rows), len(t.columns))
	for i, c := range t.columns {
		fmt.Fprintf(&b, "- %s (%s)\n", c, t.columnType(i))
	}
	b.WriteString("Sample rows (CSV):\n")
	var sample bytes.Buffer
	w := csv.NewWriter(&sample)
	_ = w.Write(t.columns)
	for i, r := range t.rows {
		if i >= sampleRows || sample.Len() > sampleChars {
			break
		}
		_ = w.Write(r)
		w.Flush()
	}
	w.Flush()
	s := sample.String()
	if len(s) > sampleChars {
		s = s[:sampleChars] + "\n…(truncated)"
	}
	b.WriteString(s)
	return b.String()
}

func (t table) columnType(col int) string {
	kind := ""
	for _, r := range t.rows {
		if col >= len(r) || r[col] == "" {
			continue
		}
		v := r[col]
		k := "text"
		if _, err := strconv.ParseInt(v, 10, 64); err == nil {
			k = "integer"
		} else if _, err := strconv.ParseFloat(v, 64); err == nil {
			k = "number"
		} else if v == "true" || v == "false" {
			k = "boolean"
		}
		switch {
		case kind == "":
			kind = k
		case kind == k:
		case (kind == "integer" && k == "number") || (kind == "number" && k == "integer"):
			kind = "number"
		default:
			return "text"
		}
	}
	if kind == "" {
		return "empty"
	}
	return kind
}
