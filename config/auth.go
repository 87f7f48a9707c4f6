package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Scopes a key may hold. ScopeAdmin also opens the admin API and every
// tenant's datasets.
const (
	ScopeAnalyze       = "analyze"
	ScopeGenerate      = "generate"
	ScopeDatasetsRead  = "datasets:read"
	ScopeDatasetsWrite = "datasets:write"
	ScopeSources       = "sources"
	ScopeObserve       = "observe"
	ScopeAdmin         = "admin"
)

// Scopes lists every scope, in the order the README's table gives them.
func Scopes() []string {
	return []string{ScopeAnalyze, ScopeGenerate, ScopeDatasetsRead, ScopeDatasetsWrite, ScopeSources, ScopeObserve, ScopeAdmin}
}

// What Redis errors decide, under ratelimit.on_redis_error.
const (
	OnRedisErrorAllow = "allow"
	OnRedisErrorDeny  = "deny"
)

// keyName is what an API key's name must match: it becomes a metric label
// and a dataset's owner, so it is short and plain.
var keyName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// Auth configures API keys. With no key at all (neither here nor in
// KeysFile) the API is open, as it was before keys existed.
type Auth struct {
	// Keys are the API keys, each stored as the SHA-256 of the key; the
	// key itself never appears in the config. Default: none.
	Keys []APIKey `json:"keys"`
	// KeysFile names a JSON file holding more keys, a list of the same
	// objects; it is watched, and a change reloads the configuration. A
	// relative path is relative to the config file's directory. Names
	// must be unique across Keys and the file. Default: none.
	KeysFile string `json:"keys_file"`
	// OpenObservability leaves GET /api/health/status and /metrics open
	// when keys exist; otherwise they need the observe scope.
	OpenObservability bool `json:"open_observability"`
}

// APIKey is one API key: its name (a tenant: the owner of the datasets it
// creates), the SHA-256 of the key in hex (`nexus hash-key` prints it),
// its scopes and its optional limits.
type APIKey struct {
	Name   string   `json:"name"`
	SHA256 string   `json:"sha256"`
	Scopes []string `json:"scopes"`
	// RateLimit overrides the ratelimit section's limits for this key,
	// field by field; nil keeps them all.
	RateLimit *KeyRateLimit `json:"rate_limit,omitempty"`
	// TokenBudget caps the LLM tokens (prompt plus completion, as the
	// upstream reports them) the key may spend per budget window (a UTC
	// day by default); 0 means no budget.
	TokenBudget int64 `json:"token_budget,omitempty"`
	// Sources limits the configured sources the key may use; empty means
	// all of them (given the sources scope).
	Sources []string `json:"sources,omitempty"`
}

// HasScope reports whether the key holds scope.
func (k APIKey) HasScope(scope string) bool { return slices.Contains(k.Scopes, scope) }

// KeyRateLimit overrides the rate limit of one key. A field left out keeps
// the ratelimit section's value; 0 turns that window off for the key.
type KeyRateLimit struct {
	PerMinute *int `json:"per_minute,omitempty"`
	Burst     *int `json:"burst,omitempty"`
	PerHour   *int `json:"per_hour,omitempty"`
}

// RateLimit configures the request limits and token budgets. The limits
// apply to /analyze, /generate, /datasets and its sub-routes (and
// /sources), per key, or per client address when no key is configured.
type RateLimit struct {
	// PerMinute requests per minute, with Burst of them at once; 0 turns
	// the minute window off. Default 60.
	PerMinute int `json:"per_minute"`
	// Burst is how many requests may arrive at once within PerMinute.
	// Default 10.
	Burst int `json:"burst"`
	// PerHour requests per hour; 0 turns the hour window off. Default 1000.
	PerHour int `json:"per_hour"`
	// BudgetWindowSeconds is the token budgets' window, aligned to the
	// Unix epoch: 86400, the default, is a UTC day.
	BudgetWindowSeconds Seconds `json:"budget_window_seconds"`
	// RedisURL, when set, keeps every counter in Redis (redis:// or
	// rediss://), so that all replicas enforce one limit; empty keeps them
	// in this process. Restart-only.
	RedisURL string `json:"redis_url"`
	// RedisTimeout bounds every Redis call, in seconds. Default 0.05.
	// Restart-only.
	RedisTimeout Seconds `json:"redis_timeout"`
	// OnRedisError decides a request when Redis fails or is too slow:
	// "allow" (the default) lets it through unlimited, "deny" answers 503.
	// Restart-only.
	OnRedisError string `json:"on_redis_error"`
}

