package codegen

// The Python review's string rules: a string's value (escapes decoded,
// implicit concatenations joined), format strings, and the strings that
// pandas dispatchers turn into method calls.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
)

// checkFormat checks the receiver of str.format or str.format_map, which
// can read any attribute from inside the format string
// ("{0.__init__.__globals__}"): it must be a plain string literal whose
// fields read neither attributes nor items.
func (r *pyReview) checkFormat(obj *sitter.Node, what, qual string, ln int) {
	notLiteral := fmt.Sprintf("forbidden %s %q on line %d: \"format\" is allowed only as a method of a string literal", what, qual, ln)
	if obj == nil || (obj.KindId() != pk.str && obj.KindId() != pk.concatenatedString) {
		r.fail(notLiteral)
		return
	}
	v := r.stringValue(obj, false)
	switch {
	case v.fstring:
		r.fail(notLiteral)
	case v.named >= 0:
		// Refused where the string was visited.
	default:
		if field := formatFieldWithAccess(v.b); field != "" {
			r.fail(fmt.Sprintf("forbidden format field %q on line %d: format fields may not read attributes or items", field, ln))
		}
	}
}

// strValue is the value of a string literal, as stringValue computes it.
type strValue struct {
	b []byte
	// offs holds the source offset each byte of b comes from, if asked.
	offs []int
	// named is the source offset of the first \N{...} escape, or -1.
	named int
	// fstring reports an f-string (or t-string) part; in b each of its
	// fields reads as one NUL byte, which ends a word.
	fstring bool
}

// stringValue returns the value of n, a string or a concatenated_string:
// its parts joined and their escapes decoded, as Python reads it. With
// track set, the value's source offsets are returned too.
func (r *pyReview) stringValue(n *sitter.Node, track bool) strValue {
	v := strValue{named: -1}
	if track {
		v.offs = []int{}
	}
	add := func(s *sitter.Node) {
		var raw, isBytes, isF bool
		for j := uint(0); j < s.NamedChildCount(); j++ {
			part := s.NamedChild(j)
			switch part.KindId() {
			case pk.strStart:
				p := strings.ToLower(string(text(r.src, part)))
				raw, isBytes = strings.Contains(p, "r"), strings.Contains(p, "b")
				isF = strings.ContainsAny(p, "ft")
				v.fstring = v.fstring || isF
			case pk.strContent:
				var named int
				v.b, v.offs, named = appendStringValue(v.b, v.offs, text(r.src, part), int(part.StartByte()), raw, isBytes, isF)
				if v.named < 0 {
					v.named = named
				}
			case pk.interpolation:
				v.b = append(v.b, 0)
				if v.offs != nil {
					v.offs = append(v.offs, int(part.StartByte()))
				}
			}
		}
	}
	if n.KindId() == pk.str {
		add(n)
		return v
	}
	for j := uint(0); j < n.NamedChildCount(); j++ {
		if s := n.NamedChild(j); s.KindId() == pk.str {
			add(s)
		}
	}
	return v
}

// checkStringValue checks the value of n, a string or a
// concatenated_string (stringValue), as checkString checks plain text,
// and refuses named escapes, whose value the review cannot know.
func (r *pyReview) checkStringValue(path []pyFrame, n *sitter.Node) {
	v := r.stringValue(n, false)
	if v.named >= 0 {
		esc := r.src[v.named:]
		if end := bytes.IndexByte(esc, '}'); end >= 0 && end < 80 {
			esc = esc[:end+1]
		} else {
			esc = esc[:2]
		}
		ln := line(n) + bytes.Count(r.src[n.StartByte():v.named], []byte("\n"))
		r.fail(fmt.Sprintf("forbidden string escape %q on line %d: named escapes (\\N{...}) are not allowed; write the character itself", esc, ln))
		return
	}
	w, at := findDunder(v.b)
	if w == "" {
		if t := text(r.src, n); !bytes.ContainsAny(t[:max(bytes.IndexAny(t, `'"`), 0)], "fFtTbB") {
			r.checkMethodString(path, n, v.b)
		}
		return
	}
	v = r.stringValue(n, true)
	ln := line(n) + bytes.Count(r.src[n.StartByte():v.offs[at]], []byte("\n"))
	r.fail(fmt.Sprintf("forbidden string %q on line %d: %q is a dunder name", w, ln, w))
}

