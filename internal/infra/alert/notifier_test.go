package alert_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/alert"
)

func TestNotifyPostsEventAsJSON(t *testing.T) {
	t.Parallel()
	// Given a webhook whose URL carries a token in its query string
	wh := mustWebhook(t, statuses())
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL + "/hooks/circuits?token=abc"}, wh, nil, c.hooks())

	// When an event with statistics is notified
	ev := event("llm")
	ev.Statistics = map[string]any{"failures": 5, "failure_rate": 0.5}
	n.Notify(ev)

	// Then exactly that JSON is POSTed once, with our headers, to the full URL
	waitFor(t, "event sent", func() bool { return c.sent.Load() == 1 })
	reqs := wh.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost {
		t.Errorf("method = %q, want POST", r.method)
	}
	if r.uri != "/hooks/circuits?token=abc" {
		t.Errorf("request URI = %q, want the configured path and query", r.uri)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if got := r.header.Get("User-Agent"); got != "nexus-alerts" {
		t.Errorf("User-Agent = %q, want nexus-alerts", got)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	want := map[string]any{
		"circuit":    "llm",
		"from":       "closed",
		"to":         "open",
		"reason":     "failure threshold exceeded",
		"time":       "2025-03-04T05:06:07.89Z",
		"statistics": map[string]any{"failures": 5.0, "failure_rate": 0.5},
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body = %v, want %v", body, want)
	}
	if c.fail.Load() != 0 || c.drop.Load() != 0 {
		t.Errorf("hooks = %v, want only one sent", &c)
	}
}

func TestNotifyStampsZeroTime(t *testing.T) {
	t.Parallel()
	wh := mustWebhook(t, statuses())
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL}, wh, nil, c.hooks())

	before := time.Now()
	n.Notify(alert.Event{Circuit: "llm", From: "open", To: "half-open"})
	after := time.Now()

	waitFor(t, "event sent", func() bool { return c.sent.Load() == 1 })
	got := wh.requests()[0].event.Time
	if got.Before(before) || got.After(after) {
		t.Errorf("time = %v, want the moment of Notify, between %v and %v", got, before, after)
	}
}

func TestDeliveryOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		codes        []int // reply per attempt; 200 after the list
		attempts     int
		wantRequests int
		wantSent     int64
		wantFail     int64
	}{
		{name: "sent on 200", codes: []int{200}, attempts: 3, wantRequests: 1, wantSent: 1},
		{name: "sent on 204", codes: []int{204}, attempts: 3, wantRequests: 1, wantSent: 1},
		{name: "retried 500 then sent", codes: []int{500, 500, 200}, attempts: 3, wantRequests: 3, wantSent: 1},
		{name: "retried 503 then sent", codes: []int{503, 200}, attempts: 3, wantRequests: 2, wantSent: 1},
		{name: "retried 429 then sent", codes: []int{429, 200}, attempts: 3, wantRequests: 2, wantSent: 1},
		{name: "failed at once on 400", codes: []int{400}, attempts: 3, wantRequests: 1, wantFail: 1},
		{name: "failed at once on 401", codes: []int{401}, attempts: 3, wantRequests: 1, wantFail: 1},
		{name: "failed at once on 404", codes: []int{404}, attempts: 3, wantRequests: 1, wantFail: 1},
		{name: "failed at once on 400 after a 500", codes: []int{500, 400}, attempts: 3, wantRequests: 2, wantFail: 1},
		{name: "failed after 3 attempts of 500", codes: []int{500, 500, 500, 500, 500}, attempts: 3, wantRequests: 3, wantFail: 1},
		{name: "failed after 5 attempts of 502", codes: []int{502, 502, 502, 502, 502, 502}, attempts: 5, wantRequests: 5, wantFail: 1},
		{name: "failed after 1 attempt of 500", codes: []int{500}, attempts: 1, wantRequests: 1, wantFail: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a webhook answering tt.codes in turn
			const backoff = 10 * time.Millisecond
			wh := mustWebhook(t, statuses(tt.codes...))
			var c counts
			n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Attempts: tt.attempts, Backoff: backoff}, wh, nil, c.hooks())

			// When one event is notified
			n.Notify(event("llm"))

			// Then it ends in exactly one outcome after exactly wantRequests attempts
			waitFor(t, "an outcome", func() bool { return c.sent.Load()+c.fail.Load() > 0 })
			n.Close()
			if got := wh.count(); got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
			if c.sent.Load() != tt.wantSent || c.fail.Load() != tt.wantFail || c.drop.Load() != 0 {
				t.Errorf("hooks = %v, want sent=%d fail=%d drop=0", &c, tt.wantSent, tt.wantFail)
			}
			// And retries waited at least the doubling backoff
			reqs := wh.requests()
			for i := 1; i < len(reqs); i++ {
				gap, want := reqs[i].at.Sub(reqs[i-1].at), backoff<<(i-1)
				if gap < want {
					t.Errorf("gap before attempt %d = %v, want >= %v", i+1, gap, want)
				}
			}
		})
	}
}

