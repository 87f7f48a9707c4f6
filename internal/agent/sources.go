package agent

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/pgsource"
)

// SourceOpener opens a live source, by its configured name, as a Table;
// SourceTables adapts the real ones. An unknown name is an error wrapping
// pgsource.ErrUnknownSource.
type SourceOpener interface {
	OpenSource(ctx context.Context, name string) (Table, error)
}

// SourceSet finds a configured source by name; *pgsource.Set provides it.
type SourceSet interface {
	Get(name string) (*pgsource.Source, error)
}

// SourceTables returns the SourceOpener of the configured PostgreSQL
// sources.
func SourceTables(set SourceSet) SourceOpener { return sourceTables{set} }

type sourceTables struct{ set SourceSet }

// OpenSource reads the source's tables as introspected (at start-up or the
// last reload) and each one's profile from the catalog; a database that
// cannot be reached fails here, before any LLM call, with a *pgsource.Error
// of KindUnavailable.
func (s sourceTables) OpenSource(ctx context.Context, name string) (Table, error) {
	src, err := s.set.Get(name)
	if err != nil {
		return nil, err
	}
	return openSource(ctx, src)
}

// sourceTable is a PostgreSQL source as a Table. A table is named by its
// bare name when no other table of the source has that name, else as
// schema.name; the query's search_path is the source's schemas, so both
// resolve.
type sourceTable struct {
	src    *pgsource.Source
	tables []dataset.Table
	// qualified maps a table's name as shown to schema.name.
	qualified map[string]string
}

func openSource(ctx context.Context, src *pgsource.Source) (*sourceTable, error) {
	list := src.Tables()
	count := map[string]int{}
	for _, t := range list {
		count[t.Name]++
	}
	st := &sourceTable{src: src, qualified: make(map[string]string, len(list))}
	for _, t := range list {
		name := t.Name
		if count[t.Name] > 1 {
			name = t.QualifiedName()
		}
		p, err := src.Profile(ctx, t.QualifiedName())
		if err != nil {
			return nil, err
		}
		st.qualified[name] = t.QualifiedName()
		prof := profileOf(p)
		st.tables = append(st.tables, dataset.Table{Name: name, Rows: prof.RowCount, Columns: columnsOf(t.Columns), Profile: prof})
	}
	return st, nil
}

func (t *sourceTable) Dialect() string { return DialectPostgres }

func (t *sourceTable) Tables() []dataset.Table {
	out := make([]dataset.Table, len(t.tables))
	for i, tb := range t.tables {
		tb.Columns = slices.Clone(tb.Columns)
		tb.Profile.Columns = slices.Clone(tb.Profile.Columns)
		out[i] = tb
	}
	return out
}

// Schema is the only table's columns; nil for several.
func (t *sourceTable) Schema() []dataset.Column {
	if len(t.tables) != 1 {
		return nil
	}
	return slices.Clone(t.tables[0].Columns)
}

// Profile is the only table's profile; empty for several.
func (t *sourceTable) Profile(ctx context.Context) (dataset.Profile, error) {
	if len(t.tables) != 1 {
		return dataset.Profile{Columns: []dataset.ColumnProfile{}}, ctx.Err()
	}
	return t.Tables()[0].Profile, ctx.Err()
}

func (t *sourceTable) Sample(ctx context.Context, n int) (dataset.Result, error) {
	if len(t.tables) != 1 {
		return dataset.Result{}, fmt.Errorf("the source has %d tables: name the one to sample", len(t.tables))
	}
	return t.SampleTable(ctx, t.tables[0].Name, n)
}

func (t *sourceTable) SampleTable(ctx context.Context, table string, n int) (dataset.Result, error) {
	q, ok := t.qualified[table]
	if !ok {
		q = table // the source says which tables it has
	}
	res, err := t.src.Sample(ctx, q, n)
	if err != nil {
		return dataset.Result{}, err
	}
	return resultOf(res), nil
}

func (t *sourceTable) Query(ctx context.Context, sql string) (dataset.Result, error) {
	res, err := t.src.Query(ctx, sql)
	if err != nil {
		return dataset.Result{}, err
	}
	return resultOf(res), nil
}

// Close does nothing: the source's pool outlives the request.
func (t *sourceTable) Close() error { return nil }

func columnsOf(cols []pgsource.Column) []dataset.Column {
	out := make([]dataset.Column, len(cols))
	for i, c := range cols {
		out[i] = dataset.Column{Name: c.Name, Type: c.Type}
	}
	return out
}

// resultOf converts a source's result. RowCount keeps pgsource's meaning:
// exact unless Truncated, when it is a lower bound.
func resultOf(r pgsource.Result) dataset.Result {
	return dataset.Result{Columns: columnsOf(r.Columns), Rows: r.Rows, RowCount: r.RowCount, Truncated: r.Truncated}
}

// profileOf keeps what the prompts use of a catalog profile: the row
// estimate (-1 when never analyzed) and, for each column with statistics,
// estimated nulls and distinct values, the sampled range and the most
// common values with their estimated counts. Columns without statistics
// are left out, so that the prompt claims nothing of them.
func profileOf(p pgsource.Profile) dataset.Profile {
	out := dataset.Profile{RowCount: p.RowEstimate, Columns: []dataset.ColumnProfile{}}
	rows := math.Max(float64(p.RowEstimate), 0)
	for _, c := range p.Columns {
		if !c.HasStats {
			continue
		}
		cp := dataset.ColumnProfile{Name: c.Name, Type: c.Type, Nulls: c.Nulls, Distinct: c.Distinct,
			Min: c.Min, Max: c.Max, TopValues: []dataset.TopValue{}}
		for _, tv := range c.TopValues {
			cp.TopValues = append(cp.TopValues, dataset.TopValue{Value: cell(tv.Value), Count: int64(math.Round(tv.Frequency * rows))})
		}
		out.Columns = append(out.Columns, cp)
	}
	return out
}