// checkDispatch checks a call to a pandas dispatcher (dispatchers), such
// as df.agg(...): the string literals in its arguments are method names
// that pandas looks up and calls, so none may name a method that the
// review refuses as an attribute (forbiddenMethodName), and the argument
// that names the function may not be a string built at run time. Dict
// keys and label arguments (dispatchLabelKeywords, columnArgs, the column
// of a relabelling pair) are column names and are not checked.
func (r *pyReview) checkDispatch(call *sitter.Node) {
	fn := call.ChildByFieldId(pf.function)
	if fn != nil && fn.KindId() == pk.attribute {
		fn = fn.ChildByFieldId(pf.attribute)
	}
	if fn == nil || fn.KindId() != pk.identifier {
		return
	}
	name := string(text(r.src, fn))
	d, ok := dispatchers[name]
	if !ok {
		return
	}
	args := call.ChildByFieldId(pf.arguments)
	if args == nil || args.KindId() != pk.argumentList {
		return // f(x for x in y): a generator is no method name
	}
	pos := 0
	for j := uint(0); j < args.NamedChildCount() && r.msg == ""; j++ {
		a := args.NamedChild(j)
		switch a.KindId() {
		case pk.comment:
		case pk.keywordArgument:
			kw, v := a.ChildByFieldId(pf.name), a.ChildByFieldId(pf.value)
			if kw == nil || v == nil {
				continue
			}
			k := string(text(r.src, kw))
			switch {
			case dispatchFuncKeywords[k]:
				r.dispatchArg(name, v, true)
			case dispatchLabelKeywords[k]:
			case d.relabels && v.KindId() == pk.tuple && v.NamedChildCount() == 2:
				r.dispatchArg(name, v.NamedChild(1), true)
			default:
				r.dispatchArg(name, v, false)
			}
		case pk.listSplat, pk.dictionarySplat, pk.parenthesizedListSplat:
			// Unpacked arguments land in positions unknown here.
			r.dispatchArg(name, a, true)
		default:
			if !slices.Contains(d.columnArgs, pos) {
				r.dispatchArg(name, a, slices.Contains(d.funcArgs, pos))
			}
			pos++
		}
	}
}

// dispatchArg checks n, in the arguments of a call to the dispatcher fn:
// its string literals, in containers, dict values and both branches of
// conditionals, may not name forbidden methods. When isFunc is set, n
// names the function to call, so it may not hold a string built at run
// time, and the review looks into the calls and subscripts in it too,
// whose results may be strings (str("to_pickle"), ["to_pickle"][0]).
// Lambdas, names and attribute references are callables, which pandas
// calls, not looks up, and dict keys and subscript keys are labels.
func (r *pyReview) dispatchArg(fn string, n *sitter.Node, isFunc bool) {
	if r.msg != "" || n == nil {
		return
	}
	switch n.KindId() {
	case pk.str, pk.concatenatedString:
		v := r.stringValue(n, false)
		switch {
		case v.fstring && bytes.IndexByte(v.b, 0) >= 0:
			if isFunc {
				r.failBuilt(fn, n)
			}
		case v.named >= 0, isDunder(v.b):
			// The string check refuses these, with its own message.
		default:
			if why := forbiddenMethodName(v.b); why != "" {
				r.fail(fmt.Sprintf("forbidden method name %q passed to %s() on line %d: %q %s", v.b, fn, line(n), v.b, why))
			}
		}
	case pk.pair, pk.keywordArgument:
		r.dispatchArg(fn, n.ChildByFieldId(pf.value), isFunc)
	case pk.list, pk.tuple, pk.set, pk.dictionary, pk.parenthesizedExpression,
		pk.expressionList, pk.conditionalExpression, pk.booleanOperator,
		pk.listSplat, pk.dictionarySplat, pk.parenthesizedListSplat,
		pk.listComprehension, pk.setComprehension, pk.generatorExpression,
		pk.dictionaryComprehension:
		r.dispatchArgs(fn, n, isFunc)
	case pk.binaryOperator:
		// "to_" + name, "%s" % name; ["sum"] + ["to_pickle"].
		if isFunc && holdsString(n) {
			r.failBuilt(fn, n)
		}
		r.dispatchArgs(fn, n, isFunc)
	case pk.subscript:
		if isFunc {
			r.dispatchArg(fn, n.ChildByFieldId(pf.value), isFunc)
		}
	case pk.attribute:
		if isFunc {
			r.dispatchArg(fn, n.ChildByFieldId(pf.object), isFunc)
		}
	case pk.call:
		if !isFunc {
			return
		}
		// "{}".format(x), "".join(parts), "X".lower(): methods of strings.
		f := n.ChildByFieldId(pf.function)
		for f != nil && f.KindId() == pk.parenthesizedExpression && f.NamedChildCount() == 1 {
			f = f.NamedChild(0)
		}
		if f != nil && f.KindId() == pk.attribute {
			obj, attr := f.ChildByFieldId(pf.object), f.ChildByFieldId(pf.attribute)
			switch {
			case obj != nil && (obj.KindId() == pk.str || obj.KindId() == pk.concatenatedString):
				r.failBuilt(fn, n)
			case attr != nil && strBuilders[string(text(r.src, attr))]:
				r.failBuilt(fn, n)
			}
		}
		if f != nil && f.KindId() == pk.lambda {
			// (lambda: "to_pickle")(): the lambda's value is the name.
			r.dispatchArg(fn, f.ChildByFieldId(pf.body), isFunc)
		} else {
			r.dispatchArg(fn, f, isFunc)
		}
		if args := n.ChildByFieldId(pf.arguments); args != nil && args.KindId() == pk.argumentList {
			r.dispatchArgs(fn, args, isFunc)
		}
	}
}

