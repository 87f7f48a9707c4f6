package pgsource

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Only a server that cannot be reached, refuses connections or lost the
// database is unavailable; a query that needed too many resources is too
// expensive, the LLM's to make cheaper.
func TestClassifyShouldTellUnavailableFromTooExpensive(t *testing.T) {
	t.Parallel()
	s := &Source{cfg: Config{Name: "t", StatementTimeout: DefaultStatementTimeout}, scrub: newScrubber()}
	for _, tc := range []struct {
		code, severity string
		want           Kind
	}{
		{"53300", "FATAL", KindUnavailable},
		{"08006", "FATAL", KindUnavailable},
		{"28P01", "FATAL", KindUnavailable},
		{"57P01", "FATAL", KindUnavailable},
		{"57P02", "FATAL", KindUnavailable},
		{"57P03", "FATAL", KindUnavailable},
		{"3D000", "FATAL", KindUnavailable},
		{"53400", "ERROR", KindTooExpensive}, // temp_file_limit
		{"53200", "ERROR", KindTooExpensive}, // out of memory
		{"53200", "FATAL", KindTooExpensive},
		{"53100", "ERROR", KindTooExpensive}, // disk full
		{"25P03", "FATAL", KindTimeout},      // idle_in_transaction_session_timeout
		{"XX000", "FATAL", KindSQL},
		{"22012", "ERROR", KindSQL},
	} {
		err := s.classify(context.Background(), &pgconn.PgError{Code: tc.code, Severity: tc.severity, Message: "m"})
		if got := KindOf(err); got != tc.want {
			t.Errorf("SQLSTATE %s (%s) classified %s, want %s", tc.code, tc.severity, got, tc.want)
		}
	}
}
