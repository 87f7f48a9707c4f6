package redact_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus/nexus/internal/infra/redact"
)

func TestURLShouldKeepOnlySchemeHostAndPort(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain base URL loses its path", "http://localhost:11434/v1", "http://localhost:11434"},
		{"userinfo dropped", "https://alice:s3cret@llm.example.com/v1", "https://llm.example.com"},
		{"query key dropped", "https://gw.example.com/openai?api-key=t0ken&x=1", "https://gw.example.com"},
		{"path token dropped", "https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com"},
		{"fragment dropped", "http://h.example/x#frag", "http://h.example"},
		{"IPv6 host and port kept", "http://[::1]:8080/v1?k=v", "http://[::1]:8080"},
		{"scheme lower-cased", "HTTPS://Example.com/x", "https://Example.com"},
		{"other schemes follow the same rule", "postgres://u:pw@db:5432/app?sslmode=off", "postgres://db:5432"},
		{"relative URL has no host", "/hooks?token=t0ken", redact.BadURL},
		{"no scheme", "llm.example.com/v1", redact.BadURL},
		{"opaque URL", "mailto:alice@example.com", redact.BadURL},
		{"unparsable", "http://alice:s3cret@[::1/x?token=t0ken", redact.BadURL},
		{"empty", "", redact.BadURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redact.URL(tt.in); got != tt.want {
				t.Fatalf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactShouldHideSecretsTokensAndURLParts(t *testing.T) {
	t.Parallel()
	r := redact.New("my-secret-key", "", "abc")
	tests := []struct{ name, in, want string }{
		{"configured key", "auth failed for my-secret-key!", "auth failed for [REDACTED]!"},
		{"too short a secret is ignored", "abc is not redacted", "abc is not redacted"},
		{"bearer token", "header was Bearer abc.def-ghi", "header was Bearer [REDACTED]"},
		{"openai style key", "Incorrect API key provided: sk-proj-abcdef123456", "Incorrect API key provided: [REDACTED]"},
		{"nothing secret", "upstream HTTP 500: boom", "upstream HTTP 500: boom"},
		{"sk- inside a word is no key", `column "task-manager" not found`, `column "task-manager" not found`},
		{"URL quoted by net/http", `Post "http://alice:s3cret@127.0.0.1:9/hooks/x?token=t0ken#frag": connection refused`,
			`Post "http://127.0.0.1:9": connection refused`},
		{"URL ending a sentence", "could not reach https://gw.example.com/v1?api-key=t0ken.", "could not reach https://gw.example.com."},
		{"URL in brackets", "(see http://h.example/a?k=t0ken), then retry", "(see http://h.example), then retry"},
		{"bracketed IPv6 URL", "dial http://[::1]:80/v1", "dial http://[::1]:80"},
		{"several URLs", "from http://a.example/x?k=1 to https://b.example/y?k=2", "from http://a.example to https://b.example"},
		{"secret inside a URL", "GET https://h.example/?key=my-secret-key failed", "GET https://h.example failed"},
		{"URL without a host", "read file:///etc/passwd", "read " + redact.BadURL},
		{"bare schemes name no address", "must start with http:// or https://, got x", "must start with http:// or https://, got x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := r.Redact(tt.in); got != tt.want {
				t.Fatalf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Code that knows no secrets still applies the URL and token policy.
func TestTextAndANilRedactorShouldApplyTheSamePolicy(t *testing.T) {
	t.Parallel()
	const in = "Bearer abcdef at http://u:p@h.example/x?k=v"
	const want = "Bearer [REDACTED] at http://h.example"
	var r *redact.Redactor
	if got := r.Redact(in); got != want {
		t.Errorf("nil Redactor: Redact = %q, want %q", got, want)
	}
	if got := redact.Text(in); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestScrubShouldBoundUpstreamText(t *testing.T) {
	t.Parallel()
	const key = "my-secret-key-0123456789"
	r := redact.New(key)
	cut := func(s string) string { return s + redact.Ellipsis }
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
		{"a token across the cut is redacted", strings.Repeat("a", 508) + " sk-" + strings.Repeat("Z", 1000),
			cut(strings.Repeat("a", 508) + " [RE")},
		{"a URL across the cut keeps only its host", strings.Repeat("a", 480) + " http://h.example/" + strings.Repeat("k", 1000),
			strings.Repeat("a", 480) + " http://h.example" + redact.Ellipsis},
		{"invalid UTF-8 becomes valid", "bad \xff\xfe byte", "bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := r.Scrub(tt.in)
			if got != tt.want {
				t.Fatalf("Scrub = %.80q… (%d runes), want %.80q… (%d runes)", got, utf8.RuneCountInString(got), tt.want, utf8.RuneCountInString(tt.want))
			}
			if !utf8.ValidString(got) || utf8.RuneCountInString(got) > redact.MaxRunes+1 {
				t.Fatalf("Scrub gave %d runes, valid UTF-8 %v", utf8.RuneCountInString(got), utf8.ValidString(got))
			}
		})
	}
}

func TestScrubShouldWorkWithoutARedactor(t *testing.T) {
	t.Parallel()
	var r *redact.Redactor
	if got := r.Scrub(strings.Repeat("é", 600)); got != strings.Repeat("é", 512)+redact.Ellipsis {
		t.Fatalf("Scrub on a nil Redactor = %.40q…", got)
	}
}

func TestAddShouldRedactASecretFromThenOn(t *testing.T) {
	t.Parallel()
	r := redact.New("first-secret")
	if got := r.Redact("key second-secret"); got != "key second-secret" {
		t.Fatalf("before Add: %q", got)
	}
	r.Add("second-secret", "ab") // too short to redact
	if got := r.Redact("first-secret second-secret ab"); got != redact.Placeholder+" "+redact.Placeholder+" ab" {
		t.Fatalf("after Add: %q", got)
	}
}
