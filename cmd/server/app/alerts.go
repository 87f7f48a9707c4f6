package app

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra"
	"github.com/nexus/nexus/internal/infra/alert"
	"github.com/nexus/nexus/internal/infra/metrics"
)

// alerter sends a webhook alert when a circuit opens or closes again, and
// swaps its notifier when a reload changes the alerts section.
type alerter struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	client  *http.Client

	mu sync.Mutex
	n  *alert.Notifier
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
func (a *alerter) notify(t infra.Transition) {
	if (t.To != infra.StateOpen && t.To != infra.StateClosed) || t.From == infra.StateDisabled {
		// Turning circuit breakers back on is not a recovery.
		return
	}
	a.mu.Lock()
	n := a.n
	a.mu.Unlock()
	n.Notify(alert.Event{
		Circuit: t.Circuit, From: t.From, To: t.To, Reason: t.Reason, Time: t.At.UTC(), Statistics: t.Stats,
	})
}

func (a *alerter) update(cfg config.Alerts) {
	next := a.build(cfg)
	a.mu.Lock()
	old := a.n
	a.n = next
	a.mu.Unlock()
	old.Close()
}

func (a *alerter) close() {
	a.mu.Lock()
	n := a.n
	a.mu.Unlock()
	n.Close()
}
