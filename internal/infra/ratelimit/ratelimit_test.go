package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/ratelimit"
	"github.com/nexus/nexus/internal/infra/ratelimit/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a settable clock for Local.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	minute = ratelimit.Limit{Name: "minute", Rate: 60, Burst: 10, Period: time.Minute}
	hour   = ratelimit.Limit{Name: "hour", Rate: 1000, Burst: 1000, Period: time.Hour}
)

// store is what both stores offer.
type store interface {
	Allow(ctx context.Context, key string, limits ...ratelimit.Limit) (ratelimit.Decision, error)
	Spent(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error)
	Spend(ctx context.Context, key string, n int64, window time.Duration) error
}

func allow(t testing.TB, s store, key string, limits ...ratelimit.Limit) ratelimit.Decision {
	t.Helper()
	d, err := s.Allow(context.Background(), key, limits...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// burst sends n requests and returns how many were allowed and the last
// decision.
func burst(t testing.TB, s store, key string, n int, limits ...ratelimit.Limit) (int, ratelimit.Decision) {
	t.Helper()
	ok := 0
	var d ratelimit.Decision
	for range n {
		if d = allow(t, s, key, limits...); d.Allowed {
			ok++
		}
	}
	return ok, d
}

func TestLocalShouldAllowABurstThenOneEventPerInterval(t *testing.T) {
	t.Parallel()
	// Given 60 per minute with a burst of 10, and a stopped clock
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.NewLocal(c.now, 0)

	// When 11 requests arrive at once
	ok, last := burst(t, l, "k", 11, minute, hour)

	// Then 10 pass, and the 11th is told to come back in one second
	if ok != 10 || last.Allowed {
		t.Fatalf("allowed %d of 11, last %+v", ok, last)
	}
	if got := last.RetryAfter(); got != time.Second {
		t.Fatalf("RetryAfter = %v, want 1s", got)
	}
	st, _ := last.Tightest()
	if st.Limit.Name != "minute" || st.Remaining != 0 {
		t.Fatalf("tightest = %+v", st)
	}
	// And a refused request did not count: after the wait one passes, and
	// the hour window counted only the 10
	c.advance(time.Second)
	d := allow(t, l, "k", minute, hour)
	if !d.Allowed || d.States[1].Remaining != 1000-11 {
		t.Fatalf("after the wait: %+v", d)
	}
	// And another key has its own burst
	if ok, _ := burst(t, l, "other", 10, minute, hour); ok != 10 {
		t.Fatalf("other key allowed %d of 10", ok)
	}
}

func TestLocalShouldReportRemainingAndReset(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.NewLocal(c.now, 0)
	tests := []struct {
		name      string
		advance   time.Duration
		remaining int
		reset     time.Duration
	}{
		{name: "first", remaining: 9, reset: time.Second},
		{name: "second at once", remaining: 8, reset: 2 * time.Second},
		{name: "after 1.5 s", advance: 1500 * time.Millisecond, remaining: 8, reset: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		c.advance(tt.advance)
		d := allow(t, l, "k", minute)
		if st := d.States[0]; !d.Allowed || st.Remaining != tt.remaining || st.ResetAfter != tt.reset {
			t.Errorf("%s: %+v, want remaining %d reset %v", tt.name, st, tt.remaining, tt.reset)
		}
	}
}

func TestLocalShouldChargeNoLimitWhenAnyRefuses(t *testing.T) {
	t.Parallel()
	// Given an hour window of 3 and a generous minute window
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.NewLocal(c.now, 0)
	small := ratelimit.Limit{Name: "hour", Rate: 3, Burst: 3, Period: time.Hour}
	wide := ratelimit.Limit{Name: "minute", Rate: 600, Burst: 100, Period: time.Minute}
	// When 5 requests arrive
	ok, last := burst(t, l, "k", 5, wide, small)
	// Then 3 pass, the hour window refused, and the minute window was
	// charged only for those 3
	if ok != 3 || last.Allowed || last.States[1].RetryAfter <= 0 {
		t.Fatalf("allowed %d, last %+v", ok, last)
	}
	if d := allow(t, l, "k", wide); d.States[0].Remaining != 100-4 {
		t.Fatalf("minute window remaining %d, want 96", d.States[0].Remaining)
	}
}

func TestLocalBudgetShouldResetWithItsWindow(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(86400*20000+86000, 0)} // 400 s before a UTC midnight
	l := ratelimit.NewLocal(c.now, 0)
	ctx := context.Background()
	if err := l.Spend(ctx, "k", 120, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	_ = l.Spend(ctx, "k", 30, 24*time.Hour)
	spent, reset, _ := l.Spent(ctx, "k", 24*time.Hour)
	if spent != 150 || reset != 400*time.Second {
		t.Fatalf("spent %d, reset %v; want 150 and 400s (UTC midnight)", spent, reset)
	}
	if other, _, _ := l.Spent(ctx, "other", 24*time.Hour); other != 0 {
		t.Fatalf("another key spent %d", other)
	}
	c.advance(400 * time.Second)
	if spent, reset, _ = l.Spent(ctx, "k", 24*time.Hour); spent != 0 || reset != 24*time.Hour {
		t.Fatalf("after midnight: spent %d, reset %v", spent, reset)
	}
}

func TestLocalShouldForgetExpiredKeysPastItsBound(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := ratelimit.NewLocal(c.now, 100)
	// Given 100 keys that each made one request a while ago
	for i := range 100 {
		allow(t, l, string(rune('a'+i)), minute)
	}
	c.advance(time.Minute)
	// When 1000 new keys arrive, the old ones sweep out, and a swept key
	// starts afresh with a full burst
	for i := range 1000 {
		allow(t, l, "new"+string(rune(i)), minute)
	}
	if d := allow(t, l, "a", minute); d.States[0].Remaining != 9 {
		t.Fatalf("a swept key: %+v", d.States[0])
	}
}

// Against a real redis-server: the same answers as Local, shared by two
// clients as two replicas would share it.
func TestRedisShouldShareOneLimitBetweenClients(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL(), nil), newRedis(t, srv.URL(), nil)

	// When two clients send 8 requests each for one key, at once
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, s := range []*ratelimit.Redis{a, b} {
		wg.Go(func() {
			ok, _ := burst(t, s, "shared", 8, minute, hour)
			allowed.Add(int64(ok))
		})
	}
	wg.Wait()

	// Then the burst of 10 held across both
	if got := allowed.Load(); got != 10 {
		t.Fatalf("allowed %d across two clients, want the burst of 10", got)
	}
	d := allow(t, a, "shared", minute, hour)
	if d.Allowed || d.RetryAfter() <= 0 || d.RetryAfter() > time.Second {
		t.Fatalf("after the burst: %+v", d)
	}
}

func TestRedisBudgetShouldAddUpAcrossClients(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL(), nil), newRedis(t, srv.URL(), nil)
	ctx := context.Background()
	if err := a.Spend(ctx, "k", 100, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Spend(ctx, "k", 25, time.Hour); err != nil {
		t.Fatal(err)
	}
	spent, reset, err := b.Spent(ctx, "k", time.Hour)
	if err != nil || spent != 125 || reset <= 0 || reset > time.Hour {
		t.Fatalf("spent %d, reset %v, err %v", spent, reset, err)
	}
	if spent, _, _ := a.Spent(ctx, "k", 2*time.Hour); spent != 0 {
		t.Fatalf("another window size shares the counter: %d", spent)
	}
}

// A Redis that is gone fails fast, as ErrUnavailable, is counted, and is
// logged once per period, not once per call; back up, it serves again.
func TestRedisShouldFailFastWhileDownAndRecover(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var errs atomic.Int64
	r := newRedis(t, srv.URL(), func(string) { errs.Add(1) })
	allow(t, r, "k", minute)

	srv.Stop()
	start := time.Now()
	for range 20 {
		_, err := r.Allow(context.Background(), "k", minute)
		if !errors.Is(err, ratelimit.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}
	if _, _, err := r.Spent(context.Background(), "k", time.Hour); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("Spent err = %v", err)
	}
	if took := time.Since(start); took > 21*200*time.Millisecond {
		t.Fatalf("21 calls to a stopped Redis took %v", took)
	}
	if errs.Load() != 21 {
		t.Fatalf("OnError told of %d failures, want 21", errs.Load())
	}

	srv.Restart()
	eventually(t, func() bool { _, err := r.Allow(context.Background(), "k", minute); return err == nil })
}

// A Redis that accepts connections but never answers costs each call no
// more than the timeout.
func TestRedisShouldNotWaitPastItsTimeout(t *testing.T) {
	t.Parallel()
	l := blackhole(t)
	r, err := ratelimit.NewRedis(ratelimit.RedisOptions{URL: "redis://" + l + "/0", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	_, err = r.Allow(context.Background(), "k", minute)
	if took := time.Since(start); !errors.Is(err, ratelimit.ErrUnavailable) || took > time.Second {
		t.Fatalf("err %v after %v", err, took)
	}
}

func newRedis(t testing.TB, url string, onError func(string)) *ratelimit.Redis {
	t.Helper()
	r, err := ratelimit.NewRedis(ratelimit.RedisOptions{URL: url, Timeout: 200 * time.Millisecond, OnError: onError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
