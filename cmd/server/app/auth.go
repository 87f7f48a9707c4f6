package app

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/ratelimit"
	"github.com/nexus/nexus/internal/infra/redact"
)

// HashKeyCommand is the subcommand that prints a key's SHA-256.
const HashKeyCommand = "hash-key"

// HashKey is `nexus hash-key`: it reads one API key from stdin (its first
// line, without the line ending) and prints the key's SHA-256 in hex, the
// value auth.keys[].sha256 takes. The key itself is never stored. main
// runs it instead of Run, which has no stdin.
func HashKey(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments: the key is read from stdin, e.g. printf %%s \"$KEY\" | nexus %s", HashKeyCommand, HashKeyCommand)
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: reading stdin: %w", HashKeyCommand, err)
	}
	key := strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(key) == "" {
		return fmt.Errorf("%s: no key on stdin", HashKeyCommand)
	}
	if key != strings.TrimSpace(key) {
		return fmt.Errorf("%s: the key starts or ends with white space, which clients would not send", HashKeyCommand)
	}
	sum := sha256.Sum256([]byte(key))
	_, err = fmt.Fprintln(stdout, hex.EncodeToString(sum[:]))
	return err
}

// securedConfig adds the keys of auth.keys_file to cfg and refuses an
// open API on a non-loopback address (config.CheckOpenAPI). loadConfig
// runs it, so that start-up and every reload apply both: a bad keys file
// is rejected like a bad config file, and the keys in force stay.
func securedConfig(cfg config.Config, configPath string) (config.Config, error) {
	cfg, err := cfg.WithKeysFile(configPath)
	if err != nil {
		return config.Config{}, err
	}
	if err := cfg.CheckOpenAPI(); err != nil {
		return config.Config{}, fmt.Errorf("server.addr %s: %w", cfg.Server.Addr, err)
	}
	return cfg, nil
}

// security is the API keys and the limits as Run wires them: the
// api.Access the API enforces, the counter store behind it (in this
// process, or in Redis), the token metrics, and the watch on the keys
// file.
type security struct {
	access *api.Access
	limits *metrics.Limits
	redis  *ratelimit.Redis
	log    *slog.Logger

	configPath string
	mu         sync.Mutex
	watchCtx   context.Context
	onChange   func()
	keysPath   string
	stopWatch  context.CancelFunc
}

// newSecurity builds the access control from cfg and keeps it in step
// with live: every configuration a reload installs brings its keys and
// limits (the Redis settings are restart-only: see keepRestartOnlyLimits).
// It logs a WARN when the API is open.
func newSecurity(cfg config.Config, live *config.Live, configPath string, log *slog.Logger, m *metrics.Metrics) (*security, error) {
	s := &security{limits: m.NewLimits(), log: log, configPath: configPath}
	var limiter api.Limiter = ratelimit.NewLocal(nil, 0)
	store := "local (each replica counts alone)"
	if u := cfg.RateLimit.RedisURL; u != "" {
		r, err := ratelimit.NewRedis(ratelimit.RedisOptions{URL: u, Timeout: cfg.RateLimit.RedisTimeout.Duration(),
			Logger: log, OnError: s.limits.ObserveRedisError})
		if err != nil {
			return nil, errors.New(redact.Text(err.Error()))
		}
		s.redis, limiter, store = r, r, "redis "+redact.URL(u)
	}
	s.access = api.NewAccess(api.AccessConfig{Limiter: limiter, OnRedisError: cfg.RateLimit.OnRedisError, Logger: log, Metrics: s.limits})
	s.access.Apply(cfg.Auth, cfg.RateLimit)
	live.OnSet(s.apply)
	rl := cfg.RateLimit
	log.Info("access control", slog.Any("keys", keySummary(cfg.Auth.Keys)), slog.String("keys_file", cfg.KeysFilePath(configPath)),
		slog.Bool("open_observability", cfg.Auth.OpenObservability),
		slog.Group("ratelimit", slog.Int("per_minute", rl.PerMinute), slog.Int("burst", rl.Burst), slog.Int("per_hour", rl.PerHour),
			slog.Float64("budget_window_seconds", float64(rl.BudgetWindowSeconds)), slog.String("store", store),
			slog.Float64("redis_timeout", float64(rl.RedisTimeout)), slog.String("on_redis_error", rl.OnRedisError)))
	if len(cfg.Auth.Keys) == 0 {
		log.Warn("the API is open: no API key is configured (auth.keys, auth.keys_file), so anyone who can reach the address may call every route; rate limits count per client address",
			slog.String("addr", cfg.Server.Addr), slog.Bool("allow_open_api", cfg.Server.AllowOpenAPI))
	}
	return s, nil
}

