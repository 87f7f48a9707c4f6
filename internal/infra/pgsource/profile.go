package pgsource

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"math/big"
)

// Profile describes a table from the catalog's statistics alone
// (pg_class.reltuples and pg_stats, as ANALYZE or autovacuum left them), so
// it costs the same on a billion rows as on ten. Every figure is an
// estimate, and none exists before the table was first analyzed.
type Profile struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	// RowEstimate is pg_class.reltuples (for a partitioned table, the sum
	// over its partitions when its own is unknown); -1 when the table has
	// never been analyzed or vacuumed.
	RowEstimate int64 `json:"row_estimate"`
	// Analyzed is set when pg_stats holds statistics for the table.
	Analyzed bool            `json:"analyzed"`
	Columns  []ColumnProfile `json:"columns"`
}

// ColumnProfile is one column's statistics. Without statistics
// (HasStats false) only Name and Type are set.
type ColumnProfile struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	HasStats bool   `json:"has_stats"`
	// NullFraction is pg_stats.null_frac; Nulls is it times RowEstimate.
	NullFraction float64 `json:"null_fraction"`
	Nulls        int64   `json:"nulls"`
	// Distinct estimates the distinct non-NULL values (pg_stats.n_distinct,
	// a fraction of the rows when negative, turned into a count).
	Distinct int64 `json:"distinct"`
	// Min and Max approximate the range from the histogram bounds and the
	// most common values: the smallest and largest values ANALYZE sampled,
	// not necessarily the table's. Numbers are json.Number, booleans bool,
	// anything else PostgreSQL's text; nil when the type has no order the
	// profile knows (arrays, JSON, geometric, ...).
	Min any `json:"min"`
	Max any `json:"max"`
	// TopValues are the most common values with their frequencies (at
	// most 10), most frequent first; empty, never nil, without them.
	TopValues []TopValue `json:"top_values"`
}

// TopValue is one of the most common values of a column.
type TopValue struct {
	Value     any     `json:"value"`
	Frequency float64 `json:"frequency"`
}

// maxTopValues caps ColumnProfile.TopValues.
const maxTopValues = 10

// Profile reads table's statistics ("schema.table" or "table", one of
// Tables()) from the catalog. It never reads the table itself. Errors:
// KindNotFound for a table not among Tables(), KindUnavailable.
func (s *Source) Profile(ctx context.Context, table string) (Profile, error) {
	p, err := s.profile(ctx, table)
	if KindOf(err) != KindNotFound {
		s.observe(err, 0)
	}
	return p, err
}

