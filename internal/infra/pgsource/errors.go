package pgsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/nexus/nexus/internal/infra/redact"
)

// Kind classifies an *Error so that the API layer can map it to an HTTP
// status, and the pipeline decide whom to blame, without parsing messages.
type Kind string

// The kinds of *Error. The suggested HTTP status is the API layer's choice.
const (
	// KindUnsafeSQL: the guard refused the SQL without running it (not one
	// read-only query, a relation outside the allowed tables, a forbidden
	// function), or the database refused it for lack of a privilege or
	// because the transaction is read-only. The message names what was
	// refused and is meant to be fed back to the LLM. Suggests 422.
	KindUnsafeSQL Kind = "unsafe_sql"
	// KindSQL: the database could not parse, plan or run the SQL (unknown
	// column, type error, division by zero). The message is PostgreSQL's
	// own, scrubbed, and is meant to be fed back to the LLM: a value it
	// quotes, which may be a row's data, is cut (see sqlErrorMessage), and
	// an error raised while planning keeps only its message and SQLSTATE.
	// Suggests 422.
	KindSQL Kind = "sql_error"
	// KindTimeout: the statement ran past Config.StatementTimeout or the
	// caller's deadline and was cancelled on the server. Suggests 504 or
	// 422 (the query was too expensive).
	KindTimeout Kind = "timeout"
	// KindTooExpensive: the query needed more than the server or the
	// source allows, not for lack of time: a temp_file_limit, memory or
	// disk (SQLSTATE class 53 other than 53300, too many connections), or
	// a result row larger than the source reads (see Query). The source is
	// fine; a cheaper query may pass. The message is meant to be fed back
	// to the LLM. Suggests 422, as the dataset store's
	// query_too_expensive.
	KindTooExpensive Kind = "query_too_expensive"
	// KindUnavailable: the server cannot be reached or refused the
	// connection (down, restarting, too many connections, authentication
	// failed, the database gone: SQLSTATE 53300, classes 08 and 28,
	// 57P01-57P03, 3D000). Not the LLM's fault. Suggests 503 with
	// Retry-After.
	KindUnavailable Kind = "unavailable"
	// KindUnsafeRole: the DSN's role can write or escape the database (see
	// Open); the source refuses to serve. The message names the privilege.
	KindUnsafeRole Kind = "unsafe_role"
	// KindInvalidConfig: the Config or the DSN is not valid. The message
	// never holds the DSN.
	KindInvalidConfig Kind = "invalid_config"
	// KindNotFound: Profile or Sample named a table that is not among
	// Tables().
	KindNotFound Kind = "not_found"
)

// Error is the package's user-facing error. Message is safe to show to a
// user and to send to an LLM: it never holds the DSN or its password, and
// server file paths are replaced by "<path>". Error() prefixes the source's
// name: `source "sales": SQL refused: ...`.
type Error struct {
	Source  string `json:"source"`
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("source %q: %s", e.Source, e.Message) }

// KindOf returns the Kind of an *Error in err's chain, or "" when there is
// none (a caller's own context cancellation, say).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// absPath matches an absolute POSIX path with at least two segments, or a
// well-known top-level directory, starting at a boundary: PostgreSQL names
// files in some messages ("could not open file ..."), and the Unix socket
// path in connection errors.
var absPath = regexp.MustCompile(`(^|[\s'"(=,:\[{<])((?:/[^\s'"/()<>,;]+){2,}/?|/(?:tmp|etc|root|home|var|usr|proc|sys|dev|opt|srv|mnt|run)\b/?)`)

// passwordKV matches a password in a key=value DSN, quoted or not.
var passwordKV = regexp.MustCompile(`(?i)\bpassword\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+)`)

// scrubber makes text safe to show: the DSN and its password (when known)
// replaced, key=value passwords replaced, URLs cut to scheme://host (the
// redact package's policy, which drops a URL DSN's userinfo), and absolute
// paths replaced by "<path>".
type scrubber struct {
	r *redact.Redactor
}

func newScrubber(secrets ...string) scrubber { return scrubber{r: redact.New(secrets...)} }

func (s scrubber) scrub(msg string) string {
	msg = passwordKV.ReplaceAllString(msg, "password="+redact.Placeholder)
	msg = s.r.Redact(msg)
	msg = absPath.ReplaceAllString(msg, "${1}<path>")
	return strings.TrimSpace(msg)
}

// errorf builds an *Error with a scrubbed message.
func (s *Source) errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Source: s.cfg.Name, Kind: kind, Message: s.scrub.scrub(fmt.Sprintf(format, args...))}
}

