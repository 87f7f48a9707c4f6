package agent

// Internal tests of the deterministic pieces the degraded modes rely on;
// the pipeline itself is tested with fakes in analyst_test.go and through
// the HTTP API in test/.

import (
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func cols(pairs ...string) []dataset.Column {
	var out []dataset.Column
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, dataset.Column{Name: pairs[i], Type: pairs[i+1]})
	}
	return out
}

func TestAutoChartShouldFollowTheResultShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cols       []dataset.Column
		mark, x, y string
	}{
		{"category and number", cols("region", "VARCHAR", "total", "HUGEINT"), "bar", "region", "total"},
		{"time and number", cols("day", "DATE", "sales", "DOUBLE"), "line", "day", "sales"},
		{"timestamp wins over category", cols("region", "VARCHAR", "at", "TIMESTAMP WITH TIME ZONE", "n", "BIGINT"), "line", "at", "n"},
		{"two numbers", cols("units", "INTEGER", "price", "DECIMAL(10,2)"), "point", "units", "price"},
		{"unsigned and small ints are numbers", cols("a", "UTINYINT", "b", "USMALLINT"), "point", "a", "b"},
		{"text only", cols("region", "VARCHAR"), "", "", ""},
		{"one number", cols("n", "BIGINT"), "", "", ""},
		{"nothing", nil, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := autoChart(tt.cols)
			if tt.mark == "" {
				if spec != nil {
					t.Fatalf("want no chart, got %v", spec)
				}
				return
			}
			enc := spec["encoding"].(map[string]any)
			x := enc["x"].(map[string]any)["field"]
			y := enc["y"].(map[string]any)["field"]
			if spec["mark"] != tt.mark || x != tt.x || y != tt.y {
				t.Fatalf("got %v %v/%v, want %s %s/%s", spec["mark"], x, y, tt.mark, tt.x, tt.y)
			}
		})
	}
}

func TestParseSpecShouldAcceptOnlyUsableSpecs(t *testing.T) {
	t.Parallel()
	c := cols("region", "VARCHAR", "total", "BIGINT")
	tests := []struct {
		name, reply, problem string
	}{
		{"fenced and valid", "Here:\n```json\n{\"mark\":\"bar\",\"encoding\":{\"x\":{\"field\":\"region\"},\"y\":{\"field\":\"total\"}}}\n```", ""},
		{"bare and valid", `{"mark":{"type":"bar"},"encoding":{"x":{"field":"region"}}}`, ""},
		{"not JSON", "a bar chart of totals", "not valid JSON"},
		{"no mark", `{"encoding":{"x":{"field":"region"}}}`, `missing "mark"`},
		{"no encoding", `{"mark":"bar"}`, `missing "encoding"`},
		{"empty encoding", `{"mark":"bar","encoding":{}}`, `missing "encoding"`},
		{"unknown field", `{"mark":"bar","encoding":{"x":{"field":"country"}}}`, `encoding.x.field "country" is not a result column`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, problem := parseSpec(tt.reply, c)
			if problem != tt.problem || (problem == "") != (spec != nil) {
				t.Fatalf("problem %q (spec %v), want %q", problem, spec, tt.problem)
			}
		})
	}
}

func TestWithDataShouldInlineTheRowsByColumnName(t *testing.T) {
	t.Parallel()
	res := dataset.Result{Columns: cols("region", "VARCHAR", "total", "BIGINT"), Rows: [][]any{{"North", 160}, {"South", 80}}}
	spec := withData(map[string]any{"mark": "bar"}, res)
	got, _ := json.Marshal(spec["data"])
	if string(got) != `{"values":[{"region":"North","total":160},{"region":"South","total":80}]}` || spec["$schema"] != vegaLiteSchema {
		t.Fatalf("spec: %v", spec)
	}
}

