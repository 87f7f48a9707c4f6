package dataset_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// Given a CTE named like a system view, when the view is read where that
// CTE is out of scope (DuckDB resolves it to the system view), then the
// guard still refuses it. It used to exempt any name a CTE had anywhere.
func TestGuardShouldNotLetACTEHideASystemView(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{Workers: 1})
	q := mustInline(t, s, "csv", "id,name\n1,a\n")
	ctx := context.Background()
	for _, text := range []string{
		"WITH a AS (FROM pg_settings), pg_settings AS (SELECT 1) SELECT count(*) FROM a",
		"SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1) AS x, duckdb_databases",
	} {
		_, err := q.Query(ctx, text)
		if e := requireKind(t, err, dataset.KindUnsafeSQL); !strings.Contains(e.Message, "system catalog") {
			t.Errorf("Query(%q): message %q", text, e.Message)
		}
		requireKind(t, s.ValidateSQL(ctx, text), dataset.KindUnsafeSQL)
	}
}
