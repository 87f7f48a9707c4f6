package dataset_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestOpenInline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		format   string
		content  string
		wantCols []dataset.Column
		wantKind dataset.Kind
	}{
		{name: "csv", format: "csv", content: "a,b\n1,x\n2,y\n", wantCols: []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "VARCHAR"}}},
		{name: "tsv as csv", format: "csv", content: "a\tb\n1\tx\n2\ty\n", wantCols: []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "VARCHAR"}}},
		{name: "json array", format: "json", content: `[{"a":1,"b":"x"},{"a":2,"b":"y"}]`, wantCols: []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "VARCHAR"}}},
		{name: "ndjson", format: "JSON", content: "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n", wantCols: []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "VARCHAR"}}},
		{name: "bad csv", format: "csv", content: "\x00\x01\xff\xfe\n", wantKind: dataset.KindInvalid},
		{name: "bad json", format: "json", content: `[{"a":1},{"a"`, wantKind: dataset.KindInvalid},
		{name: "json that is no table", format: "json", content: `[]`, wantKind: dataset.KindInvalid},
		{name: "empty", format: "csv", content: " \n", wantKind: dataset.KindInvalid},
		{name: "unknown format", format: "xml", content: "<a/>", wantKind: dataset.KindInvalid},
		{name: "too large", format: "csv", content: "a\n" + strings.Repeat("1\n", 600), wantKind: dataset.KindTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			s := mustOpen(t, dataset.Config{Dir: dir, MaxUploadBytes: 1000})
			q, err := s.OpenInline(context.Background(), tt.format, tt.content)
			if tt.wantKind != "" {
				e := requireKind(t, err, tt.wantKind)
				if strings.Contains(e.Message, dir) {
					t.Errorf("message reveals the data dir: %q", e.Message)
				}
				requireEmptyDir(t, dir)
				return
			}
			if err != nil {
				t.Fatalf("OpenInline: %v", err)
			}
			// Only the loaded database is left, until Close.
			if des, _ := os.ReadDir(dir); len(des) != 1 || !strings.HasSuffix(des[0].Name(), ".duckdb") {
				t.Errorf("data dir holds %v, want the inline database alone", des)
			}
			defer func() {
				if err := q.Close(); err != nil {
					t.Error(err)
				}
				requireEmptyDir(t, dir)
			}()
			if got := q.Schema(); !slices.Equal(got, tt.wantCols) {
				t.Errorf("schema: got %v, want %v", got, tt.wantCols)
			}
			res := mustQuery(t, q, "SELECT b FROM data ORDER BY a DESC")
			requireSameJSON(t, res.Rows, [][]any{{"y"}, {"x"}})
			if err := q.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := q.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestQueryValuesAreJSONReady(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	q := mustInline(t, s, "csv", "a\n1\n")
	res := mustQuery(t, q, `SELECT
		1.25::DECIMAL(10,2) AS dec,
		170141183460469231731687303715884105727::HUGEINT AS huge,
		'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS id,
		DATE '2024-01-02' AS day,
		TIME '12:34:56' AS clock,
		TIMESTAMP '2024-01-02 03:04:05.5' AS ts,
		INTERVAL '1 year 2 months 3 days 04:05:06' AS span,
		'abc'::BLOB AS blob,
		'\xFF'::BLOB AS bad_blob,
		[1, 2] AS list,
		{'k': 'v', 'n': 1.5::DECIMAL(3,1)} AS obj,
		MAP {'a': 1} AS m,
		'NaN'::DOUBLE AS nan,
		'-inf'::DOUBLE AS neg_inf,
		2.5::FLOAT AS f32,
		NULL AS nothing`)
	requireSameJSON(t, res.Rows, [][]any{{
		1.25, "170141183460469231731687303715884105727", "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"2024-01-02", "12:34:56", "2024-01-02T03:04:05.5Z", "1 year 2 months 3 days 04:05:06",
		"abc", `\xFF`, []any{1, 2}, map[string]any{"k": "v", "n": 1.5}, map[string]any{"a": 1},
		"NaN", "-Infinity", 2.5, nil,
	}})
	wantTypes := []string{"DECIMAL(10,2)", "HUGEINT", "UUID", "DATE", "TIME", "TIMESTAMP", "INTERVAL", "BLOB", "BLOB"}
	for i, want := range wantTypes {
		if res.Columns[i].Type != want {
			t.Errorf("column %s: type %q, want %q", res.Columns[i].Name, res.Columns[i].Type, want)
		}
	}
}
