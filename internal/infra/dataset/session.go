package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is the outcome of a query, ready to encode as JSON.
type Result struct {
	Columns []Column `json:"columns"`
	// Rows are arrays in column order; every value is JSON-encodable (see
	// the conversions documented on Session.Query).
	Rows [][]any `json:"rows"`
	// RowCount is the size of the full result, even when Rows was cut.
	RowCount int64 `json:"row_count"`
	// Truncated is set when Rows holds fewer rows than RowCount, because of
	// Config.MaxRows or Config.MaxResultBytes.
	Truncated bool `json:"truncated"`
}

// Session is a sandboxed, read-only view of a dataset's tables: a stored
// dataset (Store.Session) or inline content (Store.OpenInline, loaded into
// a temporary database file as one table named data). A dataset of one
// table can also be read as data, whatever its table's name. Every query
// runs in a worker process, on a handle opened READ_ONLY with file access
// and settings locked. It is safe for concurrent use.
//
// A Session sees the tables its dataset had when it was opened, for as
// long as it is open, even if AddTables adds more meanwhile. Close it: a
// stored dataset's files are only removed (after a Delete, or once
// AddTables has replaced them) when every Session on them is closed, and
// an inline table's file when its Session closes.
type Session struct {
	store  *Store
	path   string // the database file
	tables []Table
	// allowed are the table names the guard lets SQL read.
	allowed []string

	gen *generation // stored dataset; nil for inline data

	closeOnce sync.Once
	closeErr  error
}

// newSession opens a view of the tables in the database file path.
func (s *Store) newSession(path string, tables []Table, gen *generation) *Session {
	q := &Session{store: s, path: path, tables: tables, gen: gen}
	for _, t := range tables {
		q.allowed = append(q.allowed, t.Name)
	}
	if len(tables) == 1 && tables[0].Name != DataAlias {
		q.allowed = append(q.allowed, DataAlias)
	}
	return q
}

// Session opens a sandboxed view of a stored dataset; an unknown id gives
// an error wrapping ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	return s.newSession(g.path, cloneTables(g.meta.Dataset.Tables), g), nil
}

// Close releases the session. It is idempotent.
func (q *Session) Close() error {
	q.closeOnce.Do(func() {
		if q.gen != nil {
			q.closeErr = q.store.release(q.gen)
			return
		}
		q.closeErr = removeDBFiles(q.path)
	})
	return q.closeErr
}

// Tables returns the tables SQL may read, in the order they were added,
// each with its columns and profile. Inline data is one table named data.
func (q *Session) Tables() []Table { return cloneTables(q.tables) }

// Table returns the named table (names are matched case-insensitively, as
// DuckDB does; the data alias of a one-table dataset is its table).
func (q *Session) Table(name string) (Table, bool) {
	for _, t := range q.tables {
		if strings.EqualFold(t.Name, name) {
			return cloneTables([]Table{t})[0], true
		}
	}
	if len(q.tables) == 1 && strings.EqualFold(name, DataAlias) {
		return cloneTables(q.tables)[0], true
	}
	return Table{}, false
}

// Schema returns the columns of a one-table dataset's table (data); nil
// when the dataset has several tables (see Tables).
func (q *Session) Schema() []Column {
	if len(q.tables) != 1 {
		return nil
	}
	return slices.Clone(q.tables[0].Columns)
}

// Profile returns the profile of a one-table dataset's table, computed
// when the data was loaded; for several tables, an empty profile (see
// Tables).
func (q *Session) Profile(ctx context.Context) (Profile, error) {
	if err := ctx.Err(); err != nil {
		return Profile{}, err
	}
	if len(q.tables) != 1 {
		return Profile{Columns: []ColumnProfile{}}, nil
	}
	return cloneProfile(q.tables[0].Profile), nil
}

// Sample returns the first n rows of a one-table dataset's table (n is
// clamped to 1..MaxRows; RowCount is the size of the sample, see
// Table.Rows for the table's). For several tables, use SampleTable.
func (q *Session) Sample(ctx context.Context, n int) (Result, error) {
	if len(q.tables) != 1 {
		return Result{}, q.store.errorf(KindInvalid, "the dataset has %d tables: name the one to sample", len(q.tables))
	}
	return q.SampleTable(ctx, q.tables[0].Name, n)
}

// SampleTable returns the first n rows of the named table, like Sample.
func (q *Session) SampleTable(ctx context.Context, table string, n int) (Result, error) {
	return q.Rows(ctx, table, n, 0)
}

// Rows returns up to limit rows of the named table from offset on, in the
// order they were loaded (DuckDB preserves insertion order). limit is
// clamped to 1..MaxRows and offset to 0 and up; Config.MaxResultBytes may
// cut the page shorter (Truncated). RowCount is the size of the page. An
// unknown table is KindInvalid.
func (q *Session) Rows(ctx context.Context, table string, limit int, offset int64) (Result, error) {
	t, ok := q.Table(table)
	if !ok {
		return Result{}, q.store.errorf(KindInvalid, "no table named %q: the tables are %s", table, strings.Join(q.names(), ", "))
	}
	limit = max(1, min(limit, q.store.cfg.MaxRows))
	offset = max(0, offset)
	return q.run(ctx, fmt.Sprintf("SELECT * FROM %s LIMIT %d OFFSET %d", quoteIdent(t.Name), limit, offset), false)
}

func (q *Session) names() []string {
	out := make([]string, len(q.tables))
	for i, t := range q.tables {
		out[i] = t.Name
	}
	return out
}

