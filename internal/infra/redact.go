package infra

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxReportedRunes bounds an LLM error description as it is stored and
// reported (a circuit's last_error, its events, transition reasons, logs
// and 503 bodies): an upstream can send an error message of megabytes.
const MaxReportedRunes = 512

// Ellipsis ends a description that Scrub cut short.
const Ellipsis = "…"

// Redactor removes secrets from text before it reaches a log, a health
// report or an error body. It knows the configured API key and also catches
// bearer tokens and OpenAI-style keys that an upstream might echo.
type Redactor struct {
	secrets []string
}

var tokenPattern = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._\-]{4,}|sk-[A-Za-z0-9_\-*]{6,}`)

// NewRedactor returns a Redactor for these secrets; empty ones are ignored.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// Redact returns s with every secret replaced by [REDACTED].
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "[REDACTED]")
	}
	return tokenPattern.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(strings.ToLower(m), "bearer") {
			return "Bearer [REDACTED]"
		}
		return "[REDACTED]"
	})
}

// Scrub makes upstream text safe to store and report: secrets redacted,
// then cut to MaxReportedRunes runes, always valid UTF-8, with Ellipsis
// appended when something was cut. Only a bounded prefix is ever
// redacted, so a 10 MB message costs no more than a short one; the prefix
// reaches far enough past the cut that a secret starting before it is
// still seen whole by Redact.
func (r *Redactor) Scrub(s string) string {
	margin := 64
	if r != nil {
		for _, secret := range r.secrets {
			margin = max(margin, utf8.RuneCountInString(secret))
		}
	}
	s, cutEarly := cutRunes(s, MaxReportedRunes+margin)
	s = r.Redact(s)
	s, cut := cutRunes(s, MaxReportedRunes)
	s = strings.ToValidUTF8(s, "\uFFFD")
	if cut || cutEarly {
		s += Ellipsis
	}
	return s
}

// cutRunes returns s's first n runes (an invalid byte counts as one) and
// whether anything was cut. It never splits a rune.
func cutRunes(s string, n int) (string, bool) {
	count := 0
	for i := range s {
		if count == n {
			return s[:i], true
		}
		count++
	}
	return s, false
}
