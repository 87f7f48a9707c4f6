package codegen

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	sitter "github.com/tree-sitter/go-tree-sitter"
)

// reviewPython returns the first problem in code ("" if none) and the
// warnings.
//
// The code is parsed once, with tree-sitter, and every check after the
// textual ones below works on that tree: the nesting limit, the syntax
// check (syntax.go), then the rules (python_rules.go). A syntax error is
// reported before a rule, because on a tree that error recovery had to
// patch up a rule can fire on what the author meant as a string.
func reviewPython(code string) (string, []string) {
	if msg := bounds(code, "code"); msg != "" {
		return msg, nil
	}
	// CPython refuses both; a parser that read them otherwise could see
	// code where CPython sees none, or the reverse.
	if !utf8.ValidString(code) {
		return "code is not valid UTF-8", nil
	}
	if i := strings.IndexByte(code, 0); i >= 0 {
		return fmt.Sprintf("code contains a NUL character on line %d", strings.Count(code[:i], "\n")+1), nil
	}
	src := pythonSource(code)
	if msg := checkCodingCookie(src); msg != "" {
		return msg, nil
	}
	tree, err := parsePython(src)
	if err != nil {
		return "Python could not be parsed: " + err.Error(), nil
	}
	defer tree.Close()
	root := tree.RootNode()

	r := pyReview{src: src}
	r.walk(root)
	if r.nesting != nil {
		return "syntax error: " + r.nesting.Error(), nil
	}
	if !r.statements {
		return "code is empty: it contains only comments", nil
	}
	warnings := r.warnings()
	if se := checkSyntax(root, src); se != nil {
		return "syntax error: " + se.Error(), warnings
	}
	return r.msg, warnings
}

// codingCookie is Python's source-encoding declaration pattern (PEP 263).
var codingCookie = regexp.MustCompile(`^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`)

// checkCodingCookie rejects encoding declarations other than UTF-8/ASCII: a
// declaration such as "utf-7" makes Python decode the bytes differently
// from how they are parsed here, which can turn a comment into code. This
// check is textual because the declaration changes how the text is read.
func checkCodingCookie(src []byte) string {
	for i, rest := 0, src; i < 2 && len(rest) > 0; i++ {
		ln := rest
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			ln, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		m := codingCookie.FindSubmatch(ln)
		if m == nil {
			continue
		}
		enc := strings.ReplaceAll(strings.ToLower(string(m[1])), "_", "-")
		if enc == "utf-8" || enc == "utf8" || strings.HasPrefix(enc, "utf-8-") || enc == "ascii" || enc == "us-ascii" {
			continue
		}
		return fmt.Sprintf("source encoding declaration %q on line %d is not allowed (only UTF-8)", m[1], i+1)
	}
	return ""
}

// pyReview is the state of one review's walk over the tree.
type pyReview struct {
	src  []byte
	path []pyFrame // reused by the loop check's walks
	// nesting is set, and the walk stopped, where nesting passes
	// maxNesting.
	nesting *SyntaxError
	// msg is the first rule broken, "" if none.
	msg string
	// statements reports whether the module holds more than comments.
	statements bool
	// assignsResult reports whether some statement binds "result".
	assignsResult bool
	// printLine is the line of the first print() call, 0 if none.
	printLine int
}

// walk visits the whole tree once.
func (r *pyReview) walk(root *sitter.Node) {
	walkTree(root, nil, r.visit)
}

// visit checks the last node of path and says whether to go into it.
func (r *pyReview) visit(path []pyFrame) (descend, stop bool) {
	f := &path[len(path)-1]
	if f.nest > maxNesting {
		r.nesting = nestingError(r.src, &f.node)
		return false, true
	}
	if len(path) == 2 && f.kind != pk.comment && f.kind != pk.lineContinuation {
		r.statements = true
	}
	switch f.kind {
	case pk.importStatement, pk.importFromStatement:
		r.checkImport(f)
		return false, false
	case pk.futureImportStatement:
		// "from __future__ import annotations" only sets compiler flags.
		return false, false
	case pk.identifier:
		r.identifier(path)
		return false, false
	case pk.concatenatedString:
		// Python joins the parts before anything reads the string, so
		// the rules read the joined value; the parts are not checked
		// again, but the fields of f-string parts are code.
		if r.msg == "" && !isDocstring(path) {
			r.checkStringValue(path, &f.node)
		}
		return true, false
	case pk.str:
		t := text(r.src, &f.node)
		isF := bytes.ContainsAny(t[:max(bytes.IndexAny(t, `'"`), 0)], "fFtT")
		inConcat := len(path) >= 2 && path[len(path)-2].kind == pk.concatenatedString
		if r.msg == "" && !inConcat && !isDocstring(path) {
			if !isF && bytes.IndexByte(t, '\\') < 0 {
				// No escapes: the text is the value, which saves calls
				// into C for the parts.
				r.checkString(&f.node, t)
				if v, ok := plainValue(t); ok {
					r.checkMethodString(path, &f.node, v)
				}
			} else {
				r.checkStringValue(path, &f.node)
			}
		}
		// Only the fields of an f-string hold code.
		return isF, false
	case pk.strContent:
		// Part of an f-string, checked with its string.
		return false, false
	case pk.comment, pk.integer, pk.float, pk.strStart:
		return false, false
	case pk.whileStatement:
		if r.msg == "" {
			r.checkLoop(&f.node)
		}
	case pk.call:
		if r.msg == "" {
			r.checkDispatch(&f.node)
		}
	}
	return true, false
}

