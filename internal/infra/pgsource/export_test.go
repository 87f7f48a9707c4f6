package pgsource

import "context"

// QueryWithoutLexicalCheck runs sql as Query does but skips checkText, so
// that tests can show the layers beneath it holding on their own.
func QueryWithoutLexicalCheck(s *Source, ctx context.Context, sql string) (Result, error) {
	return s.query(ctx, sql, false)
}
