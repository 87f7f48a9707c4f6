package codegen

import (
	"bytes"
	"errors"
	"strings"

	sitter "github.com/tree-sitter/go-tree-sitter"
	python "github.com/tree-sitter/tree-sitter-python/bindings/go"
)

// pythonLanguage is tree-sitter's Python grammar. It wraps static C data,
// so it is built once and shared; nothing ever changes it.
var pythonLanguage = sitter.NewLanguage(python.Language())

// maxIdleParsers bounds the parsers kept between parses. A burst of more
// concurrent parses than this builds extra parsers and closes them after
// use, so the C memory held at rest stays small and bounded.
const maxIdleParsers = 16

// pythonParsers holds idle parsers with the Python grammar already set.
//
// It is package state, against our habit, because a parser is costly to
// build (it was about a sixth of a request's CPU time) and holds no
// request data between parses. A buffered channel rather than a sync.Pool:
// a sync.Pool drops idle items at any GC without closing them, and a
// tree-sitter parser lives in C memory that only Close frees.
var pythonParsers = make(chan *sitter.Parser, maxIdleParsers)

// errNoParse reports that tree-sitter returned no tree, which it does only
// when a parse is cancelled or times out; neither is used here.
var errNoParse = errors.New("tree-sitter returned no tree")

// parsePython parses src, which must come from pythonSource. The caller
// must Close the tree. It is safe for concurrent use.
func parsePython(src []byte) (*sitter.Tree, error) {
	var p *sitter.Parser
	select {
	case p = <-pythonParsers:
	default:
		p = sitter.NewParser()
		if err := p.SetLanguage(pythonLanguage); err != nil {
			// Only a grammar built for an ABI this binding does not
			// support gets here, which every test in this package shows.
			p.Close()
			return nil, err
		}
	}
	tree := p.Parse(src, nil)
	if tree == nil {
		// A parser that gave up may hold a half-done parse: never reuse it.
		p.Close()
		return nil, errNoParse
	}
	select {
	case pythonParsers <- p:
	default:
		p.Close()
	}
	return tree, nil
}

// pythonSource returns code as CPython reads it: without a leading
// byte-order mark, and with "\r\n" and a lone "\r" as "\n". Python ends a
// line at a lone "\r"; without this a "# comment\reval(...)" would hide
// code in a comment from a parser that does not. Line numbers stay the
// same.
func pythonSource(code string) []byte {
	code = strings.TrimPrefix(code, "\ufeff")
	src := []byte(code)
	if !strings.Contains(code, "\r") {
		return src
	}
	src = bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(src, []byte("\r"), []byte("\n"))
}
