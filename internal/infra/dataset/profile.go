package dataset

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
)

// Profile is a deterministic summary of a table, computed by DuckDB
// aggregates (no LLM). For a stored dataset it is computed once at upload
// and kept in the metadata, so reading it costs nothing.
type Profile struct {
	RowCount int64           `json:"row_count"`
	Columns  []ColumnProfile `json:"columns"`
}

// ColumnProfile summarises one column. Min and Max are JSON-ready values
// (number, string or bool; nil when the column is all NULL or its type has
// no order, such as LIST or STRUCT); text values in Min, Max and TopValues
// are cut to 200 characters. Distinct is exact and does not count NULL.
type ColumnProfile struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nulls    int64  `json:"nulls"`
	Distinct int64  `json:"distinct"`
	Min      any    `json:"min"`
	Max      any    `json:"max"`
	// Mean is nil for non-numeric columns and for all-NULL ones.
	Mean *float64 `json:"mean"`
	// TopValues holds, for text columns (VARCHAR, ENUM), the five most
	// frequent non-NULL values ordered by count descending then value; it
	// is empty, never nil, for other columns.
	TopValues []TopValue `json:"top_values"`
}

// TopValue is one frequent value of a text column.
type TopValue struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

const (
	topValues          = 5
	maxProfileStrRunes = 200
)

// queryer is what profiling needs: a *sql.DB or *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// computeProfile profiles a table: one scan for counts, distinct
// counts, min, max and mean of every column, then, per text column, one
// grouping that yields both its distinct count and its top values (so text
// columns, usually the costliest to count, are hashed once, not twice).
func computeProfile(ctx context.Context, q queryer, table string, cols []Column) (Profile, error) {
	prof := Profile{Columns: make([]ColumnProfile, len(cols))}
	exprs := []string{"count(*)"}
	for _, c := range cols {
		id := quoteIdent(c.Name)
		distinct := "count(DISTINCT " + id + ")"
		minMax := "min(" + id + "), max(" + id + ")"
		switch {
		case isText(c.Type):
			distinct = "NULL" // from topValuesOf
		case isNested(c.Type):
			distinct = "count(DISTINCT " + id + "::VARCHAR)"
			minMax = "NULL, NULL"
		}
		mean := "NULL::DOUBLE"
		if isNumeric(c.Type) {
			mean = "avg(" + id + ")::DOUBLE"
		}
		exprs = append(exprs, "count("+id+")", distinct, minMax, mean)
	}
	rows, err := q.QueryContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+quoteIdent(table))
	if err != nil {
		return Profile{}, err
	}
	vals := make([]any, 1+5*len(cols))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if !rows.Next() {
		err := rows.Err()
		_ = rows.Close()
		return Profile{}, fmt.Errorf("profile: no aggregate row: %w", err)
	}
	err = rows.Scan(ptrs...)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Profile{}, err
	}
	prof.RowCount = toInt64(vals[0])
	for i, c := range cols {
		v := vals[1+5*i:]
		nonNull := toInt64(v[0])
		cp := ColumnProfile{
			Name:      c.Name,
			Type:      c.Type,
			Nulls:     prof.RowCount - nonNull,
			Distinct:  toInt64(v[1]),
			Min:       profileValue(jsonValue(v[2], c.Type)),
			Max:       profileValue(jsonValue(v[3], c.Type)),
			TopValues: []TopValue{},
		}
		if f, ok := v[4].(float64); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
			cp.Mean = &f
		}
		if isText(c.Type) && nonNull > 0 {
			if cp.Distinct, cp.TopValues, err = topValuesOf(ctx, q, table, c.Name); err != nil {
				return Profile{}, err
			}
		}
		prof.Columns[i] = cp
	}
	return prof, nil
}

// topValuesOf groups a text column once and returns its distinct count
// and its most frequent values, by count descending then value.
func topValuesOf(ctx context.Context, q queryer, table, col string) (int64, []TopValue, error) {
	id := quoteIdent(col)
	query := fmt.Sprintf(`WITH g AS MATERIALIZED (
		SELECT %s::VARCHAR AS v, count(*) AS n FROM %s WHERE %s IS NOT NULL GROUP BY 1)
	SELECT (SELECT count(*) FROM g) AS distinct_values, v, n FROM g ORDER BY n DESC, v LIMIT %d`, id, quoteIdent(table), id, topValues)
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	var distinct int64
	top := []TopValue{}
	for rows.Next() {
		var tv TopValue
		if err := rows.Scan(&distinct, &tv.Value, &tv.Count); err != nil {
			return 0, nil, err
		}
		tv.Value = cutRunes(tv.Value, maxProfileStrRunes)
		top = append(top, tv)
	}
	return distinct, top, rows.Err()
}

func profileValue(v any) any {
	if s, ok := v.(string); ok {
		return cutRunes(s, maxProfileStrRunes)
	}
	return v
}

func cutRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case uint64:
		return int64(x)
	case int:
		return int64(x)
	}
	return 0
}

// quoteIdent quotes a table or column name for DuckDB.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func isNested(t string) bool {
	return strings.HasSuffix(t, "]") || strings.HasPrefix(t, "STRUCT") ||
		strings.HasPrefix(t, "MAP") || strings.HasPrefix(t, "UNION")
}

func isText(t string) bool {
	return t == "VARCHAR" || strings.HasPrefix(t, "ENUM")
}

func isNumeric(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
		"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
		"FLOAT", "DOUBLE":
		return true
	}
	return strings.HasPrefix(t, "DECIMAL")
}