func TestSummarizeShouldDescribeTheResultWithoutTheLLM(t *testing.T) {
	t.Parallel()
	c := cols("region", "VARCHAR", "total", "BIGINT")
	tests := []struct {
		name string
		res  dataset.Result
		want string
	}{
		{"no rows", dataset.Result{Columns: c, Rows: [][]any{}}, "The query returned no rows."},
		{"one row", dataset.Result{Columns: c, Rows: [][]any{{"North", 160}}, RowCount: 1}, "The query returned one row: region = North, total = 160."},
		{"many rows, some cut", dataset.Result{Columns: c, Rows: [][]any{{"North", 160}, {nil, 80}}, RowCount: 7, Truncated: true},
			"The query returned 7 rows with columns region, total; the first is region = North, total = 160."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := summarize(tt.res); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Whatever would fetch or link outside the inlined rows is stripped at any
// depth; a lookup that brings its own data makes the spec unusable.
func TestParseSpecShouldKeepOnlyInlineData(t *testing.T) {
	t.Parallel()
	c := cols("region", "VARCHAR", "total", "BIGINT")
	tests := []struct {
		name, reply, want, problem string
	}{
		{"top-level data url",
			`{"data":{"url":"https://evil.example/x.csv"},"mark":"bar","encoding":{"x":{"field":"region"}}}`,
			`{"encoding":{"x":{"field":"region"}},"mark":"bar"}`, ""},
		{"a layer's data url",
			`{"mark":"bar","encoding":{"x":{"field":"region"}},"layer":[{"mark":"rule","data":{"url":"https://evil.example/y.json","format":{"type":"json"}}},{"mark":"text","data":{"values":[{"a":1}]}}]}`,
			`{"encoding":{"x":{"field":"region"}},"layer":[{"mark":"rule"},{"mark":"text"}],"mark":"bar"}`, ""},
		{"an href encoding and mark",
			`{"mark":{"type":"bar","href":"https://evil.example"},"encoding":{"x":{"field":"region"},"href":{"value":"https://evil.example"},"URL":{"field":"total"}}}`,
			`{"encoding":{"x":{"field":"region"}},"mark":{"type":"bar"}}`, ""},
		{"an image mark's url, concat views, config, datasets and usermeta",
			`{"mark":{"type":"image","url":"https://evil.example/i.png"},"encoding":{"x":{"field":"region"},"url":{"field":"total"}},` +
				`"hconcat":[{"mark":"bar","data":{"url":"a.csv"}},{"facet":{"row":{"field":"region"}},"spec":{"mark":"point","data":{"url":"b.csv"}}}],` +
				`"vconcat":[{"concat":[{"mark":"area","encoding":{"href":{"field":"region"}}}]}],` +
				`"datasets":{"d":[{"a":1}]},"config":{"mark":{"href":"https://evil.example"}},"usermeta":{"embedOptions":{"loader":{"baseURL":"https://evil.example"}}}}`,
			`{"config":{"mark":{}},"encoding":{"x":{"field":"region"}},"hconcat":[{"mark":"bar"},{"facet":{"row":{"field":"region"}},"spec":{"mark":"point"}}],"mark":{"type":"image"},"vconcat":[{"concat":[{"encoding":{},"mark":"area"}]}]}`, ""},
		{"an href-only encoding is no encoding",
			`{"mark":"bar","encoding":{"href":{"field":"region"}}}`, "", `missing "encoding"`},
		{"a lookup transform's external data",
			`{"mark":"bar","encoding":{"x":{"field":"region"}},"transform":[{"filter":"true"},{"lookup":"region","from":{"data":{"url":"https://evil.example/z.csv"},"key":"region","fields":["pop"]}}]}`,
			"", `spec.transform[1]: a lookup transform may not bring its own data`},
		{"a lookup transform's data inside a layer",
			`{"mark":"bar","encoding":{"x":{"field":"region"}},"layer":[{"transform":[{"lookup":"region","from":{"data":{"values":[]},"key":"region"}}]}]}`,
			"", `spec.layer[0].transform[0]: a lookup transform may not bring its own data`},
		{"a lookup of a selection is kept",
			`{"mark":"bar","encoding":{"x":{"field":"region"}},"transform":[{"lookup":"region","from":{"param":"pick","key":"region"}}]}`,
			`{"encoding":{"x":{"field":"region"}},"mark":"bar","transform":[{"from":{"key":"region","param":"pick"},"lookup":"region"}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, problem := parseSpec(tt.reply, c)
			if problem != tt.problem {
				t.Fatalf("problem %q, want %q", problem, tt.problem)
			}
			if tt.problem != "" {
				if spec != nil {
					t.Fatalf("spec %v with a problem", spec)
				}
				return
			}
			if got := mustJSON(t, spec); got != tt.want {
				t.Fatalf("spec\n got  %s\n want %s", got, tt.want)
			}
		})
	}
}

// The inlined rows are the only data a kept spec carries, even when the
// LLM named a URL.
func TestAKeptSpecShouldCarryOnlyTheInlinedRows(t *testing.T) {
	t.Parallel()
	c := cols("region", "VARCHAR", "total", "BIGINT")
	spec, problem := parseSpec(`{"data":{"url":"https://evil.example/x.csv"},"mark":"bar","encoding":{"x":{"field":"region"},"y":{"field":"total"}}}`, c)
	if problem != "" {
		t.Fatal(problem)
	}
	res := dataset.Result{Columns: c, Rows: [][]any{{"North", 160}}}
	got := mustJSON(t, withData(spec, res))
	want := `{"$schema":"https://vega.github.io/schema/vega-lite/v5.json","data":{"values":[{"region":"North","total":160}]},"encoding":{"x":{"field":"region"},"y":{"field":"total"}},"mark":"bar"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