func TestAttemptTimeoutCancelsAndRetries(t *testing.T) {
	t.Parallel()
	// Given a webhook that hangs on the first attempt only
	var firstCancelled atomic.Bool
	wh := mustWebhook(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			<-r.Context().Done()
			firstCancelled.Store(true)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	const timeout = 100 * time.Millisecond
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Timeout: timeout, Backoff: 10 * time.Millisecond}, wh, nil, c.hooks())

	// When an event is notified
	start := time.Now()
	n.Notify(event("llm"))

	// Then the first attempt is cancelled at the timeout and the retry delivers it
	waitFor(t, "event sent", func() bool { return c.sent.Load() == 1 })
	waitFor(t, "first attempt cancelled", firstCancelled.Load)
	reqs := wh.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	// Measured from Notify, which comes before the first attempt's clock
	// starts: the server may see the first request late, so the gap
	// between the two arrivals can be shorter than the timeout.
	if gap := reqs[1].at.Sub(start); gap < timeout {
		t.Errorf("retry came %v after Notify, want >= the %v timeout", gap, timeout)
	}
	if c.fail.Load() != 0 {
		t.Errorf("hooks = %v, want no failure", &c)
	}
}

func TestNotifyNeverBlocksAndKeepsNewest(t *testing.T) {
	t.Parallel()
	// Given a receiver that hangs, a queue of 2, and event 0 in flight
	wh, release := mustHangingWebhook(t)
	log, logs := newLogger()
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL, QueueSize: 2, Attempts: 1, Timeout: time.Minute}, wh, log, c.hooks())

	var spent time.Duration
	notify := func(i int) {
		start := time.Now()
		n.Notify(event(fmt.Sprintf("c%d", i)))
		spent += time.Since(start)
	}
	notify(0)
	waitFor(t, "event 0 in flight", func() bool { return wh.count() == 1 })

	// When events 1..9 are notified while it hangs
	for i := 1; i < 10; i++ {
		notify(i)
	}

	// Then no call blocked (a blocking check, not a benchmark: a blocked call
	// would wait a minute), and the 7 oldest waiting events were dropped
	if spent > 5*time.Second {
		t.Errorf("10 Notify calls took %v, want far less than one blocked call (a minute)", spent)
	}
	if got := c.drop.Load(); got != 7 {
		t.Errorf("dropped = %d, want 7 (10 events - 1 in flight - 2 queued)", got)
	}

	// And once the receiver recovers, the newest two follow event 0, in order
	release()
	waitFor(t, "3 events sent", func() bool { return c.sent.Load() == 3 })
	if got, want := wh.circuits(), []string{"c0", "c8", "c9"}; !reflect.DeepEqual(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	if c.drop.Load() != 7 || c.fail.Load() != 0 {
		t.Errorf("hooks = %v, want drop=7 fail=0", &c)
	}
	// And the drops were logged from the sender goroutine, not by Notify
	waitFor(t, "drop log line", func() bool { return strings.Contains(logs.String(), `"dropped":7`) })
}

