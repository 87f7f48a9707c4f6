package llm

import (
	"strings"
)

// fencedBlock is one Markdown fenced code block found in an LLM reply.
type fencedBlock struct {
	info string // the info string after the opening fence, trimmed
	body string // the raw lines between the fences
}

// ExtractFenced returns the code from an LLM reply. It picks, in order of
// preference:
//
//  1. the first fenced block (``` or ~~~) whose info string's first word
//     is one of tags (case-insensitive);
//  2. otherwise the first fenced block, whatever its info string;
//  3. otherwise the whole reply.
//
// A fence left open at the end of the reply runs to the end of the reply,
// because truncated LLM output is common. The result has its common
// indentation removed (blocks nested in Markdown lists stay valid Python)
// and surrounding whitespace trimmed. Line endings are normalized to "\n".
// It does no validation.
func ExtractFenced(reply string, tags []string) string {
	text := strings.ReplaceAll(reply, "\r\n", "\n")
	blocks := findFencedBlocks(text)
	for _, b := range blocks {
		if fenceNamesOneOf(b.info, tags) {
			return tidyCode(b.body)
		}
	}
	if len(blocks) > 0 {
		return tidyCode(blocks[0].body)
	}
	return tidyCode(text)
}

// findFencedBlocks returns the fenced code blocks of text in order. It
// follows CommonMark loosely: an opening fence is a line of at least three
// backticks or tildes (optionally indented) followed by an info string; the
// block ends at a line holding only the same fence character repeated at
// least as many times, or at the end of the text.
func findFencedBlocks(text string) []fencedBlock {
	lines := strings.Split(text, "\n")
	var blocks []fencedBlock
	for i := 0; i < len(lines); i++ {
		ch, n, info, ok := openingFence(lines[i])
		if !ok {
			continue
		}
		end := i + 1
		for end < len(lines) && !isClosingFence(lines[end], ch, n) {
			end++
		}
		blocks = append(blocks, fencedBlock{
			info: info,
			body: strings.Join(lines[i+1:end], "\n"),
		})
		i = end
	}
	return blocks
}

// openingFence reports whether line opens a fenced block, returning the
// fence character, the fence length and the info string.
func openingFence(line string) (ch byte, n int, info string, ok bool) {
	s := strings.TrimLeft(line, " \t")
	if len(s) < 3 || (s[0] != '`' && s[0] != '~') {
		return 0, 0, "", false
	}
	ch = s[0]
	for n < len(s) && s[n] == ch {
		n++
	}
	if n < 3 {
		return 0, 0, "", false
	}
	info = strings.TrimSpace(s[n:])
	// CommonMark: a backtick fence's info string cannot contain backticks;
	// this keeps inline spans such as ```x``` from opening a block.
	if ch == '`' && strings.ContainsRune(info, '`') {
		return 0, 0, "", false
	}
	return ch, n, info, true
}

// isClosingFence reports whether line closes a block opened by n fence
// characters ch.
func isClosingFence(line string, ch byte, n int) bool {
	s := strings.TrimSpace(line)
	if len(s) < n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != ch {
			return false
		}
	}
	return true
}

// fenceNamesOneOf reports whether the info string's first word is one of
// tags.
func fenceNamesOneOf(info string, tags []string) bool {
	fields := strings.Fields(info)
	if len(fields) == 0 {
		return false
	}
	tag := strings.ToLower(strings.Trim(fields[0], "{}."))
	for _, want := range tags {
		if tag == want {
			return true
		}
	}
	return false
}

// tidyCode removes the indentation common to all non-blank lines (like
// Python's textwrap.dedent), then trims surrounding whitespace.
func tidyCode(s string) string {
	lines := strings.Split(s, "\n")
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = indent, false
			continue
		}
		prefix = commonPrefix(prefix, indent)
	}
	if prefix != "" {
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(l, prefix)
		}
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// commonPrefix returns the longest common prefix of a and b.
func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return a[:i]
		}
	}
	return a[:n]
}
