package codegen

// The static review (review.go) is a tokenizer: it finds forbidden names
// but cannot tell whether the code parses. Syntax errors need a grammar, so
// Python is parsed here with tree-sitter's Python grammar.

import (
	"fmt"
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
	python "github.com/tree-sitter/tree-sitter-python/bindings/go"
)

// SyntaxError describes the first syntax error in Python code.
type SyntaxError struct {
	Line    int // 1-based
	Column  int // 1-based
	Message string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// CheckPythonSyntax parses code and returns its first ERROR or MISSING node
// as a *SyntaxError, or nil when it parses. A parser is made per call (it is
// cheap), so this is safe for concurrent use; parser and tree are closed to
// free their C memory.
func CheckPythonSyntax(code string) *SyntaxError {
	if strings.TrimSpace(code) == "" {
		return nil
	}
	parser := sitter.NewParser()
	defer parser.Close()
	if err := parser.SetLanguage(sitter.NewLanguage(python.Language())); err != nil {
		return &SyntaxError{Line: 1, Column: 1, Message: "python grammar unavailable: " + err.Error()}
	}
	src := []byte(code)
	tree := parser.Parse(src, nil)
	if tree == nil {
		return &SyntaxError{Line: 1, Column: 1, Message: "could not parse"}
	}
	defer tree.Close()
	root := tree.RootNode()
	if !root.HasError() {
		return nil
	}
	return firstError(root, src)
}

// firstError walks the tree in document order to the first node that is an
// error or was inserted as missing.
func firstError(n *sitter.Node, src []byte) *SyntaxError {
	pos := n.StartPosition()
	at := func(msg string) *SyntaxError {
		return &SyntaxError{Line: int(pos.Row) + 1, Column: int(pos.Column) + 1, Message: msg}
	}
	switch {
	case n.IsMissing():
		return at(fmt.Sprintf("missing %q", n.Kind()))
	case n.IsError():
		// An error node can hold the real culprit deeper down.
		for i := uint(0); i < n.ChildCount(); i++ {
			if c := n.Child(i); c != nil && (c.IsMissing() || c.IsError()) {
				return firstError(c, src)
			}
		}
		return at("invalid syntax near " + snippet(n.Utf8Text(src)))
	}
	for i := uint(0); i < n.ChildCount(); i++ {
		c := n.Child(i)
		if c != nil && (c.HasError() || c.IsMissing()) {
			if e := firstError(c, src); e != nil {
				return e
			}
		}
	}
	return nil
}

func snippet(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
