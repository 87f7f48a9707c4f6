package pgsource

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// An error's quoted values are cut: a value may be a row's data, or, while
// planning, another table's. Names the SQL itself has stay.
func TestSQLErrorMessagesShouldCutQuotedValues(t *testing.T) {
	t.Parallel()
	sql := `SELECT nme, "Total", 99999999999::int FROM shop.orders WHERE x = 'abc'`
	for _, tc := range []struct {
		err      pgconn.PgError
		planning bool
		want     string
	}{
		{pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type integer: "<cards>` + "\n<num>4111-1111</num>\n" + `</cards>"`}, true,
			"invalid input syntax for type integer (SQLSTATE 22P02, data_exception)"},
		{pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type integer: "4111"`, Detail: "d"}, false,
			"invalid input syntax for type integer (d)"},
		{pgconn.PgError{Code: "22003", Message: `value "4111111111111111" is out of range for type integer`}, false,
			`value "…" is out of range for type integer`},
		{pgconn.PgError{Code: "22003", Message: `value "99999999999" is out of range for type integer`}, true,
			`value "99999999999" is out of range for type integer (SQLSTATE 22003, data_exception)`},
		{pgconn.PgError{Code: "22P02", Message: "invalid input syntax for type json", Detail: `Token "s3cret" is invalid.`}, false,
			`invalid input syntax for type json (Token "…" is invalid.)`},
		{pgconn.PgError{Code: "22P02", Message: "invalid input syntax for type json", Detail: `Token "s3cret" is invalid.`}, true,
			`invalid input syntax for type json (SQLSTATE 22P02, data_exception)`},
		{pgconn.PgError{Code: "42703", Message: `column "nme" does not exist`, Hint: `Perhaps you meant to reference the column "orders.name".`}, true,
			`column "nme" does not exist (SQLSTATE 42703, syntax_error_or_access_rule_violation) Hint: Perhaps you meant to reference the column "orders.name".`},
		{pgconn.PgError{Code: "42703", Message: `column "Total" of relation "shop.orders" does not exist`}, true,
			`column "Total" of relation "shop.orders" does not exist`},
		{pgconn.PgError{Code: "42601", Message: `syntax error at or near "FROM"`}, true, `syntax error at or near "FROM"`},
		{pgconn.PgError{Code: "42P01", Message: `relation "secret.cards" does not exist`}, false, `relation "…" does not exist`},
		{pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0xe9 0x74`}, false,
			`invalid byte sequence for encoding "…": 0x…`},
	} {
		if got := sqlErrorMessage(&tc.err, sql, tc.planning); !strings.HasPrefix(got, tc.want) {
			t.Errorf("sqlErrorMessage(%q, planning %v) = %q, want %q", tc.err.Message, tc.planning, got, tc.want)
		}
	}
}

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
