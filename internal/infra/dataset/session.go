package dataset

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
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

// Session is a sandboxed, read-only view of one table named data: a stored
// dataset (Store.Session, opened READ_ONLY) or inline content
// (Store.OpenInline, in memory, where every query runs in a transaction
// that is rolled back). It is safe for concurrent use. Close it: a stored dataset's
// files are only removed after a Delete once every Session on it is
// closed.
type Session struct {
	store  *Store
	db     *sql.DB
	schema []Column

	entry *entry // stored dataset; nil for inline data
	spill string // inline data: DuckDB's spill directory, removed on Close

	profMu sync.Mutex
	prof   *Profile // stored: from metadata; inline: computed on first use

	closeOnce sync.Once
	closeErr  error
}

// errStatementTimeout is the cause given to a query's context when
// Config.StatementTimeout expires, to tell it from the caller's own
// cancellation.
var errStatementTimeout = errors.New("statement timeout")

// Session opens a sandboxed view of a stored dataset; an unknown id gives
// an error wrapping ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	db, err := e.handle(s.dbPath(id), s.cfg.MemoryLimitMB)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dataset: open %s: %w", id, err), s.release(e))
	}
	s.closeIdle()
	prof := e.meta.profile()
	return &Session{store: s, db: db, schema: e.meta.Dataset.Columns, entry: e, prof: &prof}, nil
}

// Close releases the session. It is idempotent.
func (q *Session) Close() error {
	q.closeOnce.Do(func() {
		if q.entry != nil {
			q.closeErr = q.store.release(q.entry)
			return
		}
		q.closeErr = q.db.Close()
		if err := os.RemoveAll(q.spill); err != nil && q.closeErr == nil {
			q.closeErr = err
		}
	})
	return q.closeErr
}

// Schema returns the columns of table data.
func (q *Session) Schema() []Column { return slices.Clone(q.schema) }

// Profile returns the table's profile: the stored one for a dataset,
// computed once on first call for inline data.
func (q *Session) Profile(ctx context.Context) (Profile, error) {
	q.profMu.Lock()
	defer q.profMu.Unlock()
	if q.prof != nil {
		return metadata{Profile: *q.prof}.profile(), nil
	}
	prof, err := computeProfile(ctx, q.db, q.schema)
	if err != nil {
		return Profile{}, q.store.queryError(ctx, err)
	}
	q.prof = &prof
	return metadata{Profile: prof}.profile(), nil
}

// Sample returns the first n rows of data (n is clamped to 1..MaxRows;
// RowCount is the size of the sample, see Dataset.Rows for the table's).
func (q *Session) Sample(ctx context.Context, n int) (Result, error) {
	n = max(1, min(n, q.store.cfg.MaxRows))
	return q.run(ctx, fmt.Sprintf("SELECT * FROM data LIMIT %d", n), false)
}

// Query runs untrusted SQL: the guard refuses anything but one SELECT
// (KindUnsafeSQL, nothing run), then it runs in the sandbox under
// Config.StatementTimeout (KindTimeout) and its errors come back as
// KindSQL with paths scrubbed. Rows stop at Config.MaxRows and
// Config.MaxResultBytes while streaming; RowCount is still the full count.
//
// If the caller's ctx ends first, the error wraps ctx's error and is not
// an *Error (the client is gone; there is nobody to tell).
//
// Values are converted for JSON: DECIMAL to float64, HUGEINT to an exact
// json.Number, UUID, BLOB and INTERVAL to strings, DATE to "2006-01-02",
// TIME to "15:04:05", timestamps to RFC 3339, NaN and infinities to
// strings, lists to arrays, structs and maps to objects. Strings holding
// the data directory (duckdb_settings() lists it) show "<path>" instead.
func (q *Session) Query(ctx context.Context, text string) (Result, error) {
	return q.run(ctx, text, true)
}

// Validate checks untrusted SQL without returning rows: the guard, then a
// prepare in the sandbox, which binds names and types against the schema
// (so an unknown column is a KindSQL error) but runs nothing.
func (q *Session) Validate(ctx context.Context, text string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, q.store.cfg.StatementTimeout, errStatementTimeout)
	defer cancel()
	if err := q.store.guard(ctx, text); err != nil {
		return q.store.queryError(ctx, err)
	}
	// Safe to prepare now: the guard proved it is a single statement, and
	// duckdb-go only runs statements before the last one while preparing.
	stmt, err := q.db.PrepareContext(ctx, text)
	if err != nil {
		return q.store.queryError(ctx, err)
	}
	return stmt.Close()
}

// streamCountBudget is how many rows past the caps are counted by reading
// them on; past that, the rest is counted by DuckDB with count(*) over the
// query, which is cheaper than converting every remaining row in Go.
const streamCountBudget = 50_000

