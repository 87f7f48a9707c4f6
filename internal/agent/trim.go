package agent

import (
	"strings"
	"unicode"
)

// trimmer passes a streamed answer on as strings.TrimSpace would leave it,
// piece by piece: leading whitespace is dropped, and whitespace is held
// back until more text follows it, so that trailing whitespace is never
// sent. The pieces sent join to exactly the trimmed answer.
type trimmer struct {
	emit func(string)
	// sent is everything emitted; held is whitespace awaiting more text.
	sent strings.Builder
	held strings.Builder
}

func (t *trimmer) write(piece string) {
	if t.sent.Len() == 0 && t.held.Len() == 0 {
		piece = strings.TrimLeftFunc(piece, unicode.IsSpace)
	}
	body := strings.TrimRightFunc(piece, unicode.IsSpace)
	if body == "" {
		if t.sent.Len() > 0 {
			t.held.WriteString(piece)
		}
		return
	}
	out := t.held.String() + body
	t.held.Reset()
	t.held.WriteString(piece[len(body):])
	t.sent.WriteString(out)
	t.emit(out)
}
