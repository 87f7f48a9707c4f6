package pgsource

import (
	"strings"
)

// tokenKind classifies a lexical token of PostgreSQL SQL.
type tokenKind int

const (
	tokWord   tokenKind = iota // a keyword or unquoted identifier, lower-cased
	tokQIdent                  // a "quoted identifier", unquoted
	tokString                  // a string constant of any form, its text dropped
	tokNumber                  // a numeric constant or a $n parameter
	tokPunct                   // any other character, or :: as one token
)

type token struct {
	kind tokenKind
	text string
	// uescape marks a Unicode-escape form, U&"..." or U&'...', whose
	// text the lexer does not decode: a name written that way could be
	// any name.
	uescape bool
}

// lex splits SQL into tokens, dropping whitespace and comments (-- and
// nested /* */). It knows the quoting forms of PostgreSQL with
// standard_conforming_strings on: '...' with ” inside, E'...' with
// backslash escapes, $tag$...$tag$, and "..." identifiers. ok is false
// when a quote or a comment is not closed; the tokens up to there are
// returned.
//
// It is not a parser: the guard uses it only to find the first keyword,
// a second statement, the INTO keyword, and the names called or used as
// qualifiers in the caller's SQL, and the function calls in the
// expressions of a plan that PostgreSQL printed.
func lex(s string) (toks []token, ok bool) {
	i := 0
	n := len(s)
	for i < n {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < n && s[i+1] == '-':
			for i < n && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && s[i+1] == '*':
			depth := 0
			for {
				if i+1 >= n {
					return toks, false
				}
				if s[i] == '/' && s[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if s[i] == '*' && s[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				i++
			}
		case c == '\'':
			end, closed := skipQuoted(s, i+1, '\'', false)
			if !closed {
				return toks, false
			}
			toks = append(toks, token{kind: tokString})
			i = end
		case (c == 'u' || c == 'U') && i+2 < n && s[i+1] == '&' && (s[i+2] == '\'' || s[i+2] == '"'):
			// U&'...' and U&"..." (no space may separate U, & and the
			// quote): doubled quotes as in the plain forms, the escapes
			// left undecoded.
			q := s[i+2]
			end, closed := skipQuoted(s, i+3, q, false)
			if !closed {
				return toks, false
			}
			if q == '"' {
				toks = append(toks, token{kind: tokQIdent, text: strings.ReplaceAll(s[i+3:end-1], `""`, `"`), uescape: true})
			} else {
				toks = append(toks, token{kind: tokString, uescape: true})
			}
			i = end
		case (c == 'e' || c == 'E') && i+1 < n && s[i+1] == '\'':
			end, closed := skipQuoted(s, i+2, '\'', true)
			if !closed {
				return toks, false
			}
			toks = append(toks, token{kind: tokString})
			i = end
		case c == '"':
			end, closed := skipQuoted(s, i+1, '"', false)
			if !closed {
				return toks, false
			}
			toks = append(toks, token{kind: tokQIdent, text: strings.ReplaceAll(s[i+1:end-1], `""`, `"`)})
			i = end
		case c == '$' && i+1 < n && isDigit(s[i+1]):
			j := i + 1
			for j < n && isDigit(s[j]) {
				j++
			}
			toks = append(toks, token{kind: tokNumber, text: s[i:j]})
			i = j
		case c == '$':
			// A dollar quote: $$ or $tag$, the tag an identifier.
			j := i + 1
			for j < n && isIdentChar(s[j]) && s[j] != '$' {
				j++
			}
			if j < n && s[j] == '$' && (j == i+1 || !isDigit(s[i+1])) {
				tag := s[i : j+1]
				end := strings.Index(s[j+1:], tag)
				if end < 0 {
					return toks, false
				}
				toks = append(toks, token{kind: tokString})
				i = j + 1 + end + len(tag)
				continue
			}
			toks = append(toks, token{kind: tokPunct, text: "$"})
			i++
		case isIdentStart(c):
			j := i
			for j < n && isIdentChar(s[j]) {
				j++
			}
			// B'...', X'...', N'...' are string constants whose prefix
			// lexes as a word; the quote that follows is one. Like the
			// server, only ASCII letters are folded to lower case.
			toks = append(toks, token{kind: tokWord, text: foldASCII(s[i:j])})
			i = j
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(s[i+1])):
			j := i
			for j < n && (isDigit(s[j]) || s[j] == '.' || s[j] == '_' ||
				((s[j] == 'e' || s[j] == 'E') && j+1 < n && (isDigit(s[j+1]) || s[j+1] == '+' || s[j+1] == '-')) ||
				((s[j] == '+' || s[j] == '-') && j > i && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			toks = append(toks, token{kind: tokNumber, text: s[i:j]})
			i = j
		case c == ':' && i+1 < n && s[i+1] == ':':
			toks = append(toks, token{kind: tokPunct, text: "::"})
			i += 2
		default:
			toks = append(toks, token{kind: tokPunct, text: s[i : i+1]})
			i++
		}
	}
	return toks, true
}

// skipQuoted returns the index just past the quote that closes a quoted
// run starting at i (just past the opening quote). A doubled quote is part
// of the text; with backslashes, a backslash escapes the next byte.
func skipQuoted(s string, i int, q byte, backslashes bool) (int, bool) {
	for i < len(s) {
		switch {
		case backslashes && s[i] == '\\':
			i += 2
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case s[i] == q:
			return i + 1, true
		default:
			i++
		}
	}
	return len(s), false
}

// foldASCII lower-cases the ASCII letters of an unquoted identifier, as
// PostgreSQL does (downcase_identifier, for a multi-byte encoding).
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '$' }

// isName reports a token that names something: a word or a quoted
// identifier.
func (t token) isName() bool { return t.kind == tokWord || t.kind == tokQIdent }

// funcCall is a function call found in an expression: name(, or
// schema.name(.
type funcCall struct {
	schema, name string
	// depth is the parenthesis depth at which the call starts: 0 for a
	// call at the top level of the expression.
	depth int
}

func (f funcCall) String() string {
	if f.schema != "" {
		return f.schema + "." + f.name
	}
	return f.name
}

// funcCalls finds every name followed by "(" in toks. Keywords that take
// parentheses (IN, EXISTS, ANY, CAST, ...) are found too; callers compare
// the names against their lists, where no keyword appears.
func funcCalls(toks []token) []funcCall {
	var out []funcCall
	depth := 0
	for i, t := range toks {
		if t.kind == tokPunct {
			switch t.text {
			case "(":
				depth++
			case ")":
				depth--
			}
			continue
		}
		if !t.isName() || i+1 >= len(toks) || toks[i+1].kind != tokPunct || toks[i+1].text != "(" {
			continue
		}
		fc := funcCall{name: t.text, depth: depth}
		if i >= 2 && toks[i-1].kind == tokPunct && toks[i-1].text == "." && toks[i-2].isName() {
			fc.schema = toks[i-2].text
		}
		out = append(out, fc)
	}
	return out
}
