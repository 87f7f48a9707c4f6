package codegen

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// reviewPython returns the first rule violation in code ("" if none) and the
// warnings.
func reviewPython(code string) (string, []string) {
	if strings.TrimSpace(code) == "" {
		return "code is empty", nil
	}
	if n := utf8.RuneCountInString(code); n > MaxCodeLength {
		return fmt.Sprintf("code is too long: %d characters (limit %d)", n, MaxCodeLength), nil
	}
	// Python reads "\r\n" and a lone "\r" as line breaks; so must we, or a
	// "# comment\reval(...)" would hide code inside a comment.
	src := strings.TrimPrefix(code, "\ufeff")
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	if msg := checkCodingCookie(src); msg != "" {
		return msg, nil
	}
	lines, toks, lexErr := lexPython(src)
	if lexErr != "" {
		return lexErr, nil
	}
	if len(lines) == 0 {
		return "code is empty: it contains only comments", nil
	}
	warnings := pythonWarnings(src, toks)
	if msg := checkPythonNames(toks); msg != "" {
		return msg, warnings
	}
	if msg := checkInfiniteLoops(lines, toks); msg != "" {
		return msg, warnings
	}
	return "", warnings
}

// codingCookie is Python's source-encoding declaration pattern (PEP 263).
var codingCookie = regexp.MustCompile(`^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`)

// checkCodingCookie rejects encoding declarations other than UTF-8/ASCII: a
// declaration such as "utf-7" makes Python decode the bytes differently
// from how we lex them, which can turn a comment into code.
func checkCodingCookie(src string) string {
	lines := strings.SplitN(src, "\n", 3)
	for i := 0; i < 2 && i < len(lines); i++ {
		m := codingCookie.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		enc := strings.ReplaceAll(strings.ToLower(m[1]), "_", "-")
		if enc == "utf-8" || enc == "utf8" || strings.HasPrefix(enc, "utf-8-") || enc == "ascii" || enc == "us-ascii" {
			continue
		}
		return fmt.Sprintf("source encoding declaration %q on line %d is not allowed (only UTF-8)", m[1], i+1)
	}
	return ""
}

// pyKind classifies Python tokens.
type pyKind uint8

const (
	pyName    pyKind = iota + 1 // identifier or keyword
	pyNumber                    // numeric literal
	pyString                    // string literal (never checked against rules)
	pyOp                        // operator or delimiter
	pyNewline                   // end of a logical line
)

// pyToken is one Python token. String contents and comments are never
// turned into tokens, except the code inside f-string replacement fields,
// which Python executes.
type pyToken struct {
	kind pyKind
	text string
	line int
}

// pyLine is a logical line: toks[start:end] (without its pyNewline), with
// the indentation width of its first physical line.
type pyLine struct {
	indent     int
	start, end int
}

// pyLexer is a small Python tokenizer. It is deliberately conservative:
// where it is unsure whether text is code it treats it as code, and it
// reports an unterminated string instead of guessing.
type pyLexer struct {
	src  string
	pos  int
	line int
	toks []pyToken
	err  string
}

// lexPython splits src into tokens and logical lines. The returned string
// is a lexing error ("" on success).
func lexPython(src string) ([]pyLine, []pyToken, string) {
	lx := &pyLexer{src: src, line: 1}
	var lines []pyLine
	depth, indent, start := 0, 0, 0
	atLineStart := true
	endLine := func() {
		if len(lx.toks) > start {
			lines = append(lines, pyLine{indent: indent, start: start, end: len(lx.toks)})
			lx.toks = append(lx.toks, pyToken{kind: pyNewline, line: lx.toks[len(lx.toks)-1].line})
		}
		start = len(lx.toks)
	}
	for lx.err == "" && lx.pos < len(src) {
		if atLineStart {
			col := 0
		measure:
			for ; lx.pos < len(src); lx.pos++ {
				switch src[lx.pos] {
				case ' ':
					col++
				case '\t':
					col = (col/8 + 1) * 8
				case '\f':
					col = 0
				default:
					break measure
				}
			}
			if lx.pos >= len(src) {
				break
			}
			switch src[lx.pos] {
			case '\n': // blank line
				lx.pos++
				lx.line++
				continue
			case '#': // comment-only line
				lx.skipComment()
				continue
			}
			atLineStart, indent, start = false, col, len(lx.toks)
			continue
		}
		switch c := src[lx.pos]; {
		case c == '\n':
			lx.pos++
			lx.line++
			if depth == 0 {
				endLine()
				atLineStart = true
			}
		case c == ' ' || c == '\t' || c == '\f':
			lx.pos++
		case c == '\\' && lx.pos+1 < len(src) && src[lx.pos+1] == '\n':
			lx.pos += 2
			lx.line++
		case c == '#':
			lx.skipComment()
		default:
			lx.lexToken(&depth)
		}
	}
	if lx.err != "" {
		return nil, nil, lx.err
	}
	endLine()
	return lines, lx.toks, ""
}

