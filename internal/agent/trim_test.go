package agent

import (
	"strings"
	"testing"
)

func TestTrimmedPiecesShouldJoinToTheTrimmedAnswer(t *testing.T) {
	t.Parallel()
	cases := [][]string{
		{"Hello", " world"},
		{"\n\n", "  Hello", " ", "", "world", "\n", " \n"},
		{" ", "\t"},
		{"a\n\nb", "  ", "c  "},
		{"é ", "ü\u00a0", "x"},
	}
	for _, pieces := range cases {
		var emitted []string
		tr := &trimmer{emit: func(s string) { emitted = append(emitted, s) }}
		for _, p := range pieces {
			tr.write(p)
		}
		want := strings.TrimSpace(strings.Join(pieces, ""))
		if got := strings.Join(emitted, ""); got != want || tr.sent.String() != want {
			t.Errorf("pieces %q: emitted %q (sent %q), want %q", pieces, got, tr.sent.String(), want)
		}
		for _, e := range emitted {
			if e == "" {
				t.Errorf("pieces %q: an empty piece was emitted", pieces)
			}
		}
	}
}
