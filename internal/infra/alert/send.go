package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/nexus/nexus/internal/infra/httpx"
)

// maxDrainBytes is how much of a response body is read so that the
// connection can be reused; webhook replies are small.
const maxDrainBytes = 64 << 10

// attemptError is the outcome of one failed POST. Its text never contains the
// webhook's query string or userinfo.
type attemptError struct {
	status    int   // HTTP status, 0 when there was no response
	retryable bool  // 5xx, 429, timeouts and network errors
	err       error // cause when there was no response, already redacted
	// retryAfter is the wait a 429 or 503 asked for in Retry-After, measured
	// from when the response arrived; 0 when there was no usable hint.
	retryAfter time.Duration
}

func (e *attemptError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("webhook answered %d %s", e.status, http.StatusText(e.status))
}

func (e *attemptError) Unwrap() error { return e.err }

// newRetryPolicy retries every attemptError that is retryable, with doubling
// backoff, and gives up at once on the others. It returns the last attempt's
// error rather than retrypolicy.ExceededError so that logs show the cause.
//
// When the failed attempt carried a Retry-After, the next retry waits that
// long instead (see retryAfterDelay). The wait is failsafe's own timer, which
// also selects on the execution's context, so Close cancelling n.ctx ends it
// at once.
func newRetryPolicy(cfg Config) retrypolicy.RetryPolicy[any] {
	return retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return err != nil }).
		AbortIf(func(_ any, err error) bool {
			var ae *attemptError
			return errors.As(err, &ae) && !ae.retryable
		}).
		WithMaxAttempts(cfg.Attempts).
		WithBackoff(cfg.Backoff, max(cfg.Backoff, MaxBackoff)).
		WithDelayFunc(retryAfterDelay).
		ReturnLastFailure().
		Build()
}

// retryAfterDelay is the retry policy's DelayFunc: the last attempt's
// Retry-After capped at MaxRetryAfter, or -1, which makes failsafe-go fall
// back to the configured backoff. A retry that honours Retry-After does not
// advance the doubling: failsafe only tracks the delays it computed itself.
func retryAfterDelay(exec failsafe.ExecutionAttempt[any]) time.Duration {
	var ae *attemptError
	if errors.As(exec.LastError(), &ae) && ae.retryAfter > 0 {
		return min(ae.retryAfter, MaxRetryAfter)
	}
	return -1
}

// deliver sends ev with retries and calls OnSent or OnFail. It reports
// abandoned when Close cancelled delivery before an outcome was known, in
// which case no hook is called.
func (n *Notifier) deliver(ev Event) (abandoned bool) {
	body, err := json.Marshal(ev)
	if err != nil {
		n.log.Warn("alert: cannot encode event; giving up",
			slog.String("circuit", ev.Circuit), slog.String("error", err.Error()))
		n.fire(n.hooks.OnFail)
		return false
	}
	var (
		attempts  int
		delivered bool
	)
	err = failsafe.With(n.retry).WithContext(n.ctx).RunWithExecution(func(exec failsafe.Execution[any]) error {
		attempts = exec.Attempts()
		err := n.post(exec.Context(), body)
		delivered = err == nil
		return err
	})
	switch {
	case delivered:
		// Checked first: failsafe reports cancellation even when the attempt
		// that raced with Close succeeded.
		n.fire(n.hooks.OnSent)
		return false
	case n.ctx.Err() != nil:
		return true
	}
	status := 0
	var ae *attemptError
	if errors.As(err, &ae) {
		status = ae.status
	}
	n.log.Warn("alert: giving up on event",
		slog.String("circuit", ev.Circuit),
		slog.String("from", ev.From),
		slog.String("to", ev.To),
		slog.Int("status", status),
		slog.Int("attempts", attempts),
		slog.String("url", n.safeURL),
		slog.String("error", err.Error()))
	n.fire(n.hooks.OnFail)
	return false
}

// post makes one attempt, bounded by Config.Timeout, and classifies it: nil
// for 2xx, otherwise an *attemptError.
func (n *Notifier) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.target, bytes.NewReader(body))
	if err != nil {
		return &attemptError{err: n.hideURL(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nexus-alerts")
	resp, err := n.client.Do(req)
	if err != nil {
		return &attemptError{retryable: true, err: n.hideURL(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		// The two statuses for which RFC 9110 and RFC 6585 define Retry-After
		// as "come back then"; on other statuses it is ignored.
		return &attemptError{
			status:     code,
			retryable:  true,
			retryAfter: httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	case code >= 500:
		return &attemptError{status: code, retryable: true}
	default:
		return &attemptError{status: code}
	}
}

// hideURL replaces the URL that net/http quotes in its errors (query string
// included) with redact.URL's form, keeping the cause for errors.Is.
func (n *Notifier) hideURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, n.safeURL, ue.Err)
	}
	return err
}

func (n *Notifier) fire(hook func()) {
	if hook != nil {
		hook()
	}
}
