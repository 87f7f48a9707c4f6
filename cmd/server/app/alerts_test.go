package app

// An internal test: alerter is unexported, and the race it guards against
// lives between its lock and the notifier's, which no public API reaches.

import (
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

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/metrics/metricstest"
)

// eventSink is a loopback webhook that counts, per circuit, the alerts it
// receives.
type eventSink struct {
	srv *httptest.Server

	mu   sync.Mutex
	seen map[string]int
}

func mustEventSink(tb testing.TB) *eventSink {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	s := &eventSink{seen: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Circuit string `json:"circuit"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.seen[ev.Circuit]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	s.srv = srv
	return s
}

func (s *eventSink) received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

// mustCounter scrapes m and returns the value of the unlabelled counter name.
func mustCounter(tb testing.TB, m *metrics.Metrics, name string) int {
	tb.Helper()
	v, ok := metricstest.Value(tb, m, name, nil)
	if !ok {
		tb.Fatalf("scrape has no %s series", name)
	}
	return int(v)
}

func TestAlerterLosesNoAlertWhileUpdating(t *testing.T) {
	t.Parallel()
	// Given an alerter with a small queue, so that each swap drains quickly,
	// and a webhook that accepts everything
	sink := mustEventSink(t)
	cfg := config.Alerts{WebhookURL: sink.srv.URL, QueueSize: 8, Attempts: 1, Timeout: 10}
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	a := newAlerter(cfg, slog.New(slog.DiscardHandler), m)

	// When goroutines keep raising alerts while the notifier is swapped
	// over and over
	const goroutines, swaps = 8, 100
	var (
		wg     sync.WaitGroup
		done   atomic.Bool
		raised [goroutines]int
	)
	wg.Go(func() {
		defer done.Store(true)
		for range swaps {
			a.update(cfg)
		}
	})
	for g := range goroutines {
		wg.Go(func() {
			for !done.Load() {
				a.notify(circuit.Transition{
					Circuit: fmt.Sprintf("g%d-%d", g, raised[g]),
					From:    circuit.StateClosed,
					To:      circuit.StateOpen,
					At:      time.Now(),
				})
				raised[g]++
			}
		})
	}
	wg.Wait()
	a.close()

	// Then every alert either reached the webhook exactly once or was
	// counted as dropped by a full queue; none vanished into a closed
	// notifier
	got := sink.received()
	total := 0
	for _, n := range raised {
		total += n
	}
	for name, n := range got {
		if n != 1 {
			t.Errorf("%s received %d times, want once", name, n)
		}
	}
	// A delivery that failed (a transport error on loopback) is counted
	// too: it was attempted, not lost to a swap.
	dropped := mustCounter(t, m, "nexus_alerts_dropped_total")
	failed := mustCounter(t, m, "nexus_alerts_failed_total")
	if lost := total - len(got) - dropped - failed; lost != 0 {
		t.Errorf("%d alerts raised, %d received, %d dropped, %d failed: %d lost across %d swaps",
			total, len(got), dropped, failed, lost, swaps)
	}
	t.Logf("%d alerts raised, %d received, %d dropped, %d failed across %d swaps", total, len(got), dropped, failed, swaps)
}

// A reload that finishes after shutdown has closed the alerter leaves no
// notifier running (goleak in TestMain would see its goroutine).
func TestAlerterUpdateAfterCloseLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	sink := mustEventSink(t)
	cfg := config.Alerts{WebhookURL: sink.srv.URL, QueueSize: 8, Attempts: 1, Timeout: 1}
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	a := newAlerter(cfg, slog.New(slog.DiscardHandler), m)
	a.close()
	a.update(cfg)
	a.notify(circuit.Transition{Circuit: "late", From: circuit.StateClosed, To: circuit.StateOpen, At: time.Now()})
	if got := sink.received(); len(got) != 0 {
		t.Fatalf("an alert went out after close: %v", got)
	}
}

// holdingWebhook is a loopback webhook that holds every request until
// released, as a webhook that hangs does.
type holdingWebhook struct {
	srv     *httptest.Server
	arrived chan string // the circuit of each request, as it arrives
	release func()
}

func mustHoldingWebhook(tb testing.TB) *holdingWebhook {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	held := make(chan struct{})
	h := &holdingWebhook{arrived: make(chan string, 16)}
	var once sync.Once
	h.release = func() { once.Do(func() { close(held) }) }
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Circuit string `json:"circuit"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		h.arrived <- ev.Circuit
		select {
		case <-held:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	// Cleanups run last-in first-out: release, then close the server,
	// which waits for its handlers.
	tb.Cleanup(srv.Close)
	tb.Cleanup(h.release)
	h.srv = srv
	return h
}

// expectArrival waits for the next request to reach the webhook.
func (h *holdingWebhook) expectArrival(tb testing.TB, circuit string) {
	tb.Helper()
	select {
	case got := <-h.arrived:
		if got != circuit {
			tb.Fatalf("webhook got an alert for %q, want %q", got, circuit)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("no alert for %q reached the webhook", circuit)
	}
}

func TestAlerterUpdateShouldNotWaitForTheOldNotifierToDrain(t *testing.T) {
	t.Parallel()
	// Given a webhook that hangs, alerts.timeout far longer than the test,
	// and an alert in flight to it
	hook := mustHoldingWebhook(t)
	cfg := config.Alerts{WebhookURL: hook.srv.URL + "/old", QueueSize: 8, Attempts: 1, Timeout: 30}
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	a := newAlerter(cfg, slog.New(slog.DiscardHandler), m)
	open := func(name string) circuit.Transition {
		return circuit.Transition{Circuit: name, From: circuit.StateClosed, To: circuit.StateOpen, At: time.Now()}
	}
	a.notify(open("first"))
	hook.expectArrival(t, "first")

	// When a reload swaps the notifier
	updated := make(chan struct{})
	go func() {
		defer close(updated)
		cfg.WebhookURL = hook.srv.URL + "/new"
		a.update(cfg)
	}()

	// Then update returns while the old notifier still waits on the
	// webhook, and the next alert goes out through the new one
	select {
	case <-updated:
	case <-time.After(10 * time.Second):
		t.Fatal("update is waiting for the old notifier to drain (alerts.timeout is 30 s)")
	}
	a.notify(open("second"))
	hook.expectArrival(t, "second")

	// And close, at shutdown, waits for both once the webhook answers
	hook.release()
	a.close()
	if sent := mustCounter(t, m, "nexus_alerts_sent_total"); sent != 2 {
		t.Fatalf("%d alerts sent, want both", sent)
	}
}