// Window limits of one key after its overrides; 0 means the window is off.
type Window struct {
	PerMinute, Burst, PerHour int
}

// For returns k's limits: the section's, overridden field by field by the
// key's rate_limit.
func (r RateLimit) For(k *APIKey) Window {
	w := Window{PerMinute: r.PerMinute, Burst: r.Burst, PerHour: r.PerHour}
	if k == nil || k.RateLimit == nil {
		return w
	}
	if v := k.RateLimit.PerMinute; v != nil {
		w.PerMinute = *v
	}
	if v := k.RateLimit.Burst; v != nil {
		w.Burst = *v
	}
	if v := k.RateLimit.PerHour; v != nil {
		w.PerHour = *v
	}
	return w
}

func defaultAuth() Auth { return Auth{Keys: []APIKey{}} }

func defaultRateLimit() RateLimit {
	return RateLimit{PerMinute: 60, Burst: 10, PerHour: 1000, BudgetWindowSeconds: 86400,
		RedisTimeout: 0.05, OnRedisError: OnRedisErrorAllow}
}

// validateAuth checks the auth and ratelimit sections and
// server.allow_open_api's condition. Keys from auth.keys_file are checked
// when the file is read (WithKeysFile).
func (c Config) validateAuth() []error {
	var errs []error
	errs = append(errs, validateKeys("auth.keys", c.Auth.Keys, map[string]string{})...)
	r := c.RateLimit
	bad := func(path, msg string, got any) { errs = append(errs, fmt.Errorf("%s: %s, got %v", path, msg, got)) }
	if r.PerMinute < 0 {
		bad("ratelimit.per_minute", "must be >= 0 (0: no minute window)", r.PerMinute)
	}
	if r.PerMinute > 0 && r.Burst < 1 {
		bad("ratelimit.burst", "must be >= 1 while per_minute is set", r.Burst)
	}
	if r.Burst < 0 {
		bad("ratelimit.burst", "must be >= 0", r.Burst)
	}
	if r.PerHour < 0 {
		bad("ratelimit.per_hour", "must be >= 0 (0: no hour window)", r.PerHour)
	}
	if !(r.BudgetWindowSeconds >= 1 && r.BudgetWindowSeconds <= 31*maxSeconds) || r.BudgetWindowSeconds != Seconds(int64(r.BudgetWindowSeconds)) {
		bad("ratelimit.budget_window_seconds", "must be a whole number of seconds from 1 to 2678400", float64(r.BudgetWindowSeconds))
	}
	if u := r.RedisURL; u != "" && !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") && !strings.HasPrefix(u, "unix://") {
		errs = append(errs, errors.New("ratelimit.redis_url: must start with redis://, rediss:// or unix://"))
	}
	if !(r.RedisTimeout >= minSeconds && r.RedisTimeout <= 10) {
		bad("ratelimit.redis_timeout", "must be between 0.001 and 10 seconds", float64(r.RedisTimeout))
	}
	if r.OnRedisError != OnRedisErrorAllow && r.OnRedisError != OnRedisErrorDeny {
		bad("ratelimit.on_redis_error", `must be "allow" or "deny"`, fmt.Sprintf("%q", r.OnRedisError))
	}
	return errs
}

