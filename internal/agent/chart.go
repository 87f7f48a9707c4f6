package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
)

const vegaLiteSchema = "https://vega.github.io/schema/vega-lite/v5.json"

// chart proposes a Vega-Lite spec through the visualization circuit and
// falls back to one chosen from the result's shape when the LLM is away or
// its spec is unusable.
func (r *run) chart(ctx context.Context, res *dataset.Result) {
	charter := r.a.cfg.Charter
	t := time.Now()
	switch {
	case !r.req.Visualize:
		r.step(StepChart, charter.Name(), OutcomeSkipped, 0, t, "chart not requested")
		return
	case res == nil || len(res.Rows) == 0:
		r.step(StepChart, charter.Name(), OutcomeSkipped, 0, t, "no query result to chart")
		return
	}
	r.begin(StepChart, charter.Name())
	resp, err := r.complete(ctx, charter, llm.ChatRequest{Model: r.req.Model, Messages: chartPrompt(r.req.Query, *res)})
	var why string
	if err != nil {
		why = llmReason(err)
	} else if spec, problem := parseSpec(resp.Content, res.Columns); problem != "" {
		why = "unusable spec: " + problem
	} else {
		r.out.Chart = withData(spec, *res)
		r.step(StepChart, charter.Name(), OutcomeOK, 1, t, "")
		return
	}
	spec := autoChart(res.Columns)
	if spec == nil {
		r.step(StepChart, charter.Name(), OutcomeFallback, 1, t, why+"; no chart fits the result's shape")
		return
	}
	r.out.Chart = withData(spec, *res)
	r.step(StepChart, charter.Name(), OutcomeFallback, 1, t, why+"; chart chosen from the result's shape")
}

// parseSpec accepts a JSON object with mark and encoding whose fields name
// result columns, keeping only what renders from inline data (see
// inlineOnly).
func parseSpec(reply string, cols []dataset.Column) (map[string]any, string) {
	text := llm.ExtractFenced(reply, []string{"json", "vega-lite", "vegalite"})
	var spec map[string]any
	if err := json.Unmarshal([]byte(text), &spec); err != nil {
		return nil, "not valid JSON"
	}
	if problem := inlineOnly(spec, "spec"); problem != "" {
		return nil, problem
	}
	if _, ok := spec["mark"]; !ok {
		return nil, `missing "mark"`
	}
	enc, ok := spec["encoding"].(map[string]any)
	if !ok || len(enc) == 0 {
		return nil, `missing "encoding"`
	}
	known := map[string]bool{}
	for _, c := range cols {
		known[c.Name] = true
	}
	for channel, v := range enc {
		if def, ok := v.(map[string]any); ok {
			if f, ok := def["field"].(string); ok && !known[f] {
				return nil, fmt.Sprintf("encoding.%s.field %q is not a result column", channel, f)
			}
		}
	}
	return spec, ""
}

// inlineOnly strips from an LLM's spec, at any depth (layer, concat,
// hconcat, vconcat, facet and repeat specs, transforms, config, marks and
// encodings alike), everything that would make a renderer fetch or link to
// something other than the rows withData inlines:
//
//   - every key named url or href: data URLs, image marks' url, the
//     encoding channels url and href, config.mark.href, …;
//   - every data and datasets object, inline or not: withData then sets the
//     one top-level data, which nested views inherit;
//   - usermeta, which vega-embed reads as options (loader, editor URL,
//     source header HTML) and which no chart needs.
//
// A lookup transform that brings its own data (from.data) is refused
// instead, since without that data the lookup means nothing; the
// deterministic chart is used. node is edited in place; path names it in
// the problem.
func inlineOnly(node any, path string) string {
	switch n := node.(type) {
	case map[string]any:
		if from, ok := n["from"].(map[string]any); ok && n["lookup"] != nil && from["data"] != nil {
			return fmt.Sprintf("%s: a lookup transform may not bring its own data", path)
		}
		for k, v := range n {
			switch {
			case strings.EqualFold(k, "url"), strings.EqualFold(k, "href"),
				k == "data", k == "datasets", k == "usermeta":
				delete(n, k)
			default:
				if problem := inlineOnly(v, path+"."+k); problem != "" {
					return problem
				}
			}
		}
	case []any:
		for i, v := range n {
			if problem := inlineOnly(v, fmt.Sprintf("%s[%d]", path, i)); problem != "" {
				return problem
			}
		}
	}
	return ""
}