func (q *Session) run(ctx context.Context, text string, untrusted bool) (Result, error) {
	cfg := q.store.cfg
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.StatementTimeout, errStatementTimeout)
	defer cancel()
	if untrusted {
		if err := q.store.guard(ctx, text); err != nil {
			return Result{}, q.store.queryError(ctx, err)
		}
	}
	var db querier = q.db
	if q.entry == nil {
		// Inline data lives in a writable in-memory database, so its
		// queries run in a transaction that is always rolled back: even a
		// statement that got past the guard would change nothing.
		tx, err := q.db.BeginTx(ctx, nil)
		if err != nil {
			return Result{}, q.store.queryError(ctx, err)
		}
		defer func() { _ = tx.Rollback() }()
		db = tx
	}
	rows, err := db.QueryContext(ctx, text)
	if err != nil {
		return Result{}, q.store.queryError(ctx, err)
	}
	defer rows.Close()
	res, err := q.collect(ctx, rows)
	if err != nil {
		return Result{}, q.store.queryError(ctx, err)
	}
	if !res.Truncated {
		return res, nil
	}
	if err := q.countRest(ctx, db, rows, text, &res); err != nil {
		return Result{}, q.store.queryError(ctx, err)
	}
	return res, nil
}

// querier is a *sql.DB or, for inline data, a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// collect reads rows until the end or a cap. On a cap it leaves rows
// positioned on the first row not kept, counted in RowCount.
func (q *Session) collect(ctx context.Context, rows *sql.Rows) (Result, error) {
	cfg := q.store.cfg
	cts, err := rows.ColumnTypes()
	if err != nil {
		return Result{}, err
	}
	res := Result{Columns: make([]Column, len(cts)), Rows: [][]any{}}
	for i, ct := range cts {
		res.Columns[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
	}
	vals := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	size := int64(2) // the brackets of the rows array
	for rows.Next() {
		res.RowCount++
		if len(res.Rows) >= cfg.MaxRows {
			res.Truncated = true
			return res, nil
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Result{}, err
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = q.store.resultValue(jsonValue(v, res.Columns[i].Type))
		}
		b, err := json.Marshal(row)
		if err != nil {
			return Result{}, fmt.Errorf("encode row: %w", err)
		}
		if size+int64(len(b))+1 > cfg.MaxResultBytes {
			res.Truncated = true
			return res, nil
		}
		size += int64(len(b)) + 1
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// countRest completes RowCount after a cap: first by reading on (cheap
// for a few more rows), then by DuckDB counting the same query as a
// subquery. If that wrapped text is not a single SELECT (a trailing
// semicolon or comment can break the wrapping), it falls back to reading
// every remaining row.
func (q *Session) countRest(ctx context.Context, db querier, rows *sql.Rows, text string, res *Result) error {
	for range streamCountBudget {
		if !rows.Next() {
			return rows.Err()
		}
		res.RowCount++
	}
	// The newline ends a trailing "--" comment. The wrapped text goes
	// through the guard again like any untrusted SQL.
	wrapped := "SELECT count(*) FROM (\n" + text + "\n) AS nexus_count"
	if err := q.store.guard(ctx, wrapped); err == nil {
		var n int64
		err := db.QueryRowContext(ctx, wrapped).Scan(&n)
		if err == nil && n >= res.RowCount {
			res.RowCount = n
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	} else if ctx.Err() != nil {
		return err
	}
	for rows.Next() {
		res.RowCount++
	}
	return rows.Err()
}

// resultValue hides server paths in result strings: SELECT * FROM
// duckdb_databases() or duckdb_settings() would otherwise reveal the data
// directory. Only the Store's own directories are replaced, not every
// absolute-looking string, because user data may legitimately hold paths.
func (s *Store) resultValue(v any) any {
	str, ok := v.(string)
	if !ok {
		return v
	}
	for _, p := range s.dataDirs {
		if strings.Contains(str, p) {
			str = strings.ReplaceAll(str, p, "<path>")
		}
	}
	return str
}

// queryError classifies an error from the guard or a query: the
// statement timeout becomes KindTimeout, the caller's own cancellation is
// returned as is (wrapping ctx's error), an *Error passes through, and
// anything else from DuckDB becomes KindSQL with paths scrubbed.
func (s *Store) queryError(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStatementTimeout) {
		return &Error{Kind: KindTimeout, Message: fmt.Sprintf("the query ran longer than the limit of %s and was stopped", s.cfg.StatementTimeout)}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("dataset: query: %w", context.Cause(ctx))
	}
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	return s.errorf(KindSQL, "%s", duckMessage(err))
}