// fail records msg as the rule broken, unless one already is: only the
// first problem in document order is reported.
func (r *pyReview) fail(msg string) {
	if r.msg == "" {
		r.msg = msg
	}
}

// forbidden formats a broken rule, e.g.
// `forbidden call "os.system" on line 3: "os" is not an allowed module`.
func forbidden(what, name string, line int, culprit, why string) string {
	return fmt.Sprintf("forbidden %s %q on line %d: %q %s", what, name, line, culprit, why)
}

// callOrName says "call" when the node at path[i] is the function of a
// call, and "name" otherwise.
func callOrName(path []pyFrame, i int) string {
	if i > 0 && path[i-1].kind == pk.call && path[i].field == pf.function {
		return "call"
	}
	return "name"
}

// identifier checks an identifier by the role its parent gives it.
func (r *pyReview) identifier(path []pyFrame) {
	i := len(path) - 1
	if i == 0 {
		return // the root is a module, never an identifier
	}
	f, parent := &path[i], &path[i-1]
	b := text(r.src, &f.node)
	if !isASCII(b) {
		r.fail(nonASCII(b, line(&f.node)))
		return
	}
	switch {
	case parent.kind == pk.attribute && f.field == pf.attribute:
		if r.msg == "" {
			r.attribute(path, b)
		}
	case parent.kind == pk.attribute && f.field == pf.object:
		// The receiver of an attribute: named with the attribute, so
		// os.system reads as such.
		if why := forbiddenName(b); why != "" && r.msg == "" {
			qual := string(b)
			if attr := parent.node.ChildByFieldId(pf.attribute); attr != nil {
				qual += "." + string(text(r.src, attr))
			}
			r.fail(forbidden(callOrName(path, i-1), qual, line(&f.node), string(b), why))
		}
	case parent.kind == pk.keywordArgument && f.field == pf.name:
		// A parameter name, not a reference.
		if isDunder(b) {
			r.fail(forbidden("keyword", string(b), line(&f.node), string(b), whyDunder))
		}
	case parent.kind == pk.keywordPattern,
		parent.kind == pk.dottedName && f.node.StartByte() > parent.node.StartByte():
		// case C(attr=x) and case a.attr: both read an attribute.
		if why := forbiddenAttr(b); why != "" {
			r.fail(forbidden("pattern", string(text(r.src, &parent.node)), line(&f.node), string(b), why))
		}
	default:
		what := callOrName(path, i)
		if why := forbiddenName(b); why != "" {
			r.fail(forbidden(what, string(b), line(&f.node), string(b), why))
		}
		switch {
		case string(b) == "result" && !r.assignsResult:
			r.assignsResult = bindsName(path)
		case string(b) == "print" && what == "call" && r.printLine == 0:
			r.printLine = line(&f.node)
		}
	}
}

// attribute checks the identifier that ends path, which names an
// attribute: path[len-2] is the attribute node.
func (r *pyReview) attribute(path []pyFrame, name []byte) {
	i := len(path) - 1
	what := callOrName(path, i-1)
	why := forbiddenAttr(name)
	isFormat := string(name) == "format" || string(name) == "format_map"
	switch {
	case why != "", isFormat:
	case toText[string(name)]:
		if what == "call" && keywordsOnly(path[i-2].node.ChildByFieldId(pf.arguments), r.src) {
			return
		}
		why = whyNoCall
	case string(name) == "info":
		// df.info() is common; np.info(obj, width, output, toplevel)
		// imports the module its fourth argument names.
		if what == "call" && noTopLevel(path[i-2].node.ChildByFieldId(pf.arguments), r.src) {
			return
		}
		why = whyTopLevel
	default:
		return
	}
	id := &path[i].node
	obj := path[i-1].node.ChildByFieldId(pf.object)
	qual := string(name)
	if obj != nil {
		qual = exprText(text(r.src, obj)) + "." + qual
	}
	if why == "" {
		r.checkFormat(obj, what, qual, line(id))
		return
	}
	r.fail(forbidden(what, qual, line(id), string(name), why))
}