// validateKeys checks keys at path; seen maps the names met so far to
// their paths, so that names are unique across auth.keys and the keys
// file.
func validateKeys(path string, keys []APIKey, seen map[string]string) []error {
	var errs []error
	for i, k := range keys {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !keyName.MatchString(k.Name):
			errs = append(errs, fmt.Errorf("%s.name: must match %s, got %q", p, keyName, k.Name))
		case seen[k.Name] != "":
			errs = append(errs, fmt.Errorf("%s.name: %q is also the name of %s: names must be unique", p, k.Name, seen[k.Name]))
		default:
			seen[k.Name] = p
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("%s.sha256: must be the 64 hex digits of the key's SHA-256 (nexus hash-key prints them)", p))
		}
		if len(k.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("%s.scopes: must list at least one scope (known: %s)", p, strings.Join(Scopes(), ", ")))
		}
		for j, s := range k.Scopes {
			if !slices.Contains(Scopes(), s) {
				errs = append(errs, fmt.Errorf("%s.scopes[%d]: unknown scope %q (known: %s)", p, j, s, strings.Join(Scopes(), ", ")))
			}
		}
		if rl := k.RateLimit; rl != nil {
			for _, f := range []struct {
				name string
				v    *int
			}{{"per_minute", rl.PerMinute}, {"burst", rl.Burst}, {"per_hour", rl.PerHour}} {
				if f.v != nil && *f.v < 0 {
					errs = append(errs, fmt.Errorf("%s.rate_limit.%s: must be >= 0, got %d", p, f.name, *f.v))
				}
			}
		}
		if k.TokenBudget < 0 {
			errs = append(errs, fmt.Errorf("%s.token_budget: must be >= 0 (0: no budget), got %d", p, k.TokenBudget))
		}
		for j, s := range k.Sources {
			if !sourceName.MatchString(s) {
				errs = append(errs, fmt.Errorf("%s.sources[%d]: %q is not a source name", p, j, s))
			}
		}
	}
	return errs
}

// WithKeysFile returns c with the keys of auth.keys_file appended to
// auth.keys; c itself when no file is named. configPath is the config
// file's path, which a relative keys_file is resolved against. Every
// problem names its path in the file (auth.keys_file[i].name) and the
// file; a key's rate limit must also be valid for the section's limits.
func (c Config) WithKeysFile(configPath string) (Config, error) {
	path := c.KeysFilePath(configPath)
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("auth.keys_file: %w", err)
	}
	var keys []APIKey
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&keys); err != nil {
		return Config{}, fmt.Errorf("auth.keys_file %s: must be a JSON list of {name, sha256, scopes, rate_limit, token_budget, sources}: %v", path, err)
	}
	seen := map[string]string{}
	for i, k := range c.Auth.Keys {
		seen[k.Name] = fmt.Sprintf("auth.keys[%d]", i)
	}
	if errs := validateKeys("auth.keys_file", keys, seen); len(errs) > 0 {
		return Config{}, fmt.Errorf("auth.keys_file %s:\n%w", path, errors.Join(errs...))
	}
	out := c
	out.Auth.Keys = append(slices.Clone(c.Auth.Keys), keys...)
	return out, nil
}

// KeysFilePath is auth.keys_file resolved against the config file's
// directory; "" when none is named.
func (c Config) KeysFilePath(configPath string) string {
	p := c.Auth.KeysFile
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configPath), p)
}

// ErrOpenAPI is the start-up refusal to serve an API without keys on an
// address that other machines can reach.
var ErrOpenAPI = errors.New("no API keys are configured (auth.keys, auth.keys_file) and server.addr is not a loopback address: anyone who can reach it could use every route; add keys, listen on 127.0.0.1, or set server.allow_open_api: true")

// CheckOpenAPI refuses an open API (no keys) on a non-loopback address
// unless server.allow_open_api is set. An address without a host (":8080")
// listens on every interface and counts as non-loopback; "localhost" is
// loopback.
func (c Config) CheckOpenAPI() error {
	if len(c.Auth.Keys) > 0 || c.Server.AllowOpenAPI || IsLoopback(c.Server.Addr) {
		return nil
	}
	return ErrOpenAPI
}

// IsLoopback reports whether the listen address addr reaches this machine
// only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
