package app

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/alert"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/metrics"
)

// alerter sends a webhook alert when a circuit opens or closes again, and
// swaps its notifier when a reload changes the alerts section.
//
// No alert is lost to a swap: notify holds mu's read lock across
// Notifier.Notify, and update swaps under the write lock, so every alert is
// queued either on the old notifier before update closes it, or on the new
// one. The old queue then drains in the background for up to its
// Config.Timeout; what is still undelivered after that is abandoned and
// logged by the notifier, as at shutdown. Holding the read lock there is
// cheap because Notify never blocks: it takes only its own short-held mutex
// and never does I/O.
//
// Neither update nor notify ever waits for a webhook, so a reload never
// holds up the run loop or a shutdown signal; close, at the very end of a
// shutdown, waits for every drain, each bounded by its Timeout.
type alerter struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	client  *http.Client

	mu     sync.RWMutex // guards n and closed; read-held across n.Notify (see above)
	n      *alert.Notifier
	closed bool // close ran: a late update closes its new notifier at once
	// drains counts replaced notifiers still draining. Add is called under
	// mu while closed is false, so close's Wait sees every drain.
	drains sync.WaitGroup
}

func newAlerter(cfg config.Alerts, log *slog.Logger, m *metrics.Metrics) *alerter {
	a := &alerter{log: log, metrics: m, client: &http.Client{}}
	a.n = a.build(cfg)
	return a
}

func (a *alerter) build(cfg config.Alerts) *alert.Notifier {
	return alert.New(alert.Config{
		URL:       cfg.WebhookURL,
		QueueSize: cfg.QueueSize,
		Attempts:  cfg.Attempts,
		Timeout:   cfg.Timeout.Duration(),
	}, a.client, a.log, alert.Hooks{
		OnDrop: a.metrics.AlertDropped,
		OnFail: a.metrics.AlertFailed,
		OnSent: a.metrics.AlertSent,
	})
}

// notify queues an alert for transitions to open and back to closed. It
// never blocks.
func (a *alerter) notify(t circuit.Transition) {
	if (t.To != circuit.StateOpen && t.To != circuit.StateClosed) || t.From == circuit.StateDisabled {
		// Turning circuit breakers back on is not a recovery.
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	a.n.Notify(alert.Event{
		Circuit: t.Circuit, Provider: t.Provider, Model: t.Model, First: t.First,
		From: t.From, To: t.To, Reason: t.Reason, Time: t.At.UTC(), Statistics: t.Stats,
	})
}

// update switches to a notifier built from cfg and returns at once: the old
// notifier drains in the background, for up to its Timeout, while alerts
// raised meanwhile already go to the new one.
func (a *alerter) update(cfg config.Alerts) {
	next := a.build(cfg)
	a.mu.Lock()
	if a.closed {
		// A reload that finished after shutdown began: nobody would
		// close the new notifier.
		a.mu.Unlock()
		next.Close()
		return
	}
	old := a.n
	a.n = next
	a.drains.Add(1)
	a.mu.Unlock()
	// Close may wait up to Timeout: neither notify nor the reload that
	// called update may wait with it.
	go func() {
		defer a.drains.Done()
		old.Close()
	}()
}

// close drains the current notifier at shutdown and waits for the ones that
// updates replaced, each bounded by its own Timeout. Alerts raised after it
// has started are dropped by the closed notifier.
func (a *alerter) close() {
	a.mu.Lock()
	a.closed = true
	n := a.n
	a.mu.Unlock()
	n.Close()
	a.drains.Wait()
}
