package dataset

import (
	"context"
	"encoding/json"
	"fmt"
)

// serializeSQL asks DuckDB's parser to serialise the text. The user's SQL
// is a bound parameter, never part of a statement we prepare, and the
// function parses without binding or running anything.
const serializeSQL = "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR"

// guard accepts exactly one SELECT statement (DuckDB's notion: SELECT,
// WITH ... SELECT, FROM-first, VALUES, DESCRIBE, SUMMARIZE) and refuses
// everything else before it is run. json_serialize_sql reports an error
// for any statement that is not a SELECT, so "DROP TABLE data; SELECT 1"
// is refused as a whole. Syntax errors come back as KindSQL so that an LLM
// can fix them; everything else refused is KindUnsafeSQL.
//
// The guard is the first layer only: a SELECT can still call read_csv or
// glob, which the sandboxed database refuses.
func (s *Store) guard(ctx context.Context, text string) error {
	var out string
	if err := s.parser.QueryRowContext(ctx, serializeSQL, text).Scan(&out); err != nil {
		return fmt.Errorf("dataset: parse sql: %w", err)
	}
	var parsed struct {
		Error        bool              `json:"error"`
		ErrorType    string            `json:"error_type"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return fmt.Errorf("dataset: decode parser output: %w", err)
	}
	const refused = "only a single read-only SELECT is allowed: "
	switch {
	case parsed.Error && parsed.ErrorType == "parser":
		return s.errorf(KindSQL, "%s", parsed.ErrorMessage)
	case parsed.Error:
		// DuckDB says "Only SELECT statements can be serialized to json!",
		// which would puzzle a user or an LLM.
		return s.errorf(KindUnsafeSQL, "%sthe text contains a statement that is not a SELECT", refused)
	case len(parsed.Statements) == 0:
		return s.errorf(KindUnsafeSQL, "%sthe query is empty", refused)
	case len(parsed.Statements) > 1:
		return s.errorf(KindUnsafeSQL, "%sgot %d statements", refused, len(parsed.Statements))
	}
	return nil
}

// ValidateSQL checks, with the parser only, that text is a single SELECT,
// for SQL that has no dataset to bind against. It does not check table or
// column names; Session.Validate does.
func (s *Store) ValidateSQL(ctx context.Context, text string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.StatementTimeout, errStatementTimeout)
	defer cancel()
	if err := s.guard(ctx, text); err != nil {
		return s.queryError(ctx, err)
	}
	return nil
}