// classify turns an error from pgx into an *Error. ctx is the context the
// failed call ran under: its deadline tells a timeout from a server error.
// A cancellation by the caller (not a deadline) is returned as the
// context's own error, wrapped, since it is nobody's failure.
func (s *Source) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return s.classifyPg(ctx, pgErr)
	}
	var tooLong *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &tooLong) {
		// pgconn closed the connection (the rest of the message is
		// unread); the pool discards it on release.
		return s.errorf(KindTooExpensive, "a result row (or the plan) is too large: the server sent a message of %d bytes, past the source's limit of %d; select fewer or shorter values",
			tooLong.ActualBodyLen, tooLong.MaxExpectedBodyLen)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return s.errorf(KindTimeout, "the query was cancelled: it ran past its deadline")
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("source %q: %w", s.cfg.Name, ctx.Err())
	case strings.Contains(err.Error(), "closed pool"):
		return s.errorf(KindUnavailable, "the source is closed")
	}
	if isConnectionError(err) {
		return s.errorf(KindUnavailable, "the database is unavailable: %s", connCause(err))
	}
	return s.errorf(KindSQL, "%s", err.Error())
}

// classifyPg maps a PostgreSQL error by its SQLSTATE.
func (s *Source) classifyPg(ctx context.Context, pgErr *pgconn.PgError) error {
	msg := pgErr.Message
	if pgErr.Detail != "" {
		msg += " (" + pgErr.Detail + ")"
	}
	if pgErr.Hint != "" {
		msg += " Hint: " + pgErr.Hint
	}
	code := pgErr.Code
	switch {
	case code == "57014": // query_canceled: statement_timeout, or our cancel request
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("source %q: %w", s.cfg.Name, ctx.Err())
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return s.errorf(KindTimeout, "the query was cancelled: it ran past its deadline")
		}
		return s.errorf(KindTimeout, "the query was cancelled: it ran past the statement timeout of %s", s.cfg.StatementTimeout)
	case code == "25P03" || code == "57P05": // idle_in_transaction_session_timeout, idle_session_timeout
		return s.errorf(KindTimeout, "the session was ended by the server: %s", pgErr.Message)
	case code == "42501" || code == "25006": // insufficient_privilege, read_only_sql_transaction
		return s.errorf(KindUnsafeSQL, "SQL refused by the database: %s", msg)
	case code == "53300", // too_many_connections
		strings.HasPrefix(code, "08"),    // connection exception
		strings.HasPrefix(code, "28"),    // invalid authorization
		code == "57P01", code == "57P02", // admin or crash shutdown
		code == "57P03", // cannot_connect_now: starting up, in recovery
		code == "3D000": // invalid_catalog_name: the database is gone
		return s.errorf(KindUnavailable, "the database is unavailable: %s", msg)
	case strings.HasPrefix(code, "53"): // insufficient resources: disk, memory, temp_file_limit
		return s.errorf(KindTooExpensive, "the query needs more resources than the server allows: %s", pgErr.Message)
	}
	// The SQL is not known here: every quoted run is cut, as a value
	// that may be a row's data (a run's error, or introspection's).
	return s.errorf(KindSQL, "%s", sqlErrorMessage(pgErr, "", false))
}

// isConnectionError reports an error of the network or of connecting,
// rather than of the SQL.
func isConnectionError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection reset")
}

// connCause condenses a connection error to its innermost cause, without
// pgconn's "failed to connect to `user=... database=...`" preamble.
func connCause(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		op := oe.Op
		if op == "" {
			op = "connect"
		}
		return op + ": " + oe.Err.Error()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "failed to connect") {
		msg = msg[i+2:]
	}
	return msg
}

// classifyPlanning classifies an error of the EXPLAIN of the caller's SQL,
// as classify does, but a PostgreSQL error of kind sql_error keeps only its
// message, cut to what holds no data, and its SQLSTATE (sqlErrorMessage):
// the query never ran, yet planning evaluates stable functions of
// constants. Names, keywords and symbols that sql has are kept in the
// message (`column "nme" does not exist`).
func (s *Source) classifyPlanning(ctx context.Context, err error, sql string) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) {
		return s.classify(ctx, err)
	}
	classified := s.classifyPg(ctx, pgErr)
	if KindOf(classified) != KindSQL {
		return classified
	}
	return s.errorf(KindSQL, "%s", sqlErrorMessage(pgErr, sql, true))
}

// quotedValue is a run that PostgreSQL's messages put in double quotes: a
// name, or a value (`invalid input syntax for type integer: "4111..."`,
// `value "4111..." is out of range for type integer`), which may be data.
var quotedValue = regexp.MustCompile(`"[^"]*"`)

