package codegen

import (
	"context"
	"errors"

	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/pgsource"
)

// SQLCheck is the engine's verdict on SQL: nil when it is a single allowed
// SELECT, else why not. (*dataset.Store).ValidateSQL checks with DuckDB's
// parser only; (*dataset.Session).Validate also binds names and types
// against a dataset; both run the guard of package dataset in a worker
// process. (*pgsource.Source).Explain plans it under the source's guard,
// in a read-only transaction, without running it.
type SQLCheck func(ctx context.Context, sql string) error

// ReviewSQL reviews SQL: its bounds (not empty, at most MaxCodeLength
// characters), checked here so that nothing out of bounds reaches a
// worker, then check. The rules are DuckDB's own parser's, applied to
// its syntax tree by check: exactly one statement, and that a query;
// only the allowed table functions (no read_csv, glob or query); no
// string or file names as tables; no system catalog; no functions that
// read settings. An unexpected error from check (the caller's context
// ended, the store closed) makes the code invalid, with a generic
// message. SQL never draws warnings.
func ReviewSQL(ctx context.Context, code string, check SQLCheck) Review {
	msg := sqlBounds(code)
	if msg == "" {
		msg = sqlVerdict(check(ctx, code))
	}
	return Review{IsValid: msg == "", ErrorMessage: msg, Warnings: []string{}}
}

// sqlBounds returns why code is out of bounds, or "".
func sqlBounds(code string) string { return bounds(code, "SQL") }

// sqlVerdict turns a check's error into a review message, or "". A
// refusal by the guard speaks for itself; anything else DuckDB said
// (a syntax error, an unknown column, a limit hit) is marked as DuckDB's.
//
// A source's refusal (pgsource's KindUnsafeSQL) already starts with "SQL
// refused"; anything else PostgreSQL said is marked as its.
func sqlVerdict(err error) string {
	var de *dataset.Error
	var pe *pgsource.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &de) && de.Kind == dataset.KindUnsafeSQL:
		return "SQL refused: " + de.Message
	case errors.As(err, &de):
		return "DuckDB: " + de.Message
	case errors.As(err, &pe) && pe.Kind == pgsource.KindUnsafeSQL:
		return pe.Message
	case errors.As(err, &pe) && (pe.Kind == pgsource.KindSQL || pe.Kind == pgsource.KindTimeout || pe.Kind == pgsource.KindTooExpensive):
		return "PostgreSQL: " + pe.Message
	default:
		return "SQL could not be checked"
	}
}
