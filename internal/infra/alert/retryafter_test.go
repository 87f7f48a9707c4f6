package alert_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/alert"
)

// reply is one canned webhook answer.
type reply struct {
	code       int
	retryAfter string // Retry-After header; "" sends none
}

// answers answers attempt n with replies[n-1], and 200 beyond the list.
func answers(replies ...reply) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, n int) {
		if n > len(replies) {
			w.WriteHeader(http.StatusOK)
			return
		}
		if v := replies[n-1].retryAfter; v != "" {
			w.Header().Set("Retry-After", v)
		}
		w.WriteHeader(replies[n-1].code)
	}
}

func TestRetryAfterSetsTheNextRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		replies   []reply
		wantGaps  []time.Duration // minimum gap before attempts 2, 3, ...
		wantTries int
	}{
		{
			name:      "429 with delay-seconds",
			replies:   []reply{{429, "0.3"}},
			wantGaps:  []time.Duration{300 * time.Millisecond},
			wantTries: 2,
		},
		{
			name:      "503 with delay-seconds",
			replies:   []reply{{503, "0.3"}},
			wantGaps:  []time.Duration{300 * time.Millisecond},
			wantTries: 2,
		},
		{
			name:      "each retry follows its own answer",
			replies:   []reply{{429, "0.2"}, {503, "0.3"}},
			wantGaps:  []time.Duration{200 * time.Millisecond, 300 * time.Millisecond},
			wantTries: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a webhook that asks for a wait far longer than the backoff
			wh := mustWebhook(t, answers(tt.replies...))
			var c counts
			n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Attempts: 3, Backoff: 10 * time.Millisecond}, wh, nil, c.hooks())

			// When an event is notified
			n.Notify(event("llm"))

			// Then it is delivered, each retry arriving no earlier than the
			// previous answer's Retry-After asked
			waitFor(t, "event sent", func() bool { return c.sent.Load() == 1 })
			reqs := wh.requests()
			if len(reqs) != tt.wantTries {
				t.Fatalf("requests = %d, want %d", len(reqs), tt.wantTries)
			}
			for i, want := range tt.wantGaps {
				if gap := reqs[i+1].at.Sub(reqs[i].at); gap < want {
					t.Errorf("gap before attempt %d = %v, want >= %v (Retry-After)", i+2, gap, want)
				}
			}
			if c.fail.Load() != 0 {
				t.Errorf("hooks = %v, want no failure", &c)
			}
		})
	}
}

func TestRetryAfterHTTPDateIsHonoured(t *testing.T) {
	t.Parallel()
	// Given a webhook that answers 429 with a Retry-After date at least 200ms
	// away (HTTP-dates have whole-second resolution)
	until := make(chan time.Time, 1)
	wh := mustWebhook(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n > 1 {
			w.WriteHeader(http.StatusOK)
			return
		}
		date := time.Now().Add(1200 * time.Millisecond).Truncate(time.Second)
		until <- date
		w.Header().Set("Retry-After", date.UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
	})
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Backoff: 10 * time.Millisecond}, wh, nil, c.hooks())

	// When an event is notified
	n.Notify(event("llm"))

	// Then the retry does not arrive before that date
	waitFor(t, "event sent", func() bool { return c.sent.Load() == 1 })
	date := <-until
	reqs := wh.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	if reqs[1].at.Before(date) {
		t.Errorf("retry arrived at %v, before the Retry-After date %v", reqs[1].at, date)
	}
}

func TestRetryWithoutUsableRetryAfterUsesBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply reply
	}{
		{name: "429 without Retry-After", reply: reply{429, ""}},
		{name: "503 without Retry-After", reply: reply{503, ""}},
		{name: "429 with unparsable Retry-After", reply: reply{429, "soon"}},
		{name: "503 with Retry-After of zero", reply: reply{503, "0"}},
		{name: "429 with Retry-After date in the past", reply: reply{429, "Wed, 21 Oct 2015 07:28:00 GMT"}},
		{name: "500 ignores Retry-After", reply: reply{500, "0.001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a webhook whose first answer gives no usable Retry-After
			const backoff = 150 * time.Millisecond
			wh := mustWebhook(t, answers(tt.reply))
			var c counts
			n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Backoff: backoff}, wh, nil, c.hooks())

			// When an event is notified
			n.Notify(event("llm"))

			// Then the retry waits at least the configured backoff
			waitFor(t, "event sent", func() bool { return c.sent.Load() == 1 })
			reqs := wh.requests()
			if len(reqs) != 2 {
				t.Fatalf("requests = %d, want 2", len(reqs))
			}
			if gap := reqs[1].at.Sub(reqs[0].at); gap < backoff {
				t.Errorf("gap before the retry = %v, want >= the %v backoff", gap, backoff)
			}
		})
	}
}

func TestCloseCutsRetryAfterWaitShort(t *testing.T) {
	t.Parallel()
	// Given a webhook that asks for a minute's wait (capped at MaxRetryAfter)
	wh := mustWebhook(t, answers(reply{429, "60"}))
	log, logs := newLogger()
	const timeout = 200 * time.Millisecond
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Timeout: timeout, Backoff: 10 * time.Millisecond}, wh, log, c.hooks())
	n.Notify(event("llm"))
	waitFor(t, "first attempt", func() bool { return wh.count() == 1 })

	// When the notifier is closed during the wait
	start := time.Now()
	n.Close()
	elapsed := time.Since(start)

	// Then Close returned after its grace period instead of sitting out the
	// wait (a blocking check, not a benchmark), and the event is abandoned
	if elapsed >= alert.MaxRetryAfter/2 {
		t.Errorf("Close took %v, want it to cut the %v wait short", elapsed, alert.MaxRetryAfter)
	}
	if got := wh.count(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
	if c.sent.Load()+c.fail.Load()+c.drop.Load() != 0 {
		t.Errorf("hooks = %v, want none called", &c)
	}
	if !strings.Contains(logs.String(), `"abandoned":1`) {
		t.Errorf("log = %s, want 1 abandoned event", logs.String())
	}
}