// hexBytes are the bytes that an encoding error shows ("invalid byte
// sequence for encoding "UTF8": 0xe9 0x74").
var hexBytes = regexp.MustCompile(`0x[0-9a-fA-F]{2}(?:\s+0x[0-9a-fA-F]{2})*`)

// sqlErrorMessage is the message of a PostgreSQL error with no value that
// may be data: a trailing `: "value"` is cut (`invalid input syntax for
// type integer`), any other quoted run is kept only when it is a name,
// keyword or symbol that sql has, or such names joined by dots (`column
// "nme" does not exist`, `syntax error at or near "FORM"`), and replaced
// by "…" otherwise (`value "…" is out of range for type integer`), and
// bytes shown in hex are dropped. The hint, which PostgreSQL builds from
// the catalog, is kept.
//
// An error raised while planning (the query never ran, but planning
// evaluates stable functions of constants) keeps only that message, its
// SQLSTATE and the SQLSTATE's class: no detail. Any other error keeps its
// detail, cut the same way (`Token "…" is invalid.`).
func sqlErrorMessage(pgErr *pgconn.PgError, sql string, planning bool) string {
	known := map[string]bool{}
	toks, _ := lex(sql)
	for _, t := range toks {
		if t.kind != tokString {
			known[strings.ToLower(t.text)] = true
		}
	}
	msg := stripValues(pgErr.Message, known)
	if planning {
		msg += " (SQLSTATE " + pgErr.Code
		if class := sqlstateClasses[pgErr.Code[:min(2, len(pgErr.Code))]]; class != "" {
			msg += ", " + class
		}
		msg += ")"
	} else if pgErr.Detail != "" {
		msg += " (" + stripValues(pgErr.Detail, known) + ")"
	}
	if pgErr.Hint != "" {
		msg += " Hint: " + pgErr.Hint
	}
	return msg
}

// stripValues applies sqlErrorMessage's cuts to one text.
func stripValues(text string, known map[string]bool) string {
	if i := strings.Index(text, `: "`); i >= 0 && strings.HasSuffix(strings.TrimSpace(text), `"`) {
		text = text[:i]
	}
	text = quotedValue.ReplaceAllStringFunc(text, func(q string) string {
		inner := q[1 : len(q)-1]
		if inner == "" {
			return q
		}
		for _, part := range strings.Split(inner, ".") {
			if !known[strings.ToLower(part)] {
				return `"…"`
			}
		}
		return q
	})
	return hexBytes.ReplaceAllString(text, "0x…")
}

// sqlstateClasses name the classes of SQLSTATE (PostgreSQL's Appendix A).
var sqlstateClasses = map[string]string{
	"01": "warning", "02": "no_data", "03": "sql_statement_not_yet_complete", "08": "connection_exception",
	"09": "triggered_action_exception", "0A": "feature_not_supported", "0B": "invalid_transaction_initiation",
	"0F": "locator_exception", "0L": "invalid_grantor", "0P": "invalid_role_specification",
	"0Z": "diagnostics_exception", "20": "case_not_found", "21": "cardinality_violation", "22": "data_exception",
	"23": "integrity_constraint_violation", "24": "invalid_cursor_state", "25": "invalid_transaction_state",
	"26": "invalid_sql_statement_name", "27": "triggered_data_change_violation",
	"28": "invalid_authorization_specification", "2B": "dependent_privilege_descriptors_still_exist",
	"2D": "invalid_transaction_termination", "2F": "sql_routine_exception", "34": "invalid_cursor_name",
	"38": "external_routine_exception", "39": "external_routine_invocation_exception", "3B": "savepoint_exception",
	"3D": "invalid_catalog_name", "3F": "invalid_schema_name", "40": "transaction_rollback",
	"42": "syntax_error_or_access_rule_violation", "44": "with_check_option_violation",
	"53": "insufficient_resources", "54": "program_limit_exceeded", "55": "object_not_in_prerequisite_state",
	"57": "operator_intervention", "58": "system_error", "72": "snapshot_too_old", "F0": "config_file_error",
	"HV": "fdw_error", "P0": "plpgsql_error", "XX": "internal_error",
}

// IsFault reports whether err is the source's fault rather than a verdict
// on the SQL: the database cannot be reached, refuses to serve an unsafe
// role, or the like. Sending such an error back to an LLM that wrote the
// SQL would change nothing. An unsafe, failing, slow or too expensive
// query is not a fault of the source.
func IsFault(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case KindUnsafeSQL, KindSQL, KindTimeout, KindTooExpensive:
		return false
	}
	return true
}
