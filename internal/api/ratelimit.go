package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/ratelimit"
)

// chargeTimeout bounds charging a finished request's tokens, which
// runs after its own context may have ended.
const chargeTimeout = time.Second

// limit counts the request against its caller's rate limits: per key, or
// per client address while the API is open. Every answer of a limited
// route carries the limits in the IETF RateLimit-Policy and RateLimit
// fields (draft-ietf-httpapi-ratelimit-headers) and in the older
// X-RateLimit-Limit, -Remaining and -Reset; a refusal is 429 rate_limited
// with Retry-After.
func (a *Access) limit(c echo.Context, st *accessState, cl *caller) error {
	limits, who := st.anonymous, "ip:"+c.RealIP()
	if cl.key != nil {
		limits, who = cl.key.limits, "key:"+cl.key.Name
	}
	if a.limiter == nil || len(limits) == 0 {
		return nil
	}
	d, err := a.limiter.Allow(c.Request().Context(), who, limits...)
	if err != nil {
		return a.storeFailed(c, "rate limit", err)
	}
	setRateLimitHeaders(c.Response().Header(), limits, d)
	if d.Allowed {
		return nil
	}
	a.refused("rate_limited")
	wait := d.RetryAfter()
	setRetryAfter(c, wait)
	tight, _ := d.Tightest()
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: fmt.Sprintf("rate limit of %s exceeded; retry in %d s", policyText(tight.Limit), ceilSeconds(wait))}
}

// storeFailed decides a request whose counters could not be read, as
// ratelimit.on_redis_error says: through, unlimited (allow), or 503
// (deny). The store has logged and counted the failure.
func (a *Access) storeFailed(c echo.Context, what string, err error) error {
	if a.failOpen {
		return nil
	}
	a.refused("store_unavailable")
	setRetryAfter(c, time.Second)
	if !errors.Is(err, ratelimit.ErrUnavailable) {
		a.log.Error("rate limiter failed", slog.String("error", err.Error()))
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: "rate_limiter_unavailable",
		Message: fmt.Sprintf("the %s cannot be checked now (the shared counter store is unavailable) and ratelimit.on_redis_error is deny; retry shortly", what)}
}

// checkBudget refuses a request of a key whose token budget is spent, with
// 429 budget_exceeded and Retry-After to the end of the window. The
// request that crosses the budget finishes: budgets are checked before a
// request and charged after it.
func (a *Access) checkBudget(c echo.Context, st *accessState, cl *caller) error {
	if a.limiter == nil || cl.key == nil || cl.key.TokenBudget <= 0 {
		return nil
	}
	spent, reset, err := a.limiter.Spent(c.Request().Context(), "key:"+cl.key.Name, st.budgetWindow)
	if err != nil {
		return a.storeFailed(c, "token budget", err)
	}
	if spent < cl.key.TokenBudget {
		return nil
	}
	a.refused("budget_exceeded")
	setRetryAfter(c, reset)
	return &Error{Status: http.StatusTooManyRequests, Code: "budget_exceeded",
		Message: fmt.Sprintf("this API key's token budget of %d per %s is spent (%d used); it renews in %d s",
			cl.key.TokenBudget, windowText(st.budgetWindow), spent, ceilSeconds(reset))}
}

// charge adds the tokens the request spent to its key's budget, once the
// handler is done; a key without a budget is not charged.
func (a *Access) charge(c echo.Context, st *accessState, cl *caller) {
	n := cl.meter.Load()
	if a.limiter == nil || cl.key == nil || cl.key.TokenBudget <= 0 || n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), chargeTimeout)
	defer cancel()
	if err := a.limiter.Spend(ctx, "key:"+cl.key.Name, n, st.budgetWindow); err != nil && !errors.Is(err, ratelimit.ErrUnavailable) {
		a.log.Error("token budget charge failed", slog.String("key", cl.key.Name), slog.String("error", err.Error()))
	}
}

// setRateLimitHeaders writes the limits and the state of the tightest one.
func setRateLimitHeaders(h http.Header, limits []ratelimit.Limit, d ratelimit.Decision) {
	tight, ok := d.Tightest()
	if !ok {
		return
	}
	policies := make([]string, len(limits))
	for i, l := range limits {
		policies[i] = fmt.Sprintf("%q;q=%d;w=%d", l.Name, l.Rate, int64(l.Period/time.Second))
	}
	reset := tight.ResetAfter
	if tight.RetryAfter > 0 {
		reset = tight.RetryAfter
	}
	h.Set("RateLimit-Policy", strings.Join(policies, ", "))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", tight.Limit.Name, tight.Remaining, ceilSeconds(reset)))
	h.Set("X-RateLimit-Limit", strconv.Itoa(tight.Limit.Rate))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(tight.Remaining))
	h.Set("X-RateLimit-Reset", strconv.Itoa(ceilSeconds(reset)))
}

func setRetryAfter(c echo.Context, d time.Duration) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(ceilSeconds(d), 1)))
}

// ceilSeconds rounds up to whole seconds.
func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

func policyText(l ratelimit.Limit) string {
	return fmt.Sprintf("%d per %s (burst %d)", l.Rate, windowText(l.Period), l.Burst)
}

func windowText(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day (UTC)"
	}
	return d.String()
}