func TestNotifyFromManyGoroutinesDropsExactly(t *testing.T) {
	t.Parallel()
	// Given a hanging receiver with one event in flight and a queue of 2
	wh, release := mustHangingWebhook(t)
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL, QueueSize: 2, Attempts: 1, Timeout: time.Minute}, wh, nil, c.hooks())
	n.Notify(event("first"))
	waitFor(t, "first event in flight", func() bool { return wh.count() == 1 })

	// When 8 goroutines notify 50 events each
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				n.Notify(event(fmt.Sprintf("g%d-%d", g, i)))
			}
		})
	}
	wg.Wait()

	// Then all but the 2 that fit in the queue were dropped, and those 2 are
	// delivered after the first once the receiver recovers
	if got, want := c.drop.Load(), int64(goroutines*each-2); got != want {
		t.Errorf("dropped = %d, want %d", got, want)
	}
	release()
	waitFor(t, "3 events sent", func() bool { return c.sent.Load() == 3 })
	if got := wh.count(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

func TestDisabledNotifierIsNoOp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		wantLog string // substring of the log; "" means no log at all
	}{
		{name: "empty URL", url: ""},
		{name: "non-http scheme", url: "ftp://alice:s3cret@example.com/x?token=t0ken", wantLog: "alerts disabled"},
		{name: "relative URL", url: "/hooks?token=t0ken", wantLog: "alerts disabled"},
		{name: "unparsable URL", url: "http://alice:s3cret@[::1/x?token=t0ken", wantLog: "alerts disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, logs := newLogger()
			var c counts
			n := alert.New(alert.Config{URL: tt.url, QueueSize: 1}, nil, log, c.hooks())
			for i := range 100 {
				n.Notify(event(fmt.Sprintf("c%d", i)))
			}
			n.Close()
			n.Close()
			if c.drop.Load()+c.fail.Load()+c.sent.Load() != 0 {
				t.Errorf("hooks = %v, want none called", &c)
			}
			got := logs.String()
			if tt.wantLog == "" && got != "" {
				t.Errorf("log = %q, want nothing", got)
			}
			if !strings.Contains(got, tt.wantLog) {
				t.Errorf("log = %q, want it to contain %q", got, tt.wantLog)
			}
			for _, secret := range []string{"s3cret", "t0ken", "alice"} {
				if strings.Contains(got, secret) {
					t.Errorf("log leaks %q: %s", secret, got)
				}
			}
		})
	}
}

func TestNilNotifierIsNoOp(t *testing.T) {
	t.Parallel()
	var n *alert.Notifier
	n.Notify(event("llm"))
	n.Close()
}

func TestCloseDeliversQueuedEventsInOrder(t *testing.T) {
	t.Parallel()
	// Given a healthy webhook and the default config
	wh := mustWebhook(t, statuses())
	var c counts
	n := alert.New(alert.Config{URL: wh.srv.URL}, wh.srv.Client(), nil, c.hooks())

	// When 5 events are notified and the notifier closed at once
	for i := range 5 {
		n.Notify(event(fmt.Sprintf("c%d", i)))
	}
	n.Close()

	// Then Close waited for all of them, delivered in order
	if got := c.sent.Load(); got != 5 {
		t.Errorf("sent when Close returned = %d, want 5", got)
	}
	if got, want := wh.circuits(), []string{"c0", "c1", "c2", "c3", "c4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestCloseReturnsPromptlyWhenServerHangs(t *testing.T) {
	t.Parallel()
	// Given a hanging receiver, an event in flight and two queued, with
	// enough attempts that delivery would otherwise take over 3 seconds
	wh, _ := mustHangingWebhook(t)
	log, logs := newLogger()
	const timeout = 300 * time.Millisecond
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL, Timeout: timeout, Attempts: 10, Backoff: 10 * time.Millisecond}, wh, log, c.hooks())
	for i := range 3 {
		n.Notify(event(fmt.Sprintf("c%d", i)))
	}
	waitFor(t, "first event in flight", func() bool { return wh.count() == 1 })

	// When the notifier is closed
	start := time.Now()
	n.Close()
	elapsed := time.Since(start)

	// Then Close gave the queue its Timeout to drain, then cut the attempt
	// short instead of waiting for the retries (goleak checks the goroutine)
	// (the upper bound is loose for busy CI machines: waiting for the
	// retries instead would take over 9 s)
	if elapsed < timeout || elapsed > timeout+3*time.Second {
		t.Errorf("Close took %v, want about the %v timeout", elapsed, timeout)
	}
	// And the abandoned events are logged, not counted as failed or sent
	if c.sent.Load()+c.fail.Load()+c.drop.Load() != 0 {
		t.Errorf("hooks = %v, want none called", &c)
	}
	if !strings.Contains(logs.String(), `"abandoned":3`) {
		t.Errorf("log = %s, want 3 abandoned events", logs.String())
	}
	// And Notify after Close does nothing
	n.Notify(event("late"))
	n.Close()
	if c.drop.Load() != 0 {
		t.Errorf("hooks = %v after a late Notify, want none", &c)
	}
}

