package codegen

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// sqlNotReadOnly prefixes the messages of the single-read-only-query rule.
const sqlNotReadOnly = "SQL must be a single read-only query: "

var (
	// sqlAllowedFirst are the keywords a query may start with.
	sqlAllowedFirst = []string{"SELECT", "WITH", "VALUES", "FROM", "SUMMARIZE", "DESCRIBE", "SHOW", "EXPLAIN"}
	// sqlAllowedInParens may follow the opening parentheses of a
	// parenthesized query.
	sqlAllowedInParens = []string{"SELECT", "WITH", "VALUES", "FROM"}
	// sqlForbiddenKeywords write data, change settings or reach outside
	// the database. They are rejected anywhere as bare words.
	sqlForbiddenKeywords = map[string]bool{
		"INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true,
		"DROP": true, "CREATE": true, "ALTER": true, "TRUNCATE": true,
		"ATTACH": true, "DETACH": true, "COPY": true, "INSTALL": true,
		"LOAD": true, "PRAGMA": true, "SET": true, "RESET": true,
		"CALL": true, "EXPORT": true, "IMPORT": true, "GRANT": true,
		"REVOKE": true, "VACUUM": true, "CHECKPOINT": true, "USE": true,
		"BEGIN": true, "COMMIT": true, "ROLLBACK": true,
	}
	// sqlTableKeywords are followed by a table reference.
	sqlTableKeywords = map[string]bool{
		"FROM": true, "JOIN": true, "PIVOT": true, "UNPIVOT": true,
		"DESCRIBE": true, "SUMMARIZE": true, "SHOW": true, "TABLE": true,
	}
	// sqlFromEnders end the table list of a FROM clause.
	sqlFromEnders = map[string]bool{
		"WHERE": true, "GROUP": true, "HAVING": true, "ORDER": true,
		"LIMIT": true, "OFFSET": true, "QUALIFY": true, "WINDOW": true,
		"UNION": true, "INTERSECT": true, "EXCEPT": true, "SELECT": true,
		"RETURNING": true, "FETCH": true,
	}
	// sqlFileFunctions read files or remote data (matched case-insensitively).
	sqlFileFunctions = map[string]bool{
		"glob": true, "sniff_csv": true, "parquet_scan": true,
		"read_csv": true, "read_csv_auto": true, "read_parquet": true,
		"read_json": true, "read_json_auto": true, "read_ndjson": true,
		"read_text": true, "read_blob": true, "read_xlsx": true,
		"st_read": true,
	}
	// sqlFileFunctionPrefixes catch the rest of the family (read_json_objects,
	// parquet_metadata, st_read_meta, iceberg_scan, sqlite_scan, ...).
	sqlFileFunctionPrefixes = []string{"read_", "parquet_", "st_read", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_"}
	// sqlDynamicFunctions run SQL given as a string, which the lexer cannot
	// inspect.
	sqlDynamicFunctions = map[string]bool{"query": true, "query_table": true}
)

// reviewSQL returns the first rule violation in code, or "".
func reviewSQL(code string) string {
	if strings.TrimSpace(code) == "" {
		return "SQL is empty"
	}
	if n := utf8.RuneCountInString(code); n > MaxCodeLength {
		return fmt.Sprintf("SQL is too long: %d characters (limit %d)", n, MaxCodeLength)
	}
	toks, err := lexSQL(code)
	if err != "" {
		return "SQL could not be checked: " + err
	}
	var stmts [][]sqlToken
	var cur []sqlToken
	for _, t := range toks {
		if t.kind == sqlPunct && t.text == ";" {
			if len(cur) > 0 {
				stmts = append(stmts, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		stmts = append(stmts, cur)
	}
	switch len(stmts) {
	case 0:
		return "SQL is empty: it contains only comments"
	case 1:
		return checkSQLStatement(stmts[0])
	default:
		return fmt.Sprintf("%sfound %d statements", sqlNotReadOnly, len(stmts))
	}
}

// checkSQLStatement checks one statement (without its semicolon).
func checkSQLStatement(st []sqlToken) string {
	k := 0
	for k < len(st) && isSQLPunct(st[k], "(") {
		k++
	}
	if k == len(st) {
		return sqlNotReadOnly + "no query found"
	}
	lead := st[k]
	leadWord := ""
	if lead.kind == sqlWord {
		leadWord = strings.ToUpper(lead.text)
	}
	if sqlForbiddenKeywords[leadWord] {
		return fmt.Sprintf("%s%q is not allowed on line %d", sqlNotReadOnly, leadWord, lead.line)
	}
	allowed := sqlAllowedFirst
	if k > 0 {
		allowed = sqlAllowedInParens
	}
	if !containsString(allowed, leadWord) {
		return fmt.Sprintf("%sit must start with %s, not %q (line %d)",
			sqlNotReadOnly, strings.Join(allowed, ", "), shorten(lead.text), lead.line)
	}
	tablePos := sqlTablePositions(st)
	for i, t := range st {
		switch t.kind {
		case sqlWord:
			u := strings.ToUpper(t.text)
			if sqlForbiddenKeywords[u] {
				return fmt.Sprintf("%s%q is not allowed on line %d", sqlNotReadOnly, u, t.line)
			}
			if leadWord == "EXPLAIN" && (u == "ANALYZE" || u == "ANALYSE") {
				return fmt.Sprintf("%s%q is not allowed on line %d", sqlNotReadOnly, "EXPLAIN "+u, t.line)
			}
		case sqlString, sqlQuotedIdent:
			if !usedAsTable(st, i, tablePos) {
				break
			}
			if t.kind == sqlString {
				return fmt.Sprintf("SQL reads files: string literal %s used as a table on line %d is not allowed", shorten(t.text), t.line)
			}
			if strings.ContainsAny(t.text, `/\.:~`) {
				return fmt.Sprintf("SQL reads files: quoted table name %q on line %d looks like a file path", shorten(t.text), t.line)
			}
		}
		if (t.kind == sqlWord || t.kind == sqlQuotedIdent) && i+1 < len(st) && isSQLPunct(st[i+1], "(") {
			name := strings.ToLower(t.text)
			if isSQLFileFunction(name) {
				return fmt.Sprintf("SQL reads files: %q is not allowed on line %d", name, t.line)
			}
			if sqlDynamicFunctions[name] {
				return fmt.Sprintf("SQL runs dynamic SQL: %q is not allowed on line %d", name, t.line)
			}
		}
	}
	return ""
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// shorten truncates s for use in a message.
func shorten(s string) string {
	const max = 60
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max]) + "..."
}

func isSQLFileFunction(lower string) bool {
	if sqlFileFunctions[lower] || strings.Contains(lower, "_scan") {
		return true
	}
	for _, p := range sqlFileFunctionPrefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// sqlTablePositions marks the tokens after which a table reference
// follows: FROM, JOIN and similar keywords, and commas separating the
// tables of a FROM clause.
func sqlTablePositions(st []sqlToken) []bool {
	pos := make([]bool, len(st))
	depth := 0
	inFrom := map[int]bool{}
	for i, t := range st {
		switch {
		case isSQLPunct(t, "("):
			depth++
		case isSQLPunct(t, ")"):
			inFrom[depth] = false
			if depth > 0 {
				depth--
			}
		case isSQLPunct(t, ","):
			pos[i] = inFrom[depth]
		case t.kind == sqlWord:
			u := strings.ToUpper(t.text)
			if sqlTableKeywords[u] {
				pos[i] = true
			}
			if u == "FROM" || u == "JOIN" {
				inFrom[depth] = true
			} else if sqlFromEnders[u] {
				inFrom[depth] = false
			}
		}
	}
	return pos
}

// usedAsTable reports whether st[i] sits where a table reference goes,
// looking back over opening parentheses and schema qualifiers.
func usedAsTable(st []sqlToken, i int, tablePos []bool) bool {
	j := i - 1
	for j >= 0 {
		switch {
		case isSQLPunct(st[j], "("):
			j--
		case isSQLPunct(st[j], ".") && j > 0 && (st[j-1].kind == sqlWord || st[j-1].kind == sqlQuotedIdent):
			j -= 2
		default:
			return tablePos[j]
		}
	}
	return false
}

// sqlKind classifies SQL tokens.
type sqlKind uint8

const (
	sqlWord        sqlKind = iota + 1 // unquoted identifier or keyword
	sqlQuotedIdent                    // "identifier" (text is unescaped)
	sqlString                         // string literal (text is the raw literal)
	sqlNumber                         // numeric literal
	sqlParam                          // $1, $name, ?
	sqlPunct                          // any other single character
)

type sqlToken struct {
	kind sqlKind
	text string
	line int
}

func isSQLPunct(t sqlToken, p string) bool { return t.kind == sqlPunct && t.text == p }

// isSQLWordStart follows PostgreSQL/DuckDB: letters, underscore and any
// non-ASCII byte start an identifier; digits and $ may continue it.
func isSQLWordStart(c byte) bool {
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}

func isSQLWordChar(c byte) bool { return isSQLWordStart(c) || isDigit(c) || c == '$' }

// lexSQL tokenizes DuckDB SQL. Comments are dropped. It returns an error
// for unterminated literals or comments and for nested block comments,
// whose handling differs between SQL engines and could otherwise hide a
// statement from this check.
func lexSQL(src string) ([]sqlToken, string) {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	var toks []sqlToken
	pos, line := 0, 1
	// quoted scans a literal opened by q at pos ('' style doubling escapes
	// q; with backslash, \ escapes the next byte too).
	quoted := func(q byte, backslash bool, what string) (string, string) {
		start, startLine := pos, line
		pos++
		for {
			if pos >= len(src) {
				return "", fmt.Sprintf("unterminated %s starting on line %d", what, startLine)
			}
			c := src[pos]
			switch {
			case c == q && pos+1 < len(src) && src[pos+1] == q:
				pos += 2
			case c == q:
				pos++
				return src[start:pos], ""
			case c == '\\' && backslash:
				pos++
				if pos < len(src) {
					if src[pos] == '\n' {
						line++
					}
					pos++
				}
			default:
				if c == '\n' {
					line++
				}
				pos++
			}
		}
	}
	for pos < len(src) {
		c := src[pos]
		next := byte(0)
		if pos+1 < len(src) {
			next = src[pos+1]
		}
		switch {
		case c == '\n':
			line++
			pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			pos++
		case c == '-' && next == '-':
			// A line comment ends at \n or \r, whichever comes first.
			end := strings.IndexAny(src[pos:], "\n\r")
			if end < 0 {
				pos = len(src)
			} else {
				pos += end
			}
		case c == '/' && next == '*':
			startLine := line
			pos += 2
			for {
				if pos+1 >= len(src) {
					return nil, fmt.Sprintf("unterminated block comment starting on line %d", startLine)
				}
				if src[pos] == '*' && src[pos+1] == '/' {
					pos += 2
					break
				}
				if src[pos] == '/' && src[pos+1] == '*' {
					return nil, fmt.Sprintf("nested block comment on line %d is not allowed", line)
				}
				if src[pos] == '\n' {
					line++
				}
				pos++
			}
		case c == '\'':
			l := line
			text, err := quoted('\'', false, "string literal")
			if err != "" {
				return nil, err
			}
			toks = append(toks, sqlToken{kind: sqlString, text: text, line: l})
		case c == '"':
			l := line
			text, err := quoted('"', false, "quoted identifier")
			if err != "" {
				return nil, err
			}
			text = strings.ReplaceAll(text[1:len(text)-1], `""`, `"`)
			toks = append(toks, sqlToken{kind: sqlQuotedIdent, text: text, line: l})
		case c == '$' && isDigit(next):
			start := pos
			pos++
			for pos < len(src) && isDigit(src[pos]) {
				pos++
			}
			toks = append(toks, sqlToken{kind: sqlParam, text: src[start:pos], line: line})
		case c == '$':
			// $tag$ ... $tag$ (tag may be empty), else a $name parameter.
			j := pos + 1
			for j < len(src) && isSQLWordChar(src[j]) && src[j] != '$' {
				j++
			}
			if j < len(src) && src[j] == '$' {
				tag := src[pos : j+1]
				end := strings.Index(src[j+1:], tag)
				if end < 0 {
					return nil, fmt.Sprintf("unterminated dollar-quoted string starting on line %d", line)
				}
				stop := j + 1 + end + len(tag)
				text := src[pos:stop]
				toks = append(toks, sqlToken{kind: sqlString, text: text, line: line})
				line += strings.Count(text, "\n")
				pos = stop
			} else {
				toks = append(toks, sqlToken{kind: sqlParam, text: src[pos:j], line: line})
				pos = j
			}
		case isSQLWordStart(c):
			start := pos
			for pos < len(src) && isSQLWordChar(src[pos]) {
				pos++
			}
			word := src[start:pos]
			lw := strings.ToLower(word)
			// Prefixed literals: E'..' (backslash escapes), X'..', B'..',
			// N'..', U&'..', U&"..". The prefix belongs to the literal.
			if pos < len(src) && src[pos] == '\'' && (lw == "e" || lw == "x" || lw == "b" || lw == "n") {
				l := line
				text, err := quoted('\'', lw == "e", "string literal")
				if err != "" {
					return nil, err
				}
				toks = append(toks, sqlToken{kind: sqlString, text: word + text, line: l})
				continue
			}
			if lw == "u" && pos+1 < len(src) && src[pos] == '&' && (src[pos+1] == '\'' || src[pos+1] == '"') {
				pos++
				l := line
				if src[pos] == '\'' {
					text, err := quoted('\'', false, "string literal")
					if err != "" {
						return nil, err
					}
					toks = append(toks, sqlToken{kind: sqlString, text: word + "&" + text, line: l})
				} else {
					text, err := quoted('"', false, "quoted identifier")
					if err != "" {
						return nil, err
					}
					text = strings.ReplaceAll(text[1:len(text)-1], `""`, `"`)
					toks = append(toks, sqlToken{kind: sqlQuotedIdent, text: text, line: l})
				}
				continue
			}
			toks = append(toks, sqlToken{kind: sqlWord, text: word, line: line})
		case isDigit(c) || (c == '.' && isDigit(next)):
			// Digits only, so "1DROP" lexes as 1 followed by DROP.
			start := pos
			for pos < len(src) && (isDigit(src[pos]) || src[pos] == '_') {
				pos++
			}
			if pos < len(src) && src[pos] == '.' {
				pos++
				for pos < len(src) && (isDigit(src[pos]) || src[pos] == '_') {
					pos++
				}
			}
			if pos < len(src) && (src[pos] == 'e' || src[pos] == 'E') {
				k := pos + 1
				if k < len(src) && (src[k] == '+' || src[k] == '-') {
					k++
				}
				if k < len(src) && isDigit(src[k]) {
					pos = k
					for pos < len(src) && isDigit(src[pos]) {
						pos++
					}
				}
			}
			toks = append(toks, sqlToken{kind: sqlNumber, text: src[start:pos], line: line})
		case c == '?':
			toks = append(toks, sqlToken{kind: sqlParam, text: "?", line: line})
			pos++
		default:
			toks = append(toks, sqlToken{kind: sqlPunct, text: src[pos : pos+1], line: line})
			pos++
		}
	}
	return toks, ""
}