// withData inlines the result rows as the spec's data.
func withData(spec map[string]any, res dataset.Result) map[string]any {
	values := make([]map[string]any, 0, len(res.Rows))
	for _, row := range res.Rows {
		obj := make(map[string]any, len(res.Columns))
		for i, c := range res.Columns {
			if i < len(row) {
				obj[c.Name] = row[i]
			}
		}
		values = append(values, obj)
	}
	spec["$schema"] = vegaLiteSchema
	spec["data"] = map[string]any{"values": values}
	return spec
}

type columnKind int

const (
	kindCategory columnKind = iota
	kindNumber
	kindTime
)

func kindOf(duckType string) columnKind {
	t := strings.ToUpper(duckType)
	switch {
	case strings.HasPrefix(t, "DECIMAL"), t == "DOUBLE", t == "FLOAT", t == "REAL",
		strings.HasSuffix(t, "INT"), t == "INTEGER", t == "HUGEINT", t == "UHUGEINT", t == "BIGINT", t == "UBIGINT",
		t == "SMALLINT", t == "USMALLINT", t == "TINYINT", t == "UTINYINT", t == "UINTEGER":
		return kindNumber
	case strings.HasPrefix(t, "TIMESTAMP"), t == "DATE", t == "TIME":
		return kindTime
	default:
		return kindCategory
	}
}

// autoChart picks a chart from the result's shape: category + number →
// bar, time + number → line, two numbers → scatter. nil when none fits.
func autoChart(cols []dataset.Column) map[string]any {
	first := func(k columnKind, skip string) string {
		for _, c := range cols {
			if kindOf(c.Type) == k && c.Name != skip {
				return c.Name
			}
		}
		return ""
	}
	num := first(kindNumber, "")
	if num == "" {
		return nil
	}
	enc := func(x, xType, y string) map[string]any {
		return map[string]any{
			"x": map[string]any{"field": x, "type": xType},
			"y": map[string]any{"field": y, "type": "quantitative"},
		}
	}
	if ts := first(kindTime, ""); ts != "" {
		return map[string]any{"mark": "line", "encoding": enc(ts, "temporal", num)}
	}
	if cat := first(kindCategory, ""); cat != "" {
		return map[string]any{"mark": "bar", "encoding": enc(cat, "nominal", num)}
	}
	if other := first(kindNumber, num); other != "" {
		return map[string]any{"mark": "point", "encoding": enc(num, "quantitative", other)}
	}
	return nil
}

// summarize is the deterministic one-line answer used when data_analyst is
// away but the query ran: the table itself is in the response.
func summarize(res dataset.Result) string {
	switch {
	case res.RowCount == 0:
		return "The query returned no rows."
	case res.RowCount == 1 && len(res.Rows) == 1:
		parts := make([]string, 0, len(res.Columns))
		for i, c := range res.Columns {
			parts = append(parts, fmt.Sprintf("%s = %s", c.Name, cell(res.Rows[0][i])))
		}
		return "The query returned one row: " + strings.Join(parts, ", ") + "."
	default:
		names := make([]string, len(res.Columns))
		for i, c := range res.Columns {
			names[i] = c.Name
		}
		first := make([]string, 0, len(res.Columns))
		for i, c := range res.Columns {
			first = append(first, fmt.Sprintf("%s = %s", c.Name, cell(res.Rows[0][i])))
		}
		return fmt.Sprintf("The query returned %d rows with columns %s; the first is %s.",
			res.RowCount, strings.Join(names, ", "), strings.Join(first, ", "))
	}
}
