package alert_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/alert"
)

// received is one request as the fake webhook saw it.
type received struct {
	at     time.Time
	method string
	uri    string
	header http.Header
	body   []byte
	event  alert.Event
}

// webhook is a fake alert receiver on 127.0.0.1. respond decides each reply
// from the 1-based attempt number; it may block on the request's context.
type webhook struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []received
}

func mustWebhook(tb testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int)) *webhook {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	wh := &webhook{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{at: time.Now(), method: r.Method, uri: r.RequestURI, header: r.Header.Clone(), body: body}
		_ = json.Unmarshal(body, &rec.event)
		wh.mu.Lock()
		wh.reqs = append(wh.reqs, rec)
		n := len(wh.reqs)
		wh.mu.Unlock()
		respond(w, r, n)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	wh.srv = srv
	return wh
}

func (wh *webhook) requests() []received {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]received(nil), wh.reqs...)
}

func (wh *webhook) count() int {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return len(wh.reqs)
}

func (wh *webhook) circuits() []string {
	var out []string
	for _, r := range wh.requests() {
		out = append(out, r.event.Circuit)
	}
	return out
}

// statuses answers attempt n with codes[n-1], and 200 beyond the list.
func statuses(codes ...int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, n int) {
		code := http.StatusOK
		if n <= len(codes) {
			code = codes[n-1]
		}
		w.WriteHeader(code)
	}
}

// hang blocks every request until the client gives up or release is closed,
// then answers 200.
func hang(release <-chan struct{}) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
			w.WriteHeader(http.StatusOK)
		}
	}
}

// mustHangingWebhook returns a webhook whose handlers block until the client
// gives up or release is called, after which every request gets 200 at once.
// Release also runs at cleanup, before the server closes (cleanups run
// last-registered first), so no handler outlives the test.
func mustHangingWebhook(tb testing.TB) (wh *webhook, release func()) {
	tb.Helper()
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	wh = mustWebhook(tb, hang(ch))
	tb.Cleanup(release)
	return wh, release
}

// counts records hook calls.
type counts struct {
	drop, fail, sent atomic.Int64
}

func (c *counts) hooks() alert.Hooks {
	return alert.Hooks{
		OnDrop: func() { c.drop.Add(1) },
		OnFail: func() { c.fail.Add(1) },
		OnSent: func() { c.sent.Add(1) },
	}
}

func (c *counts) String() string {
	return fmt.Sprintf("drop=%d fail=%d sent=%d", c.drop.Load(), c.fail.Load(), c.sent.Load())
}

// logBuffer is a goroutine-safe sink for a JSON slog handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// mustNotifier builds a Notifier for wh and closes it at cleanup (before the
// server closes).
func mustNotifier(tb testing.TB, cfg alert.Config, wh *webhook, log *slog.Logger, hooks alert.Hooks) *alert.Notifier {
	tb.Helper()
	var client *http.Client
	if wh != nil {
		client = wh.srv.Client()
	}
	n := alert.New(cfg, client, log, hooks)
	tb.Cleanup(n.Close)
	return n
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline; it never sleeps to synchronise beyond the poll tick.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func event(circuit string) alert.Event {
	return alert.Event{
		Circuit: circuit,
		From:    "closed",
		To:      "open",
		Reason:  "failure threshold exceeded",
		Time:    time.Date(2025, 3, 4, 5, 6, 7, 890000000, time.UTC),
	}
}
