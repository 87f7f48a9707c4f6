package infra_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus/nexus/internal/infra"
)

func TestScrubShouldBoundUpstreamText(t *testing.T) {
	t.Parallel()
	const key = "my-secret-key-0123456789"
	r := infra.NewRedactor(key)
	cut := func(s string) string { return s + infra.Ellipsis }
	tests := []struct {
		name, in, want string
	}{
		{"short text unchanged", "upstream HTTP 500: boom", "upstream HTTP 500: boom"},
		{"exactly the limit unchanged", strings.Repeat("a", 512), strings.Repeat("a", 512)},
		{"one rune over is cut", strings.Repeat("a", 513), cut(strings.Repeat("a", 512))},
		{"10 MB is cut", strings.Repeat("x", 10<<20), cut(strings.Repeat("x", 512))},
		{"multi-byte runes are counted as runes", strings.Repeat("日", 600), cut(strings.Repeat("日", 512))},
		{"a secret across the cut is redacted, not leaked in part", strings.Repeat("a", 500) + key + strings.Repeat("b", 100),
			cut(strings.Repeat("a", 500) + "[REDACTED]" + "bb")},
		{"a token across the cut is redacted", strings.Repeat("a", 508) + "sk-" + strings.Repeat("Z", 1000),
			cut(strings.Repeat("a", 508) + "[RED")},
		{"invalid UTF-8 becomes valid", "bad \xff\xfe byte", "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := r.Scrub(tt.in)
			if got != tt.want {
				t.Fatalf("Scrub = %.80q… (%d runes), want %.80q… (%d runes)", got, utf8.RuneCountInString(got), tt.want, utf8.RuneCountInString(tt.want))
			}
			if !utf8.ValidString(got) || utf8.RuneCountInString(got) > infra.MaxReportedRunes+1 {
				t.Fatalf("Scrub gave %d runes, valid UTF-8 %v", utf8.RuneCountInString(got), utf8.ValidString(got))
			}
		})
	}
}

func TestScrubShouldWorkWithoutARedactor(t *testing.T) {
	t.Parallel()
	var r *infra.Redactor
	if got := r.Scrub(strings.Repeat("é", 600)); got != strings.Repeat("é", 512)+infra.Ellipsis {
		t.Fatalf("Scrub on a nil Redactor = %.40q…", got)
	}
}