// Query runs untrusted SQL in a worker: the guard refuses anything but
// one SELECT that reads only the session's tables (and data, for one
// table) (KindUnsafeSQL, nothing run), then it runs in the sandbox under
// Config.StatementTimeout (KindTimeout) and its errors come back as
// KindSQL with paths scrubbed. Work DuckDB cannot interrupt is stopped by
// killing the worker: past the statement timeout or the worker's memory
// ceiling, that is KindQueryTooExpensive. Rows stop at Config.MaxRows and
// Config.MaxResultBytes while streaming; RowCount is still the full count.
//
// If the caller's ctx ends first, the error wraps ctx's error and is not
// an *Error (the client is gone; there is nobody to tell).
//
// Values are converted for JSON as the table at the top of values.go says:
// FLOAT keeps its 32-bit precision, DECIMAL is exact, UBIGINT, HUGEINT and
// UHUGEINT beyond ±2^53 are strings, DATE, TIME and timestamps are ISO
// 8601, lists are arrays, structs and maps objects, NaN and infinities
// strings. Strings holding the data directory show "<path>" instead.
func (q *Session) Query(ctx context.Context, text string) (Result, error) {
	return q.run(ctx, text, true)
}

// Validate checks untrusted SQL without returning rows: the guard, then a
// prepare in the sandbox, which binds names and types against the schema
// (so an unknown column is a KindSQL error) but runs nothing.
func (q *Session) Validate(ctx context.Context, text string) error {
	_, err := q.store.runJob(ctx, job{Op: opValidate, SQL: text, DB: q.path, Tables: q.allowed}, q.store.cfg.StatementTimeout)
	return err
}

func (q *Session) run(ctx context.Context, text string, untrusted bool) (Result, error) {
	cfg := q.store.cfg
	rep, err := q.store.runJob(ctx, job{
		Op: opQuery, SQL: text, Guard: untrusted, Tables: q.allowed, DB: q.path,
		MaxRows: cfg.MaxRows, MaxResultBytes: cfg.MaxResultBytes,
	}, cfg.StatementTimeout)
	if err != nil {
		return Result{}, err
	}
	return q.store.result(rep)
}

// result decodes a worker's rows: integers of integer columns become
// int64, other numbers stay json.Number, and strings naming the data
// directory are scrubbed.
func (s *Store) result(rep reply) (Result, error) {
	res := Result{Columns: rep.Columns, Rows: make([][]any, len(rep.Rows)), RowCount: rep.RowCount, Truncated: rep.Truncated}
	if res.Columns == nil {
		res.Columns = []Column{}
	}
	for i, raw := range rep.Rows {
		var row []any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&row); err != nil || len(row) != len(res.Columns) {
			return Result{}, fmt.Errorf("dataset: malformed row from worker: %v", err)
		}
		for k, v := range row {
			row[k] = s.resultValue(v, res.Columns[k].Type)
		}
		res.Rows[i] = row
	}
	return res, nil
}

// resultValue types integers and hides server paths in result strings.
// Only the Store's own directories are replaced, not every
// absolute-looking string, because user data may legitimately hold paths.
func (s *Store) resultValue(v any, dbType string) any {
	switch x := v.(type) {
	case json.Number:
		if isInteger(dbType) {
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return n
			}
			if n, err := strconv.ParseUint(string(x), 10, 64); err == nil {
				return n
			}
		}
		return x
	case string:
		for _, p := range s.dataDirs {
			if strings.Contains(x, p) {
				x = strings.ReplaceAll(x, p, "<path>")
			}
		}
		return x
	}
	return v
}

func isInteger(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT":
		return true
	}
	return false
}

// runJob runs a job on a worker and turns every failure into what callers
// expect: the caller's own cancellation wraps ctx's error; a worker killed
// or crashed is KindQueryTooExpensive (KindUploadTooExpensive for an
// ingest) naming the limit; a worker's *Error is scrubbed of paths.
func (s *Store) runJob(ctx context.Context, j job, timeout time.Duration) (reply, error) {
	j.MemoryLimitMB = s.cfg.MemoryLimitMB
	j.MaxOpen = s.cfg.MaxOpen
	rep, err := s.pool.run(ctx, j, timeout)
	if err != nil {
		if ctx.Err() != nil {
			return reply{}, fmt.Errorf("dataset: query: %w", context.Cause(ctx))
		}
		var ke *killError
		if errors.As(err, &ke) {
			return reply{}, s.killed(j.Op, ke.reason, timeout)
		}
		return reply{}, err
	}
	if rep.Err != nil {
		if rep.Err.Kind == kindInternal {
			return reply{}, fmt.Errorf("dataset: %s: %s", j.Op, s.scrub.scrub(rep.Err.Message))
		}
		if rep.Err.Kind == KindTimeout && j.Op == opIngest {
			return reply{}, s.killed(j.Op, KillDeadline, timeout)
		}
		if rep.Err.Kind == KindTimeout {
			return reply{}, s.errorf(KindTimeout, "the query ran longer than the limit of %s and was stopped", timeout)
		}
		return reply{}, s.errorf(rep.Err.Kind, "%s", rep.Err.Message)
	}
	return rep, nil
}

// killed is the error for a job whose worker was killed or died.
func (s *Store) killed(op, reason string, timeout time.Duration) *Error {
	kind, what := KindQueryTooExpensive, "the query"
	if op == opIngest {
		kind, what = KindUploadTooExpensive, "loading the data"
	}
	switch reason {
	case KillMemory:
		return s.errorf(kind, "%s needed more memory than the limit of %d MiB (datasets.worker_memory_mb) and was stopped", what, s.cfg.WorkerMemoryMB)
	case KillDeadline:
		return s.errorf(kind, "%s ran past the time limit of %s and was stopped", what, timeout)
	}
	return s.errorf(kind, "%s crashed the worker process that ran it", what)
}