func (lx *pyLexer) fail(format string, args ...any) {
	if lx.err == "" {
		lx.err = fmt.Sprintf(format, args...)
	}
}

func (lx *pyLexer) emit(kind pyKind, text string, line int) {
	lx.toks = append(lx.toks, pyToken{kind: kind, text: text, line: line})
}

// skipComment advances to the newline ending a # comment.
func (lx *pyLexer) skipComment() {
	if i := strings.IndexByte(lx.src[lx.pos:], '\n'); i >= 0 {
		lx.pos += i
	} else {
		lx.pos = len(lx.src)
	}
}

// lexToken lexes one name, number, string or operator at lx.pos, keeping
// *depth (bracket nesting) up to date.
func (lx *pyLexer) lexToken(depth *int) {
	src := lx.src
	c := src[lx.pos]
	switch {
	case c == '\'' || c == '"':
		lx.lexString("")
	case isPyNameStart(c):
		start := lx.pos
		for lx.pos < len(src) && (isPyNameStart(src[lx.pos]) || isDigit(src[lx.pos])) {
			lx.pos++
		}
		word := src[start:lx.pos]
		if lx.pos < len(src) && (src[lx.pos] == '\'' || src[lx.pos] == '"') && isPyStringPrefix(word) {
			lx.lexString(word)
			return
		}
		lx.emit(pyName, word, lx.line)
	case isDigit(c) || (c == '.' && lx.pos+1 < len(src) && isDigit(src[lx.pos+1])):
		lx.lexNumber()
	default:
		op := lx.lexOp()
		switch op {
		case "(", "[", "{":
			*depth++
		case ")", "]", "}":
			if *depth > 0 {
				*depth--
			}
		}
	}
}