// keywordsOnly reports whether args, a call's arguments, are keyword
// arguments none of which names a path or buffer (path, path_or_buf, buf,
// path_or_buffer).
func keywordsOnly(args *sitter.Node, src []byte) bool {
	if args == nil || args.KindId() != pk.argumentList {
		return false // f(x for x in y)
	}
	for j := uint(0); j < args.NamedChildCount(); j++ {
		a := args.NamedChild(j)
		switch a.KindId() {
		case pk.comment:
		case pk.keywordArgument:
			if kw := a.ChildByFieldId(pf.name); kw == nil ||
				strings.Contains(string(text(src, kw)), "path") || strings.Contains(string(text(src, kw)), "buf") {
				return false
			}
		default: // positional, *args or **kwargs
			return false
		}
	}
	return true
}

// noTopLevel reports whether args, a call's arguments, hold at most two
// positional arguments, no *args or **kwargs and no toplevel keyword.
func noTopLevel(args *sitter.Node, src []byte) bool {
	if args == nil || args.KindId() != pk.argumentList {
		return false
	}
	positional := 0
	for j := uint(0); j < args.NamedChildCount(); j++ {
		a := args.NamedChild(j)
		switch a.KindId() {
		case pk.comment:
		case pk.keywordArgument:
			if kw := a.ChildByFieldId(pf.name); kw == nil || string(text(src, kw)) == "toplevel" {
				return false
			}
		case pk.listSplat, pk.dictionarySplat, pk.parenthesizedListSplat:
			return false
		default:
			positional++
		}
	}
	return positional <= 2
}

// checkImport checks an import statement against the allow-list. The
// names a from-import binds are checked first, as attributes of the
// module, because they say best what is wrong (os.system, not os).
func (r *pyReview) checkImport(f *pyFrame) {
	n := &f.node
	if f.kind == pk.importStatement {
		for j := uint(0); j < n.NamedChildCount(); j++ {
			c := n.NamedChild(j)
			name, alias := c, (*sitter.Node)(nil)
			if c.KindId() == pk.aliasedImport {
				name, alias = c.ChildByFieldId(pf.name), c.ChildByFieldId(pf.alias)
			}
			if name == nil || name.KindId() != pk.dottedName {
				continue
			}
			if mod := dotted(text(r.src, name)); !allowedImport(mod) {
				r.fail(forbidden("import", mod, line(name), mod, whyModule))
			}
			r.importAlias(alias)
		}
		return
	}
	modNode := n.ChildByFieldId(pf.moduleName)
	if modNode == nil {
		return // only in a tree with errors, which the syntax check reports
	}
	mod := dotted(text(r.src, modNode))
	for j := uint(0); j < n.NamedChildCount(); j++ {
		c := n.NamedChild(j)
		if c.StartByte() == modNode.StartByte() {
			continue
		}
		switch c.KindId() {
		case pk.wildcardImport:
			r.fail(fmt.Sprintf("forbidden import %q on line %d: a wildcard import binds names the review cannot see", mod+".*", line(c)))
			continue
		case pk.aliasedImport:
			r.importAlias(c.ChildByFieldId(pf.alias))
			c = c.ChildByFieldId(pf.name)
		}
		if c == nil || c.KindId() != pk.dottedName {
			continue
		}
		name := dotted(text(r.src, c))
		for _, part := range strings.Split(name, ".") {
			if why := forbiddenAttr([]byte(part)); why != "" {
				sep := "."
				if strings.HasSuffix(mod, ".") {
					sep = ""
				}
				r.fail(forbidden("import", mod+sep+name, line(c), part, why))
			}
		}
	}
	switch {
	case modNode.KindId() == pk.relativeImport:
		r.fail(fmt.Sprintf("forbidden import %q on line %d: relative imports are not allowed", mod, line(modNode)))
	case !allowedImport(mod):
		r.fail(forbidden("import", mod, line(modNode), mod, whyModule))
	}
}

// importAlias checks the name after "as" in an import.
func (r *pyReview) importAlias(alias *sitter.Node) {
	if alias == nil {
		return
	}
	name := string(text(r.src, alias))
	switch {
	case !isASCII([]byte(name)):
		r.fail(nonASCII([]byte(name), line(alias)))
	case forbiddenName([]byte(name)) != "":
		r.fail(forbidden("name", name, line(alias), name, forbiddenName([]byte(name))))
	case name == "result":
		r.assignsResult = true
	}
}

