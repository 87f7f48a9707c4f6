package infra

import (
	"regexp"
	"strings"
)

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