func (s *Source) profile(ctx context.Context, table string) (Profile, error) {
	t, err := s.lookupTable(table)
	if err != nil {
		return Profile{}, err
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return Profile{}, err
	}
	defer conn.Release()
	prof := Profile{Schema: t.Schema, Table: t.Name, RowEstimate: -1, Columns: []ColumnProfile{}}
	var reltuples float64
	if err := conn.Conn().QueryRow(ctx, `
SELECT CASE WHEN c.relkind = 'p' AND c.reltuples < 0 THEN coalesce((
		SELECT sum(p.reltuples) FROM pg_catalog.pg_partition_tree(c.oid) t
		JOIN pg_catalog.pg_class p ON p.oid = t.relid WHERE t.isleaf AND p.reltuples >= 0), -1)
	ELSE c.reltuples END::float8
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&reltuples); err != nil {
		return Profile{}, s.classify(ctx, err)
	}
	if reltuples >= 0 {
		prof.RowEstimate = int64(math.Round(reltuples))
	}
	// pg_stats shows only columns the role may SELECT. For a partitioned
	// table, the statistics over the whole hierarchy are the inherited
	// ones; for a plain table with children, its own.
	rows, err := conn.Conn().Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory::text,
	s.null_frac, s.n_distinct,
	s.most_common_vals::text::text[], s.most_common_freqs, s.histogram_bounds::text::text[],
	s.attname IS NOT NULL
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
	AND s.attname = a.attname AND s.inherited = (c.relkind = 'p')
WHERE n.nspname = $1 AND c.relname = $2 AND has_column_privilege(c.oid, a.attnum, 'SELECT')
ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return Profile{}, s.classify(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			cp              ColumnProfile
			category        string
			nullFrac, nDist *float64
			mcv, hist       []*string
			freqs           []float32
			hasStats        bool
		)
		if err := rows.Scan(&cp.Name, &cp.Type, &category, &nullFrac, &nDist, &mcv, &freqs, &hist, &hasStats); err != nil {
			return Profile{}, s.classify(ctx, err)
		}
		cp.TopValues = []TopValue{}
		cp.HasStats = hasStats
		if hasStats {
			prof.Analyzed = true
			fillColumnStats(&cp, category, nullFrac, nDist, mcv, freqs, hist, prof.RowEstimate)
		}
		prof.Columns = append(prof.Columns, cp)
	}
	if err := rows.Err(); err != nil {
		return Profile{}, s.classify(ctx, err)
	}
	return prof, nil
}

// fillColumnStats turns one pg_stats row into cp's figures.
func fillColumnStats(cp *ColumnProfile, category string, nullFrac, nDist *float64, mcv []*string, freqs []float32, hist []*string, rowsEst int64) {
	rowsF := math.Max(float64(rowsEst), 0)
	if nullFrac != nil {
		cp.NullFraction = *nullFrac
		cp.Nulls = int64(math.Round(*nullFrac * rowsF))
	}
	if nDist != nil {
		if *nDist >= 0 {
			cp.Distinct = int64(math.Round(*nDist))
		} else {
			cp.Distinct = int64(math.Round(-*nDist * rowsF * (1 - cp.NullFraction)))
		}
	}
	for i, v := range mcv {
		if i >= maxTopValues || i >= len(freqs) {
			break
		}
		tv := TopValue{Frequency: float64(freqs[i])}
		if v != nil {
			tv.Value = typedStat(category, *v)
		}
		cp.TopValues = append(cp.TopValues, tv)
	}
	less := orderFor(category)
	if less == nil {
		return
	}
	// The histogram is sorted and excludes the most common values; the
	// range is its ends widened by any common value beyond them.
	var candidates []string
	if n := len(hist); n > 0 {
		if hist[0] != nil {
			candidates = append(candidates, *hist[0])
		}
		if hist[n-1] != nil {
			candidates = append(candidates, *hist[n-1])
		}
	}
	for _, v := range mcv {
		if v != nil {
			candidates = append(candidates, *v)
		}
	}
	if len(candidates) == 0 {
		return
	}
	lo, hi := candidates[0], candidates[0]
	for _, c := range candidates[1:] {
		if less(c, lo) {
			lo = c
		}
		if less(hi, c) {
			hi = c
		}
	}
	cp.Min, cp.Max = typedStat(category, lo), typedStat(category, hi)
}

// orderFor returns a comparison of text values of a type category, or nil
// when the profile does not order that category. Strings (S) compare
// bytewise, which may differ from the column's collation; dates and times
// (D) compare as ISO text, which sorts chronologically for AD years.
func orderFor(category string) func(a, b string) bool {
	switch category {
	case "N":
		return func(a, b string) bool {
			x, okx := new(big.Float).SetString(a)
			y, oky := new(big.Float).SetString(b)
			if !okx || !oky {
				return a < b
			}
			return x.Cmp(y) < 0
		}
	case "B":
		return func(a, b string) bool { return a == "false" && b == "true" || a == "f" && b == "t" }
	case "S", "D":
		return func(a, b string) bool { return cmp.Less(a, b) }
	}
	return nil
}

// typedStat converts a statistics value (text) by its type category:
// numbers as json.Number, booleans as bool, the rest as text.
func typedStat(category, v string) any {
	switch category {
	case "N":
		if json.Valid([]byte(v)) {
			return json.Number(v)
		}
	case "B":
		switch v {
		case "t", "true":
			return true
		case "f", "false":
			return false
		}
	}
	return v
}
