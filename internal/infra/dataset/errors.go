package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/nexus/nexus/internal/infra/redact"
)

// ErrNotFound is wrapped by every error about a dataset id that does not
// exist (or no longer exists: Delete makes it unknown at once).
var ErrNotFound = errors.New("dataset not found")

// ErrClosed is returned by calls on a Store after Close.
var ErrClosed = errors.New("dataset store closed")

// Kind classifies an *Error so that the API layer can map it to an HTTP
// status in one table without parsing messages.
type Kind string

// The kinds of *Error. The suggested HTTP status is the API layer's choice;
// it is noted here only to say what each kind means to a client.
const (
	// KindInvalid: the upload or inline content cannot be read as a table
	// (empty, unparseable, unknown format, no columns). Suggests 422.
	KindInvalid Kind = "invalid"
	// KindTooLarge: the upload or inline content exceeds
	// Config.MaxUploadBytes. Suggests 413.
	KindTooLarge Kind = "too_large"
	// KindUnsafeSQL: the SQL is not a single read-only SELECT and was refused
	// without being run.
	KindUnsafeSQL Kind = "unsafe_sql"
	// KindSQL: the SQL is a SELECT but DuckDB could not parse, bind or run
	// it (unknown column, type error, a sandbox refusal such as file
	// access). The message is meant to be fed back to the LLM.
	KindSQL Kind = "sql"
	// KindTimeout: the statement ran longer than Config.StatementTimeout and
	// was interrupted.
	KindTimeout Kind = "timeout"
	// KindQueryTooExpensive: a query (or SQL check) was stopped by killing
	// its worker: past the statement timeout without answering the
	// interrupt, past the worker's memory ceiling, or by crashing it. The
	// message names the limit. Suggests 422.
	KindQueryTooExpensive Kind = "query_too_expensive"
	// KindUploadTooExpensive: the same for loading an upload or inline
	// data. Suggests 422.
	KindUploadTooExpensive Kind = "upload_too_expensive"
	// KindTooComplex: the input passes a bound checked before DuckDB reads
	// it (JSON nesting, column count, a workbook's inflated size or cells).
	// The message names the limit. Suggests 422.
	KindTooComplex Kind = "input_too_complex"
	// KindBusy: too many inline loads are in flight. Suggests 503 with
	// Retry-After.
	KindBusy Kind = "busy"
)

// Error is the package's user-facing error. Message is safe to show to a
// user and to send to an LLM: absolute paths (the data directory, temp
// directories, any other absolute path) are replaced by "<path>".
type Error struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return string(e.Kind) + ": " + e.Message }

// errorf builds an *Error with a scrubbed message.
func (s *Store) errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: strings.TrimSpace(s.scrub.scrub(fmt.Sprintf(format, args...)))}
}

// scrubber removes server paths from text that may reach a user or an LLM,
// and applies redact.Text, the URL and token policy every message Nexus
// shows follows. Paths are this package's own concern: they are not secrets,
// but they tell a user or an LLM how the server is laid out.
type scrubber struct {
	// prefixes are known directories, longest first, replaced even where the
	// generic pattern would not match (relative paths, odd characters).
	prefixes []string
}

// absPath matches an absolute POSIX path with at least two segments (so that
// "a / b" or "x/2" in echoed SQL survive) or a Windows drive path, starting
// at a boundary.
var absPath = regexp.MustCompile(`(^|[\s'"(=,:\[{<])((?:/[^\s'"/()<>,;]+){2,}/?|/(?:tmp|etc|root|home|var|usr|proc|sys|dev|opt|srv|mnt|run)\b/?|[A-Za-z]:\\[^\s'"]*)`)

// pathTail extends a replaced directory over the rest of the path.
var pathTail = regexp.MustCompile(`<path>[^\s'"()<>,;]*`)

func newScrubber(dirs ...string) scrubber {
	var all []string
	for _, d := range append(dirs, os.TempDir()) {
		all = append(all, dirSpellings(d)...)
	}
	return scrubber{prefixes: longestFirst(all)}
}

// dirSpellings returns the ways a directory may appear in a message: as
// given, absolute, and with symlinks resolved.
func dirSpellings(d string) []string {
	if d == "" {
		return nil
	}
	out := []string{d}
	if abs, err := filepath.Abs(d); err == nil {
		out = append(out, abs)
	}
	if real, err := filepath.EvalSymlinks(d); err == nil {
		out = append(out, real)
	}
	return longestFirst(out)
}

// longestFirst trims separators, drops duplicates and one-character
// entries ("/"), and sorts longest first so that /data/x is replaced
// before /data.
func longestFirst(ps []string) []string {
	var out []string
	for _, p := range ps {
		p = strings.TrimRight(p, `/\`)
		if len(p) >= 2 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

func (s scrubber) scrub(msg string) string {
	// URLs first: their paths are not server paths, and once reduced to
	// scheme://host the path patterns below cannot match inside them.
	msg = redact.Text(msg)
	for _, p := range s.prefixes {
		msg = strings.ReplaceAll(msg, p, "<path>")
	}
	msg = pathTail.ReplaceAllString(msg, "<path>")
	return absPath.ReplaceAllString(msg, "${1}<path>")
}

// duckMessage extracts DuckDB's own message from a driver error.
func duckMessage(err error) string {
	var de *duckdb.Error
	if errors.As(err, &de) {
		return de.Msg
	}
	return err.Error()
}

// ingestMessage condenses a DuckDB reader error for an upload: the CSV
// reader appends a dump of its options and "Possible Solution" hints about
// its own parameters, and the LINE echo shows our SQL, not the user's;
// none of that helps the person who uploaded the file.
func ingestMessage(err error) string {
	msg := duckMessage(err)
	for _, cut := range []string{"\n  file = ", "\nPossible Solution", "\n\nLINE ", "\nLINE "} {
		if i := strings.Index(msg, cut); i >= 0 {
			msg = msg[:i]
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}