// checkLoop rejects "while True:" (or while 1, while (True), while not
// False...) loops with no break or return that leaves them. A break inside
// a nested loop's body, or anything inside a nested def, class or lambda,
// does not count; a break in a nested loop's else clause does.
func (r *pyReview) checkLoop(n *sitter.Node) {
	cond, body := n.ChildByFieldId(pf.condition), n.ChildByFieldId(pf.body)
	if cond == nil || body == nil {
		return
	}
	if v, known := constTruth(cond, r.src); !known || !v {
		return
	}
	exits := false
	r.path = walkTree(body, r.path, func(path []pyFrame) (bool, bool) {
		switch path[len(path)-1].kind {
		case pk.functionDefinition, pk.classDefinition, pk.lambda:
			return false, false
		case pk.returnStatement:
			exits = true
		case pk.breakStatement:
			exits = !inNestedLoopBody(path)
		}
		return !exits, exits
	})
	if !exits {
		r.fail(fmt.Sprintf("infinite loop: \"while\" loop on line %d has an always-true condition and no break in its body", line(n)))
	}
}

// inNestedLoopBody reports whether the last node of path, walked from a
// loop's body, sits in the body of a loop nested in it.
func inNestedLoopBody(path []pyFrame) bool {
	for i := 1; i < len(path)-1; i++ {
		if (path[i].kind == pk.forStatement || path[i].kind == pk.whileStatement) && path[i+1].field == pf.body {
			return true
		}
	}
	return false
}

// constTruth evaluates a constant loop condition such as True, 1, (True)
// or not False. known is false for anything else.
func constTruth(n *sitter.Node, src []byte) (value, known bool) {
	negate := false
	for n != nil {
		switch n.KindId() {
		case pk.parenthesizedExpression:
			if n.NamedChildCount() != 1 {
				return false, false
			}
			n = n.NamedChild(0)
			continue
		case pk.notOperator:
			negate = !negate
			n = n.ChildByFieldId(pf.argument)
			continue
		case pk.trueNode:
			return !negate, true
		case pk.falseNode, pk.noneNode:
			return negate, true
		case pk.integer, pk.float:
			s := strings.ToLower(strings.ReplaceAll(string(text(src, n)), "_", ""))
			s = strings.TrimSuffix(s, "j")
			if i, err := strconv.ParseInt(s, 0, 64); err == nil {
				return (i != 0) != negate, true
			}
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				return (f != 0) != negate, true
			}
		}
		return false, false
	}
	return false, false
}

// bindsName reports whether the identifier at the end of path is bound by
// its statement: result = ..., result: T = ..., a, result = ...,
// result += ..., (result := ...), for result in ..., with ... as result,
// except E as result.
func bindsName(path []pyFrame) bool {
	i := len(path) - 1
	for i > 0 {
		switch path[i-1].kind {
		case pk.patternList, pk.tuplePattern, pk.listPattern, pk.tuple, pk.list,
			pk.parenthesizedExpression, pk.listSplatPattern, pk.listSplat, pk.expressionList:
			i--
			continue
		case pk.assignment, pk.augmentedAssignment, pk.forStatement, pk.forInClause:
			return path[i].field == pf.left
		case pk.namedExpression:
			return path[i].field == pf.name
		case pk.exceptClause:
			return path[i].field == pf.alias
		case pk.asPatternTarget:
			return true
		}
		return false
	}
	return false
}

// warnings returns the non-fatal observations, never nil.
func (r *pyReview) warnings() []string {
	warnings := []string{}
	if !r.assignsResult {
		warnings = append(warnings, `code does not assign a "result" variable; the analysis output is expected in "result"`)
	}
	if r.printLine > 0 {
		warnings = append(warnings, fmt.Sprintf("code calls print() on line %d; printed output is not returned to the user", r.printLine))
	}
	var long []int
	for i, rest := 1, r.src; len(rest) > 0; i++ {
		l := rest
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			l, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		if len(l) > maxLineLength && utf8.RuneCount(l) > maxLineLength {
			long = append(long, i)
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

// dotted returns a dotted name's text without the spaces and line
// continuations Python allows inside it ("numpy . linalg").
func dotted(b []byte) string {
	return strings.Map(func(c rune) rune {
		switch c {
		case ' ', '\t', '\f', '\n', '\\':
			return -1
		}
		return c
	}, string(b))
}

// exprText returns an expression's text for a message: on one line, cut
// to 40 characters.
func exprText(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	s = strings.ReplaceAll(strings.ReplaceAll(s, " .", "."), ". ", ".")
	if r := []rune(s); len(r) > 40 {
		s = "…" + string(r[len(r)-40:])
	}
	return s
}

// nonASCII reports a non-ASCII identifier. Such identifiers are refused
// because Python reads them in NFKC form, so "\uff45val" is eval.
func nonASCII(name []byte, ln int) string {
	return fmt.Sprintf("non-ASCII identifier %q on line %d is not allowed (Python normalizes identifiers, which can disguise forbidden names)", name, ln)
}

func isASCII(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