// isPyNameStart reports whether c can start a name. Every non-ASCII byte
// counts, so that non-ASCII identifiers surface as names and get rejected.
func isPyNameStart(c byte) bool {
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexDigit(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// isPyStringPrefix reports whether word is a string prefix such as r, b,
// f, rb or t (Python 3.14 template strings).
func isPyStringPrefix(word string) bool {
	switch strings.ToLower(word) {
	case "r", "u", "b", "f", "t", "br", "rb", "fr", "rf", "tr", "rt":
		return true
	}
	return false
}

// lexNumber lexes a numeric literal. It stops at the first character that
// cannot continue the literal, so "1eval" lexes as 1 followed by eval.
func (lx *pyLexer) lexNumber() {
	src, start := lx.src, lx.pos
	digits := func() {
		for lx.pos < len(src) && (isDigit(src[lx.pos]) || src[lx.pos] == '_') {
			lx.pos++
		}
	}
	if src[lx.pos] == '0' && lx.pos+1 < len(src) && strings.IndexByte("xXoObB", src[lx.pos+1]) >= 0 {
		lx.pos += 2
		for lx.pos < len(src) && (isHexDigit(src[lx.pos]) || src[lx.pos] == '_') {
			lx.pos++
		}
	} else {
		digits()
		if lx.pos < len(src) && src[lx.pos] == '.' {
			lx.pos++
			digits()
		}
		if lx.pos < len(src) && (src[lx.pos] == 'e' || src[lx.pos] == 'E') {
			k := lx.pos + 1
			if k < len(src) && (src[k] == '+' || src[k] == '-') {
				k++
			}
			if k < len(src) && isDigit(src[k]) {
				lx.pos = k
				digits()
			}
		}
		if lx.pos < len(src) && (src[lx.pos] == 'j' || src[lx.pos] == 'J') {
			lx.pos++
		}
	}
	lx.emit(pyNumber, src[start:lx.pos], lx.line)
}

var (
	pyOps3 = []string{"**=", "//=", ">>=", "<<=", "..."}
	pyOps2 = []string{"**", "//", ">>", "<<", "<=", ">=", "==", "!=", "->", ":=",
		"+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@="}
)

// lexOp lexes an operator or delimiter and returns it.
func (lx *pyLexer) lexOp() string {
	rest := lx.src[lx.pos:]
	op := rest[:1]
	for _, cands := range [][]string{pyOps3, pyOps2} {
		for _, c := range cands {
			if strings.HasPrefix(rest, c) {
				op = c
				break
			}
		}
		if op != rest[:1] {
			break
		}
	}
	lx.pos += len(op)
	lx.emit(pyOp, op, lx.line)
	return op
}

// lexString lexes a string literal whose opening quote is at lx.pos. Only a
// pyString token is emitted for the literal itself, but the replacement
// fields of f-strings and t-strings are lexed as code (PEP 701 rules, which
// accept everything older Pythons accept).
func (lx *pyLexer) lexString(prefix string) {
	src := lx.src
	start, startLine := lx.pos, lx.line
	q := src[lx.pos]
	closing := string(q)
	if strings.HasPrefix(src[lx.pos:], strings.Repeat(closing, 3)) {
		closing = strings.Repeat(closing, 3)
	}
	triple := len(closing) == 3
	lx.pos += len(closing)
	isF := strings.ContainsAny(strings.ToLower(prefix), "ft")
	for lx.err == "" {
		if lx.pos >= len(src) {
			lx.fail("unterminated string literal starting on line %d", startLine)
			return
		}
		switch c := src[lx.pos]; {
		case c == '\\':
			lx.pos++
			// A backslash does not escape a brace in an f-string:
			// f"\{x}" still evaluates x.
			if lx.pos < len(src) && !(isF && (src[lx.pos] == '{' || src[lx.pos] == '}')) {
				if src[lx.pos] == '\n' {
					lx.line++
				}
				lx.pos++
			}
		case c == '\n':
			if !triple {
				lx.fail("unterminated string literal starting on line %d", startLine)
				return
			}
			lx.line++
			lx.pos++
		case strings.HasPrefix(src[lx.pos:], closing):
			lx.pos += len(closing)
			lx.emit(pyString, prefix+src[start:lx.pos], startLine)
			return
		case isF && c == '{':
			if strings.HasPrefix(src[lx.pos:], "{{") {
				lx.pos += 2
				continue
			}
			lx.pos++
			lx.lexField(closing)
		default:
			lx.pos++
		}
	}
}

// lexField lexes the code of an f-string replacement field, just after its
// "{", up to and including the closing "}". closing is the enclosing
// string's closing quote.
func (lx *pyLexer) lexField(closing string) {
	src := lx.src
	startLine := lx.line
	depth := 0
	for lx.err == "" {
		if lx.pos >= len(src) {
			lx.fail("unterminated f-string replacement field starting on line %d", startLine)
			return
		}
		switch c := src[lx.pos]; {
		case c == '}' && depth == 0:
			lx.pos++
			return
		case c == ':' && depth == 0: // format spec
			lx.pos++
			lx.lexFormatSpec(closing, startLine)
			return
		case c == '\n':
			lx.line++
			lx.pos++
		case c == ' ' || c == '\t' || c == '\f':
			lx.pos++
		case c == '\\' && lx.pos+1 < len(src) && src[lx.pos+1] == '\n':
			lx.pos += 2
			lx.line++
		case c == '#':
			lx.skipComment()
		default:
			lx.lexToken(&depth)
		}
	}
}

// lexFormatSpec lexes the format spec of a replacement field (literal text
// with nested fields) up to and including the field's closing "}".
func (lx *pyLexer) lexFormatSpec(closing string, startLine int) {
	src := lx.src
	for lx.err == "" {
		if lx.pos >= len(src) || strings.HasPrefix(src[lx.pos:], closing) ||
			(src[lx.pos] == '\n' && len(closing) == 1) {
			lx.fail("unterminated f-string replacement field starting on line %d", startLine)
			return
		}
		switch c := src[lx.pos]; c {
		case '}':
			lx.pos++
			return
		case '{':
			lx.pos++
			lx.lexField(closing)
		case '\n':
			lx.line++
			lx.pos++
		case '\\':
			lx.pos++
			if lx.pos < len(src) && src[lx.pos] != '{' && src[lx.pos] != '}' {
				if src[lx.pos] == '\n' {
					lx.line++
				}
				lx.pos++
			}
		default:
			lx.pos++
		}
	}
}

func isOp(t pyToken, op string) bool     { return t.kind == pyOp && t.text == op }
func isName(t pyToken, name string) bool { return t.kind == pyName && t.text == name }

// Deny-lists for Python names.
var (
	// pyForbiddenDunders give access to builtins, modules or frames and are
	// the usual building blocks of sandbox escapes.
	pyForbiddenDunders = map[string]bool{
		"__import__": true, "__builtins__": true, "__subclasses__": true,
		"__globals__": true, "__code__": true, "__mro__": true,
		"__bases__": true, "__base__": true, "__loader__": true,
		"__spec__": true,
	}
	// pyForbiddenNameParts are matched as substrings of every name
	// (case-insensitive), so read_pickle, cPickle, urllib3 or _socket are
	// caught as well.
	pyForbiddenNameParts = []string{
		"subprocess", "shutil", "pickle", "urllib", "ctypes", "importlib",
		"socket", "builtins",
	}
	// pyForbiddenModules may not be imported at all (top-level package).
	pyForbiddenModules = map[string]bool{
		"subprocess": true, "shutil": true, "pickle": true, "urllib": true,
		"socket": true, "ctypes": true, "importlib": true, "builtins": true,
		"requests": true, "httpx": true, "aiohttp": true, "http": true,
		"ftplib": true, "smtplib": true, "poplib": true, "imaplib": true,
		"telnetlib": true, "xmlrpc": true, "webbrowser": true,
		"multiprocessing": true, "pty": true, "posix": true, "nt": true,
		"marshal": true, "shelve": true, "dill": true, "joblib": true,
	}
	// pyProcessAttrs run programs. They are rejected as attributes of any
	// object, so aliasing the os module (o = os; o.system(...)) does not
	// help.
	pyProcessAttrs = map[string]bool{
		"system": true, "popen": true, "fork": true, "forkpty": true,
		"posix_spawn": true, "posix_spawnp": true,
		"execl": true, "execle": true, "execlp": true, "execlpe": true,
		"execv": true, "execve": true, "execvp": true, "execvpe": true,
		"spawnl": true, "spawnle": true, "spawnlp": true, "spawnlpe": true,
		"spawnv": true, "spawnve": true, "spawnvp": true, "spawnvpe": true,
	}
	// pyOSAttrs are rejected as attributes of the os module (or an alias):
	// files, processes and environment (which may hold secrets).
	pyOSAttrs = map[string]bool{
		"open": true, "fdopen": true, "remove": true, "unlink": true,
		"rmdir": true, "removedirs": true, "rename": true, "renames": true,
		"replace": true, "chmod": true, "chown": true, "lchown": true,
		"chroot": true, "kill": true, "killpg": true, "truncate": true,
		"link": true, "symlink": true, "mkdir": true, "makedirs": true,
		"mkfifo": true, "mknod": true, "write": true, "putenv": true,
		"unsetenv": true, "environ": true, "environb": true,
		"getenv": true, "getenvb": true,
	}
)

// checkPythonNames applies the deny-lists to the names in toks and returns
// the first violation.
func checkPythonNames(toks []pyToken) string {
	aliases := pythonModuleAliases(toks)
	for i, t := range toks {
		if t.kind != pyName {
			continue
		}
		if msg := checkPythonName(toks, i, aliases); msg != "" {
			return msg
		}
	}
	return ""
}

// pyAliasableModules maps the modules whose attributes are checked to the
// module they stand for (posix and nt are what os wraps).
var pyAliasableModules = map[string]string{"os": "os", "posix": "os", "nt": "os", "io": "io", "sys": "sys"}

// pythonModuleAliases maps the names bound to the os, io and sys modules —
// the module names themselves and aliases from "import os as o" — to the
// module they stand for.
func pythonModuleAliases(toks []pyToken) map[string]string {
	aliases := make(map[string]string, len(pyAliasableModules))
	for k, v := range pyAliasableModules {
		aliases[k] = v
	}
	inImport := false
	for i, t := range toks {
		switch {
		case t.kind == pyNewline || isOp(t, ";"):
			inImport = false
		case isName(t, "import"):
			inImport = true
		case inImport && t.kind == pyName && i+2 < len(toks) &&
			isName(toks[i+1], "as") && toks[i+2].kind == pyName && !isOp(toks[i-1], "."):
			if mod, ok := pyAliasableModules[t.text]; ok {
				aliases[toks[i+2].text] = mod
			}
		}
	}
	return aliases
}

// checkPythonName checks the name toks[i].
func checkPythonName(toks []pyToken, i int, aliases map[string]string) string {
	t := toks[i]
	name, line := t.text, t.line
	for j := 0; j < len(name); j++ {
		if name[j] >= 0x80 {
			return fmt.Sprintf("non-ASCII identifier %q on line %d is not allowed (Python normalizes identifiers, which can disguise forbidden names)", name, line)
		}
	}
	prevDot := i > 0 && isOp(toks[i-1], ".")
	call := i+1 < len(toks) && isOp(toks[i+1], "(")
	recv := ""
	if prevDot && i >= 2 && toks[i-2].kind == pyName {
		recv = toks[i-2].text
	}
	forbidden := func() string {
		what, qual := "name", name
		if call {
			what = "call"
		}
		if prevDot {
			qual = recv + "." + name
		}
		return fmt.Sprintf("forbidden %s %q on line %d", what, qual, line)
	}

	switch {
	case name == "import" && (i == 0 || toks[i-1].kind == pyNewline || isOp(toks[i-1], ";") || isOp(toks[i-1], ":")):
		if msg := checkPythonImport(toks, i); msg != "" {
			return msg
		}
	case name == "from" && !prevDot:
		if msg := checkPythonFromImport(toks, i); msg != "" {
			return msg
		}
	}

	if pyForbiddenDunders[name] {
		return forbidden()
	}
	lower := strings.ToLower(name)
	for _, part := range pyForbiddenNameParts {
		if lower == part {
			return forbidden()
		}
		if strings.Contains(lower, part) {
			return fmt.Sprintf("%s (contains %q)", forbidden(), part)
		}
	}
	switch name {
	case "eval", "exec":
		return forbidden()
	case "compile":
		if !prevDot { // re.compile is fine
			return forbidden()
		}
	case "open":
		if !prevDot && call {
			return forbidden()
		}
	case "requests":
		if !prevDot && i+1 < len(toks) && isOp(toks[i+1], ".") {
			return fmt.Sprintf("forbidden module %q on line %d", name, line)
		}
	}
	if !prevDot {
		return ""
	}
	mod := aliases[recv]
	switch {
	case pyProcessAttrs[name],
		mod == "os" && pyOSAttrs[name],
		mod == "io" && name == "open",
		mod == "sys" && name == "modules":
		return forbidden()
	}
	return ""
}

// parseDottedName reads a dotted name (a.b.c) starting at toks[i] and
// returns it with the index just past it.
func parseDottedName(toks []pyToken, i int) (string, int) {
	var parts []string
	for i < len(toks) && toks[i].kind == pyName {
		parts = append(parts, toks[i].text)
		i++
		if i < len(toks) && isOp(toks[i], ".") {
			i++
			continue
		}
		break
	}
	return strings.Join(parts, "."), i
}

func topModule(dotted string) string {
	top, _, _ := strings.Cut(dotted, ".")
	return top
}

// checkPythonImport checks "import a.b [as c], d" starting at toks[i].
func checkPythonImport(toks []pyToken, i int) string {
	j := i + 1
	for {
		mod, k := parseDottedName(toks, j)
		if mod == "" {
			return ""
		}
		if pyForbiddenModules[topModule(mod)] {
			return fmt.Sprintf("forbidden import %q on line %d", mod, toks[j].line)
		}
		if k+1 < len(toks) && isName(toks[k], "as") {
			k += 2
		}
		if k < len(toks) && isOp(toks[k], ",") {
			j = k + 1
			continue
		}
		return ""
	}
}

// checkPythonFromImport checks "from a.b import c [as d], e" starting at
// toks[i]; "yield from" and "raise ... from" are left alone.
func checkPythonFromImport(toks []pyToken, i int) string {
	j := i + 1
	for j < len(toks) && (isOp(toks[j], ".") || isOp(toks[j], "...")) {
		j++
	}
	mod, k := "", j // relative: from . import x
	if j < len(toks) && !isName(toks[j], "import") {
		mod, k = parseDottedName(toks, j)
	}
	if k >= len(toks) || !isName(toks[k], "import") {
		return ""
	}
	if pyForbiddenModules[topModule(mod)] {
		return fmt.Sprintf("forbidden import %q on line %d", mod, toks[j].line)
	}
	k++
	if k < len(toks) && isOp(toks[k], "(") {
		k++
	}
	for k < len(toks) && (toks[k].kind == pyName || isOp(toks[k], "*")) {
		imp := toks[k].text
		bad := false
		switch mod {
		case "os":
			bad = imp == "*" || pyProcessAttrs[imp] || pyOSAttrs[imp]
		case "io":
			bad = imp == "*" || imp == "open"
		case "sys":
			bad = imp == "*" || imp == "modules"
		}
		if bad {
			return fmt.Sprintf("forbidden import %q on line %d", mod+"."+imp, toks[k].line)
		}
		k++
		if k+1 < len(toks) && isName(toks[k], "as") {
			k += 2
		}
		if k < len(toks) && isOp(toks[k], ",") {
			k++
			continue
		}
		break
	}
	return ""
}

// checkInfiniteLoops rejects "while True:" (or while 1, while (True), while
// not False...) loops whose body — found by indentation — contains no break
// (or return) that exits that loop. A break inside a nested for/while loop,
// or anything inside a nested def/class, does not count.
func checkInfiniteLoops(lines []pyLine, toks []pyToken) string {
	for li, ln := range lines {
		lt := toks[ln.start:ln.end]
		if !isName(lt[0], "while") {
			continue
		}
		colon := headerColon(lt)
		if colon < 0 {
			continue
		}
		if v, known := constTruth(lt[1:colon]); !known || !v {
			continue
		}
		var exits bool
		if colon+1 < len(lt) { // while True: stmt; stmt
			exits = hasLoopExit(lt[colon+1:], false, false)
		} else {
			j := li + 1
			for j < len(lines) && lines[j].indent > ln.indent {
				j++
			}
			exits = loopBodyExits(lines[li+1:j], toks)
		}
		if !exits {
			return fmt.Sprintf("infinite loop: \"while\" loop on line %d has an always-true condition and no break in its body", lt[0].line)
		}
	}
	return ""
}

// loopBodyExits reports whether the body lines of a loop contain a break or
// return that leaves that loop.
func loopBodyExits(body []pyLine, toks []pyToken) bool {
	type scope struct {
		indent   int
		loop, fn bool
	}
	var stack []scope
	for _, ln := range body {
		for len(stack) > 0 && stack[len(stack)-1].indent >= ln.indent {
			stack = stack[:len(stack)-1]
		}
		inLoop, inFn := false, false
		for _, s := range stack {
			inLoop = inLoop || s.loop
			inFn = inFn || s.fn
		}
		lt := toks[ln.start:ln.end]
		kw := lt[0]
		if isName(kw, "async") && len(lt) > 1 {
			kw = lt[1]
		}
		isLoop := isName(kw, "for") || isName(kw, "while")
		isFn := isName(kw, "def") || isName(kw, "class")
		scan := lt
		if isLoop || isFn {
			// The header cannot contain break/return; an inline body
			// after the colon belongs to the nested scope.
			scan = nil
			if colon := headerColon(lt); colon >= 0 {
				scan = lt[colon+1:]
			}
			stack = append(stack, scope{indent: ln.indent, loop: isLoop, fn: isFn})
			inLoop = inLoop || isLoop
			inFn = inFn || isFn
		}
		if hasLoopExit(scan, inLoop, inFn) {
			return true
		}
	}
	return false
}

// hasLoopExit reports whether toks contain a break or return leaving the
// loop under review, given whether they sit in a nested loop or function.
func hasLoopExit(toks []pyToken, inNestedLoop, inFunction bool) bool {
	for _, t := range toks {
		if isName(t, "break") && !inNestedLoop && !inFunction {
			return true
		}
		if isName(t, "return") && !inFunction {
			return true
		}
	}
	return false
}

// headerColon returns the index of the colon ending a compound-statement
// header, or -1. Colons inside brackets or belonging to a lambda are
// skipped.
func headerColon(lt []pyToken) int {
	depth, lambdas := 0, 0
	for i, t := range lt {
		switch {
		case isName(t, "lambda") && depth == 0:
			lambdas++
		case t.kind != pyOp:
		case t.text == "(" || t.text == "[" || t.text == "{":
			depth++
		case t.text == ")" || t.text == "]" || t.text == "}":
			if depth > 0 {
				depth--
			}
		case t.text == ":" && depth == 0:
			if lambdas == 0 {
				return i
			}
			lambdas--
		}
	}
	return -1
}

// constTruth evaluates a constant loop condition such as True, 1, (True)
// or not False. known is false for anything else.
func constTruth(c []pyToken) (value, known bool) {
	for len(c) >= 2 && isOp(c[0], "(") && isOp(c[len(c)-1], ")") && wrappedInParens(c) {
		c = c[1 : len(c)-1]
	}
	if len(c) == 0 {
		return false, false
	}
	if isName(c[0], "not") {
		v, ok := constTruth(c[1:])
		return !v, ok
	}
	if len(c) != 1 {
		return false, false
	}
	switch t := c[0]; t.kind {
	case pyName:
		switch t.text {
		case "True":
			return true, true
		case "False", "None":
			return false, true
		}
	case pyNumber:
		s := strings.ToLower(strings.ReplaceAll(t.text, "_", ""))
		s = strings.TrimSuffix(s, "j")
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return n != 0, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f != 0, true
		}
	}
	return false, false
}

// wrappedInParens reports whether the "(" at c[0] is closed by the ")" at
// the end of c (so "(a) or (b)" is not wrapped).
func wrappedInParens(c []pyToken) bool {
	depth := 0
	for i, t := range c {
		switch {
		case isOp(t, "(") || isOp(t, "[") || isOp(t, "{"):
			depth++
		case isOp(t, ")") || isOp(t, "]") || isOp(t, "}"):
			depth--
			if depth == 0 && i != len(c)-1 {
				return false
			}
		}
	}
	return depth == 0
}

// pyAssignOps are the operators that bind the name(s) on their left.
var pyAssignOps = map[string]bool{
	"=": true, ":=": true, "+=": true, "-=": true, "*=": true, "/=": true,
	"//=": true, "%=": true, "**=": true, "@=": true, "&=": true, "|=": true,
	"^=": true, ">>=": true, "<<=": true,
}

// pythonWarnings returns the non-fatal observations about the code.
func pythonWarnings(src string, toks []pyToken) []string {
	warnings := []string{}
	if !assignsResult(toks) {
		warnings = append(warnings, `code does not assign a "result" variable; the analysis output is expected in "result"`)
	}
	for i, t := range toks {
		if isName(t, "print") && !(i > 0 && isOp(toks[i-1], ".")) && i+1 < len(toks) && isOp(toks[i+1], "(") {
			warnings = append(warnings, fmt.Sprintf("code calls print() on line %d; printed output is not returned to the user", t.line))
			break
		}
	}
	var long []int
	for i, l := range strings.Split(src, "\n") {
		if utf8.RuneCountInString(l) > maxLineLength {
			long = append(long, i+1)
		}
	}
	switch {
	case len(long) == 1:
		warnings = append(warnings, fmt.Sprintf("line %d is longer than %d characters", long[0], maxLineLength))
	case len(long) > 1:
		warnings = append(warnings, fmt.Sprintf("%d lines are longer than %d characters (first on line %d)", len(long), maxLineLength, long[0]))
	}
	return warnings
}

// assignsResult reports whether some statement binds the name "result":
// result = ..., result: T = ..., a, result = ..., result += ...,
// (result := ...), for result in ..., ... as result.
func assignsResult(toks []pyToken) bool {
	depth := 0
	pending := false // "result" seen at depth 0 in the current statement
	for i, t := range toks {
		switch {
		case t.kind == pyNewline || isOp(t, ";"):
			depth, pending = 0, false
		case isName(t, "result") && !(i > 0 && isOp(toks[i-1], ".")):
			if i > 0 && (isName(toks[i-1], "for") || isName(toks[i-1], "as")) {
				return true
			}
			if i+1 < len(toks) && isOp(toks[i+1], ":=") {
				return true
			}
			if depth == 0 {
				pending = true
			}
		case t.kind != pyOp:
		case t.text == "(" || t.text == "[" || t.text == "{":
			depth++
		case t.text == ")" || t.text == "]" || t.text == "}":
			if depth > 0 {
				depth--
			}
		case pyAssignOps[t.text] && depth == 0 && pending:
			return true
		}
	}
	return false
}
