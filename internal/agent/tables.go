package agent

import (
	"context"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// The SQL dialects a Table speaks, as Dialect names them.
const (
	DialectDuckDB   = "duckdb"
	DialectPostgres = "postgres"
)

// Table is a sandboxed, read-only view of the request's data: what the
// analyst reads of it, whichever engine holds it. StoreTables opens a
// DuckDB dataset, SourceTables a live PostgreSQL source. A DuckDB
// dataset of one table can be read as data (Schema, Profile and Sample
// are that table's); any other data is read through Tables and
// SampleTable, by the tables' own names. Close is called exactly once,
// when the request is done with the data.
type Table interface {
	// Dialect is the SQL the data is queried in: DialectDuckDB or
	// DialectPostgres. The prompts name it.
	Dialect() string
	// Tables lists every table SQL may read, with its columns and
	// profile, in the order they were added. A source's profiles are
	// the catalog's estimates: Profile.RowCount is -1 when the table was
	// never analyzed, and a column without statistics has no
	// ColumnProfile.
	Tables() []dataset.Table
	// Schema returns the only table's columns.
	Schema() []dataset.Column
	// Profile returns the only table's deterministic summary.
	Profile(ctx context.Context) (dataset.Profile, error)
	// Sample returns the only table's first n rows, for the prompts.
	Sample(ctx context.Context, n int) (dataset.Result, error)
	// SampleTable returns the first n rows of the named table.
	SampleTable(ctx context.Context, table string, n int) (dataset.Result, error)
	// Query runs the planner's untrusted SQL. A *dataset.Error's Message,
	// and a *pgsource.Error's of kind unsafe_sql, sql_error or timeout,
	// is safe to send back to the LLM; any other error ends the request
	// (a source that cannot be reached is not the LLM's fault).
	Query(ctx context.Context, sql string) (dataset.Result, error)
	Close() error
}

// Tables opens a Table on a request's data. StoreTables adapts the real
// store.
type Tables interface {
	// Open returns a Table on a stored dataset; an unknown id is an error
	// wrapping dataset.ErrNotFound.
	Open(ctx context.Context, datasetID string) (Table, error)
	// OpenInline loads data sent with the request; content that cannot be
	// read as a table is a *dataset.Error of kind dataset.KindInvalid.
	OpenInline(ctx context.Context, format, content string) (Table, error)
}

// StoreTables returns the Tables of a dataset store. Its sessions are
// Tables but for the dialect, which is always DuckDB's.
func StoreTables(s *dataset.Store) Tables { return storeTables{s} }

type storeTables struct{ s *dataset.Store }

// duckTable is a dataset session as a Table.
type duckTable struct{ *dataset.Session }

func (duckTable) Dialect() string { return DialectDuckDB }

func (t storeTables) Open(ctx context.Context, id string) (Table, error) {
	sess, err := t.s.Session(ctx, id)
	if err != nil {
		return nil, err // not a nil *Session in a non-nil Table
	}
	return duckTable{sess}, nil
}

func (t storeTables) OpenInline(ctx context.Context, format, content string) (Table, error) {
	sess, err := t.s.OpenInline(ctx, format, content)
	if err != nil {
		return nil, err
	}
	return duckTable{sess}, nil
}
