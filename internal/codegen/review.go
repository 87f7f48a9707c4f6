package codegen

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Language is a supported code-generation target. The review rules differ
// completely per language, so callers must pass the language the code was
// generated for, not the one they hope it is.
type Language string

const (
	// Python is pandas-style Python, executed in the analysis sandbox.
	Python Language = "python"
	// SQL is a single DuckDB query.
	SQL Language = "sql"
)

// MaxCodeLength is the longest code, in characters (Unicode code points),
// that ReviewCode and ReviewSQL accept; longer code is rejected. The limit
// comes from the original system: generated analysis code is short, and
// very long output usually means the model rambled or is hiding something.
const MaxCodeLength = 5000

// maxLineLength is the line length, in characters, above which Python code
// draws a warning.
const maxLineLength = 200

// Review is the verdict of the static safety review. Unsafe code is still
// returned to the user, together with the verdict, so every field is meant
// to be shown or logged.
type Review struct {
	// IsValid reports whether the code passed every rule. Only valid code
	// may be executed.
	IsValid bool
	// ErrorMessage is "" when IsValid is true. Otherwise it is a
	// human-readable reason naming the rule that failed and, where possible,
	// the line, e.g. `forbidden call "os.system" on line 3`. Only the first
	// problem found is reported.
	ErrorMessage string
	// Warnings holds non-fatal observations (e.g. no "result" variable). It
	// is never nil, so it encodes as [] rather than null in JSON.
	Warnings []string
}

// ReviewCode runs the static safety review of code written in lang.
//
// Python is parsed once with tree-sitter, and that one tree serves both
// the syntax check (a syntax error is reported as "syntax error: line 3,
// column 5: ...") and the rules, which are an allow-list: imports only
// from a documented list of pure-computation modules, and no dunder
// names, no eval/exec/open/getattr and the like even as values, no
// private or frame attributes, no pandas or numpy file I/O. See
// python_rules.go for the lists and why each entry is there. Comments
// and string literals neither trigger nor hide rules, but f-string
// fields are code and are checked. String literals are read by their
// value (escapes decoded, implicitly concatenated parts joined): they may
// not hold a dunder name, and a string passed to a pandas method that
// calls the method it names (agg, apply, transform, pivot_table...) may
// not name a method refused as an attribute, nor be built at run time
// ("to_" + kind).
//
// The review cannot prove code safe: a method name held in a variable
// and passed to pandas (name = "to_pickle"; df.agg(name, path)) is not
// seen, for example. Execution must still happen in a sandbox. An
// unknown language is reported as invalid.
//
// SQL is reviewed by DuckDB's own parser, which runs in a worker process
// that ReviewCode cannot reach: use ReviewSQL. ReviewCode(code, SQL) never
// reports SQL valid, so that no caller mistakes its bounds for a review.
func ReviewCode(code string, lang Language) Review {
	var msg string
	var warnings []string
	switch lang {
	case Python:
		msg, warnings = reviewPython(code)
	case SQL:
		if msg = sqlBounds(code); msg == "" {
			msg = "SQL is reviewed by DuckDB's parser: use ReviewSQL with a dataset store"
		}
	default:
		msg = fmt.Sprintf("unsupported language %q", string(lang))
	}
	if warnings == nil {
		warnings = []string{}
	}
	return Review{IsValid: msg == "", ErrorMessage: msg, Warnings: warnings}
}

// bounds returns why code, called what in the message ("code", "SQL"), is
// empty or longer than MaxCodeLength characters, or "".
func bounds(code, what string) string {
	if strings.TrimSpace(code) == "" {
		return what + " is empty"
	}
	if n := utf8.RuneCountInString(code); n > MaxCodeLength {
		return fmt.Sprintf("%s is too long: %d characters (limit %d)", what, n, MaxCodeLength)
	}
	return ""
}
