package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// keyPrefix starts every key Nexus writes, so that a Redis shared with
// other programs keeps Nexus's keys apart.
const keyPrefix = "nexus:"

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db], rediss:// for TLS
	// or unix:///path.
	URL string
	// Timeout bounds every call: dialling, writing, reading, waiting for
	// a pooled connection. Past it the call fails with ErrUnavailable.
	Timeout time.Duration
	// Logger is told, at most once per LogEvery, that Redis is failing,
	// with how many calls failed since the last such line.
	Logger *slog.Logger
	// LogEvery spaces the failure lines; 10 s when 0.
	LogEvery time.Duration
	// OnError, if not nil, is told of every failed call, by operation:
	// "limit", "spent" or "spend".
	OnError func(op string)
}

// Redis keeps the counters in Redis, so that every replica pointed at the
// same server shares them. Request limits use redis_rate's GCRA script,
// which reads Redis's own clock, so replicas whose clocks differ still
// agree; budgets are INCRBY counters that expire with their window. Every
// call has Timeout and no retry: a Redis that is down or slow costs a
// request at most Timeout per call, and the caller decides what an
// ErrUnavailable means.
type Redis struct {
	rdb     *redis.Client
	limiter *redis_rate.Limiter
	timeout time.Duration
	onError func(string)

	log      *slog.Logger
	logEvery time.Duration
	mu       sync.Mutex
	failed   int // failures since the last log line
	loggedAt time.Time
}

// NewRedis connects lazily: it only checks the URL, so that a Redis down
// at start-up does not stop Nexus (its requests then go as
// on_redis_error says).
func NewRedis(o RedisOptions) (*Redis, error) {
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = o.Timeout, o.Timeout, o.Timeout, o.Timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1   // a retry would double the time a request waits
	opts.DialerRetries = 1 // likewise; go-redis then fails dials fast until a background probe succeeds
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 10 * time.Second
	}
	rdb := redis.NewClient(opts)
	return &Redis{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), timeout: o.Timeout, onError: o.OnError,
		log: o.Logger, logEvery: o.LogEvery}, nil
}

// Close closes the connection pool.
func (r *Redis) Close() error { return r.rdb.Close() }

// Allow decides one request of key under every limit, in order, one
// Redis call per limit. A limit that refuses stops the walk, so that
// later limits are not charged; an earlier one that allowed has been
// charged, which is why callers put the limit most likely to refuse (the
// shortest window) first.
func (r *Redis) Allow(ctx context.Context, key string, limits ...Limit) (Decision, error) {
	d := Decision{Allowed: true, States: make([]State, 0, len(limits))}
	for _, l := range limits {
		res, err := r.allowOne(ctx, key, l)
		if err != nil {
			return Decision{}, r.fail("limit", err)
		}
		st := State{Limit: l, Remaining: res.Remaining, ResetAfter: max(res.ResetAfter, 0)}
		if res.Allowed == 0 {
			st.RetryAfter = max(res.RetryAfter, time.Millisecond)
			d.Allowed = false
		}
		d.States = append(d.States, st)
		if !d.Allowed {
			break
		}
	}
	return d, nil
}

func (r *Redis) allowOne(ctx context.Context, key string, l Limit) (*redis_rate.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.limiter.Allow(ctx, keyPrefix+l.Name+":"+key, redis_rate.Limit{Rate: l.Rate, Burst: l.Burst, Period: l.Period})
}

// budgetKey names key's counter for window idx.
func budgetKey(key string, window time.Duration, idx int64) string {
	return keyPrefix + "budget:" + strconv.FormatInt(int64(window/time.Second), 10) + ":" + strconv.FormatInt(idx, 10) + ":" + key
}

// Spent returns the tokens key spent in the budget window holding now
// (by this machine's clock), and how long until that window ends.
func (r *Redis) Spent(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	idx, reset := windowOf(time.Now(), window)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.rdb.Get(ctx, budgetKey(key, window, idx)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, reset, nil
	}
	if err != nil {
		return 0, reset, r.fail("spent", err)
	}
	return n, reset, nil
}

// Spend adds n tokens to key's current budget window: INCRBY and EXPIRE
// in one round trip; the counter outlives its window by a minute, for
// clocks that differ a little between replicas.
func (r *Redis) Spend(ctx context.Context, key string, n int64, window time.Duration) error {
	idx, reset := windowOf(time.Now(), window)
	k := budgetKey(key, window, idx)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, k, n)
		p.Expire(ctx, k, reset+time.Minute)
		return nil
	})
	if err != nil {
		return r.fail("spend", err)
	}
	return nil
}

// fail counts and, at most once per logEvery, logs a failed call, and
// wraps its error in ErrUnavailable.
func (r *Redis) fail(op string, err error) error {
	if r.onError != nil {
		r.onError(op)
	}
	r.mu.Lock()
	r.failed++
	now := time.Now()
	var failed int
	if now.Sub(r.loggedAt) >= r.logEvery {
		failed, r.failed, r.loggedAt = r.failed, 0, now
	}
	r.mu.Unlock()
	if failed > 0 {
		r.log.Warn("rate limiter: Redis call failed", slog.String("op", op), slog.String("error", err.Error()),
			slog.Int("failed_calls", failed), slog.Duration("next_report_in", r.logEvery))
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}
