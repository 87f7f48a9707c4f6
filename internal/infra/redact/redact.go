// Package redact is Nexus's one routine for keeping secrets out of what it
// shows: logs, the health report and dashboard, API error bodies, alerts,
// and error text handed back to an LLM. Every place that writes text which
// may hold a URL, a key or a token passes it through here, so that all of
// them follow the same policy.
//
// # The URL policy
//
// A URL is shown as scheme://host[:port] and nothing more (see URL). Its
// userinfo, path, query and fragment are dropped, because each is where some
// real endpoint keeps a secret: a proxy's password in the userinfo, a
// gateway's ?api-key= in the query, a Slack or Discord webhook's token in
// the path. The host says which endpoint is meant; the whole URL is in the
// operator's own configuration.
//
// # Tokens
//
// Besides URLs, Redact replaces the secrets it was built with (the LLM API
// key, the admin token), "Bearer" tokens and OpenAI-style sk- keys that an
// upstream might echo.
//
// The package is a leaf: the adapters (alert, dataset) and infra all use it
// without importing each other.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Placeholder replaces a secret or token.
const Placeholder = "[REDACTED]"

// BadURL replaces a URL that has no host to show (a relative or an opaque
// URL, or one that does not parse).
const BadURL = "[REDACTED URL]"

// MaxRunes bounds a description as Scrub returns it: an upstream can send an
// error message of megabytes, and the description is stored and reported (a
// circuit's last_error, its events, transition reasons, logs, 503 bodies).
const MaxRunes = 512

// Ellipsis ends a description that Scrub cut short.
const Ellipsis = "…"

// URL returns raw reduced to scheme://host[:port], lower-cased scheme, as
// the package's URL policy says, or BadURL when raw has no scheme or host.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return BadURL
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

// urlPattern finds a URL in free text: a scheme, "://", then everything up
// to a space, a quote or an angle bracket (Go quotes the URL in a
// *url.Error). Trailing punctuation is handed back by maskURLs.
var urlPattern = regexp.MustCompile("(?i)\\b[a-z][a-z0-9+.\\-]*://[^\\s\"'`<>]+")

// tokenPattern finds bearer tokens and OpenAI-style keys, each starting a
// word, so that a column named "task-manager" in a DuckDB error survives.
var tokenPattern = regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9._\-]{4,}|\bsk-[A-Za-z0-9_\-*]{6,}`)

// Text applies the URL policy and the token patterns to s: every URL in it
// becomes scheme://host[:port], every bearer token and sk- key Placeholder.
// It is Redact without configured secrets, for code that knows none.
func Text(s string) string {
	s = urlPattern.ReplaceAllStringFunc(s, maskURL)
	return tokenPattern.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(strings.ToLower(m), "bearer") {
			return "Bearer " + Placeholder
		}
		return Placeholder
	})
}

// maskURL applies URL to a match of urlPattern, keeping outside it the
// punctuation that ends a sentence or closes a bracket opened before the
// URL ("(see http://h/x)."), which the pattern cannot tell from the URL. A
// bracket the URL opened itself, as in http://[::1]:80, stays.
func maskURL(m string) string {
	end := len(m)
	for end > 0 {
		c := m[end-1]
		if strings.IndexByte(".,;:!?", c) >= 0 {
			end--
			continue
		}
		if i := strings.IndexByte(")]}", c); i >= 0 &&
			strings.Count(m[:end], ")]}"[i:i+1]) > strings.Count(m[:end], "([{"[i:i+1]) {
			end--
			continue
		}
		break
	}
	if strings.HasSuffix(m[:end], "://") {
		// A bare scheme ("must start with http:// or https://") names
		// no address and holds nothing to hide.
		return m
	}
	return URL(m[:end]) + m[end:]
}

// Redactor redacts a set of secrets on top of Text; Add grows the set
// (a reload may bring a provider's new key). A nil *Redactor is valid and
// redacts as Text does.
type Redactor struct {
	// secrets is replaced whole by Add, never changed in place, so that
	// readers need no lock.
	secrets atomic.Pointer[[]string]
	mu      sync.Mutex // serializes Add
}

// New returns a Redactor for these secrets. Empty and very short ones (under
// four bytes) are ignored: replacing every "a" would garble the text and
// hide nothing.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add redacts these secrets too from now on, with the same rules as New.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next []string
	if cur := r.secrets.Load(); cur != nil {
		next = append(next, *cur...)
	}
	for _, s := range secrets {
		if len(s) >= 4 && !slices.Contains(next, s) {
			next = append(next, s)
		}
	}
	r.secrets.Store(&next)
}

func (r *Redactor) list() []string {
	if r == nil {
		return nil
	}
	if p := r.secrets.Load(); p != nil {
		return *p
	}
	return nil
}

// Redact returns s with every configured secret replaced by Placeholder,
// then the URL policy and token patterns applied (see Text).
func (r *Redactor) Redact(s string) string {
	for _, secret := range r.list() {
		s = strings.ReplaceAll(s, secret, Placeholder)
	}
	return Text(s)
}

// Scrub makes upstream text safe to store and report: redacted as Redact
// does, then cut to MaxRunes runes, always valid UTF-8, with Ellipsis
// appended when something was cut. Only a bounded prefix is ever redacted,
// so a 10 MB message costs no more than a short one; the prefix reaches far
// enough past the cut that a secret starting before it is still seen whole.
func (r *Redactor) Scrub(s string) string {
	margin := 64
	for _, secret := range r.list() {
		margin = max(margin, utf8.RuneCountInString(secret))
	}
	s, cutEarly := cutRunes(s, MaxRunes+margin)
	s = r.Redact(s)
	s, cut := cutRunes(s, MaxRunes)
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