// keySummary lists each key's name and scopes, never its hash.
func keySummary(keys []config.APIKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name + "(" + strings.Join(k.Scopes, ",") + ")"
	}
	return out
}

// apply installs a reloaded configuration's keys and limits, and moves
// the watch when auth.keys_file names another file.
func (s *security) apply(cfg config.Config) {
	s.access.Apply(cfg.Auth, cfg.RateLimit)
	s.log.Info("access control reloaded", slog.Any("keys", keySummary(cfg.Auth.Keys)))
	if len(cfg.Auth.Keys) == 0 {
		s.log.Warn("the API is open: no API key is configured (auth.keys, auth.keys_file), so anyone who can reach the address may call every route",
			slog.String("addr", cfg.Server.Addr), slog.Bool("allow_open_api", cfg.Server.AllowOpenAPI))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchCtx != nil && cfg.KeysFilePath(s.configPath) != s.keysPath {
		s.watchLocked(cfg.KeysFilePath(s.configPath))
	}
}

// watchKeys watches auth.keys_file until ctx ends: a change asks for a
// reload (onChange), which reads the file again with the config file.
func (s *security) watchKeys(ctx context.Context, cfg config.Config, onChange func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchCtx, s.onChange = ctx, onChange
	s.watchLocked(cfg.KeysFilePath(s.configPath))
}

func (s *security) watchLocked(path string) {
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	s.keysPath = path
	if path == "" {
		return
	}
	ctx, cancel := context.WithCancel(s.watchCtx)
	if err := config.Watch(ctx, path, 100*time.Millisecond, s.log, s.onChange); err != nil {
		cancel()
		s.log.Warn("auth.keys_file watching is off; SIGHUP and the admin API still reload it", slog.String("path", path), slog.String("error", err.Error()))
		return
	}
	s.stopWatch = cancel
}

// usage is the circuits' OnUsage hook: it charges an attempt's tokens to
// the request its context belongs to (for the key's budget) and counts
// them by circuit, target and key.
func (s *security) usage(ctx context.Context, e circuit.UsageEvent) {
	n := e.PromptTokens + e.CompletionTokens
	key := api.RecordUsage(ctx, n)
	s.limits.ObserveTokens(e.Circuit, e.Provider, e.Model, key, n)
}

func (s *security) close() {
	if s.redis != nil {
		_ = s.redis.Close()
	}
}

// keepRestartOnlyLimits keeps the Redis settings in force until a restart:
// the counter store is built once. It warns about each one a reload
// changed.
func keepRestartOnlyLimits(log *slog.Logger, next *config.Config, cur config.Config) {
	n, c := &next.RateLimit, cur.RateLimit
	for _, k := range []struct {
		key     string
		changed bool
		keep    func()
	}{
		{"ratelimit.redis_url", n.RedisURL != c.RedisURL, func() { n.RedisURL = c.RedisURL }},
		{"ratelimit.redis_timeout", n.RedisTimeout != c.RedisTimeout, func() { n.RedisTimeout = c.RedisTimeout }},
		{"ratelimit.on_redis_error", n.OnRedisError != c.OnRedisError, func() { n.OnRedisError = c.OnRedisError }},
	} {
		if k.changed {
			log.Warn("restart required: config change ignored until then", slog.String("key", k.key))
			k.keep()
		}
	}
}