func TestUnencodableStatisticsFails(t *testing.T) {
	t.Parallel()
	wh := mustWebhook(t, statuses())
	var c counts
	n := mustNotifier(t, alert.Config{URL: wh.srv.URL}, wh, nil, c.hooks())

	bad := event("bad")
	bad.Statistics = map[string]any{"ch": make(chan int)}
	n.Notify(bad)
	n.Notify(event("good"))

	waitFor(t, "good event sent", func() bool { return c.sent.Load() == 1 })
	if c.fail.Load() != 1 {
		t.Errorf("hooks = %v, want the bad event failed", &c)
	}
	if got, want := wh.circuits(), []string{"good"}; !reflect.DeepEqual(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestGiveUpLogOmitsURLSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		target     func(t *testing.T) (host string, client *http.Client) // where to send
		timeout    time.Duration
		wantStatus float64
		wantError  string
	}{
		{
			name: "status 400",
			target: func(t *testing.T) (string, *http.Client) {
				wh := mustWebhook(t, statuses(400))
				return wh.srv.Listener.Addr().String(), wh.srv.Client()
			},
			wantStatus: 400,
			wantError:  "400 Bad Request",
		},
		{
			name: "network error",
			target: func(t *testing.T) (string, *http.Client) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatalf("listen: %v", err)
				}
				addr := ln.Addr().String()
				ln.Close() // nothing listens there now: connection refused
				return addr, &http.Client{Transport: &http.Transport{}}
			},
			wantError: "connection refused",
		},
		{
			name: "attempt timeout",
			target: func(t *testing.T) (string, *http.Client) {
				wh, _ := mustHangingWebhook(t)
				return wh.srv.Listener.Addr().String(), wh.srv.Client()
			},
			timeout:   50 * time.Millisecond,
			wantError: "context deadline exceeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a webhook URL carrying userinfo and a token that fails
			host, client := tt.target(t)
			log, logs := newLogger()
			var c counts
			cfg := alert.Config{
				URL:      "http://alice:s3cret@" + host + "/hooks/x?token=t0ken#frag",
				Attempts: 2,
				Backoff:  10 * time.Millisecond,
				Timeout:  tt.timeout,
			}
			n := alert.New(cfg, client, log, c.hooks())
			t.Cleanup(n.Close)

			// When an event is given up on
			n.Notify(event("llm"))
			waitFor(t, "event failed", func() bool { return c.fail.Load() == 1 })
			n.Close()

			// Then one WARN names the circuit, status and safe URL only
			out := logs.String()
			for _, secret := range []string{"s3cret", "t0ken", "alice", "frag"} {
				if strings.Contains(out, secret) {
					t.Errorf("log leaks %q: %s", secret, out)
				}
			}
			var giveUp map[string]any
			for line := range strings.Lines(out) {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if strings.Contains(rec["msg"].(string), "giving up") {
					if giveUp != nil {
						t.Errorf("more than one give-up line: %s", out)
					}
					giveUp = rec
				}
			}
			if giveUp == nil {
				t.Fatalf("no give-up line in %s", out)
			}
			want := map[string]any{
				"level":   "WARN",
				"circuit": "llm",
				"status":  tt.wantStatus,
				"url":     "http://" + host,
			}
			for k, v := range want {
				if giveUp[k] != v {
					t.Errorf("%s = %v, want %v", k, giveUp[k], v)
				}
			}
			if e, _ := giveUp["error"].(string); !strings.Contains(e, tt.wantError) {
				t.Errorf("error = %q, want it to contain %q", e, tt.wantError)
			}
		})
	}
}
