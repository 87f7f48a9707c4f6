package pgsource

import "context"

// QueryCheckingOnlyThePlan runs sql as Query does but skips every check of
// its text (checkText, checkNames and the catalog's look at its names), so
// that tests can show the plan check holding on its own.
func QueryCheckingOnlyThePlan(s *Source, ctx context.Context, sql string) (Result, error) {
	return s.query(context.WithValue(ctx, planOnlyKey{}, true), sql, false)
}