// dispatchArgs checks each named child of n with dispatchArg.
func (r *pyReview) dispatchArgs(fn string, n *sitter.Node, isFunc bool) {
	for j := uint(0); j < n.NamedChildCount() && r.msg == ""; j++ {
		r.dispatchArg(fn, n.NamedChild(j), isFunc)
	}
}

// strBuilders are the methods that build a string however they are
// called: a method name built by them cannot be checked.
var strBuilders = map[string]bool{"format": true, "format_map": true, "join": true}

// holdsString reports whether n, an operand of a binary operator, holds a
// string literal: "a" + b, ("%s" % b) + c.
func holdsString(n *sitter.Node) bool {
	switch n.KindId() {
	case pk.str, pk.concatenatedString:
		return true
	case pk.binaryOperator, pk.parenthesizedExpression:
		for j := uint(0); j < n.NamedChildCount(); j++ {
			if holdsString(n.NamedChild(j)) {
				return true
			}
		}
	}
	return false
}

// failBuilt refuses n, a method name for the dispatcher fn built at run
// time.
func (r *pyReview) failBuilt(fn string, n *sitter.Node) {
	r.fail(fmt.Sprintf("forbidden method name %q passed to %s() on line %d: a method name built at run time cannot be checked", exprText(text(r.src, n)), fn, line(n)))
}

// checkString checks the literal text t of a string, or of a part of an
// f-string: it may not hold a dunder name, which only a lookup by name
// (getattr, a format string, a pandas method name) could use.
func (r *pyReview) checkString(n *sitter.Node, t []byte) {
	if w, at := findDunder(t); w != "" {
		ln := line(n) + bytes.Count(t[:at], []byte("\n"))
		r.fail(fmt.Sprintf("forbidden string %q on line %d: %q is a dunder name", w, ln, w))
	}
}

// checkMethodString refuses a string literal whose whole value names a
// pandas method that writes or reads files, runs code or imports by name
// (dispatchable) and that the review refuses as an attribute
// (forbiddenMethodName), wherever the string stands:
// pandas calls a method named in a string (df.agg(name, ...)), and a
// name held in a variable first (m = "to_pickle"; df.agg(m, path)) is
// out of checkDispatch's sight. Dict keys and subscript keys are column
// names and are exempt, and so are private-looking names ("_merge"), which
// the attribute rule refuses for another reason.
func (r *pyReview) checkMethodString(path []pyFrame, n *sitter.Node, v []byte) {
	if r.msg != "" || len(v) == 0 || v[0] == '_' || !isASCIIIdentifier(v) {
		return
	}
	if !dispatchable(v) {
		return
	}
	why := forbiddenMethodName(v)
	if why == "" || isKey(path) {
		return
	}
	r.fail(fmt.Sprintf("forbidden string %q on line %d: pandas calls methods named in strings, and %q %s", v, line(n), v, why))
}

// dispatchable reports whether name is one of the pandas methods that a
// string may not name anywhere: to_* and read_* (files), query and eval
// (code), plot, hist, boxplot and style (imports by name), info. Other
// names the attribute rule refuses ("open", "sys") are common column
// names, and stay refused only where pandas takes a method name
// (checkDispatch).
func dispatchable(name []byte) bool {
	switch string(name) {
	case "query", "eval", "plot", "hist", "boxplot", "style", "info":
		return true
	}
	return bytes.HasPrefix(name, []byte("to_")) || bytes.HasPrefix(name, []byte("read_"))
}

// plainValue is the value of a string literal's text t without escapes
// or fields: the text between its quotes. It reports false for bytes and
// f-strings, whose values are no method names.
func plainValue(t []byte) ([]byte, bool) {
	q := bytes.IndexAny(t, `'"`)
	if q < 0 || bytes.ContainsAny(t[:q], "fFtTbB") {
		return nil, false
	}
	ql := 1
	if len(t) >= q+6 && t[q+1] == t[q] && t[q+2] == t[q] {
		ql = 3
	}
	if len(t) < q+2*ql {
		return nil, false
	}
	return t[q+ql : len(t)-ql], true
}

// isASCIIIdentifier reports whether b is a Python identifier in ASCII.
func isASCIIIdentifier(b []byte) bool {
	for i, c := range b {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

// isKey reports whether the string at the end of path is a dict key or a
// subscript's key: a column name, never called.
func isKey(path []pyFrame) bool {
	if len(path) < 2 {
		return false
	}
	self, parent := &path[len(path)-1].node, &path[len(path)-2]
	switch parent.kind {
	case pk.pair:
		k := parent.node.NamedChild(0)
		return k != nil && k.StartByte() == self.StartByte()
	case pk.subscript:
		v := parent.node.NamedChild(0)
		return v != nil && v.StartByte() != self.StartByte()
	}
	return false
}

// isDocstring reports whether the string at the end of path stands alone
// as a statement, as docstrings do. Such a string is never used, so it may
// say anything.
func isDocstring(path []pyFrame) bool {
	i := len(path) - 1
	if i >= 1 && path[i-1].kind == pk.expressionStatement {
		return true
	}
	return i >= 2 && path[i-1].kind == pk.concatenatedString && path[i-2].kind == pk.expressionStatement
}
