package app

import (
	"context"

	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/metrics"
)

// circuitHooks wires what happens in the circuits to the metrics, the alert
// webhook and the token budgets (usage). Every label the hooks pass comes
// from configuration, so the series stay bounded.
func circuitHooks(m *metrics.Metrics, alerts *alerter, usage func(context.Context, circuit.UsageEvent)) circuit.Hooks {
	return circuit.Hooks{
		OnTransition: func(t circuit.Transition) {
			m.ObserveTransition(t.Circuit, t.From, t.To)
			alerts.notify(t)
		},
		OnCall:              func(e circuit.CallEvent) { m.ObserveCall(e.Circuit, e.Provider, e.Model, e.Outcome, e.Duration) },
		OnRetry:             m.ObserveRetry,
		OnFailover:          m.ObserveFailover,
		OnHedge:             m.ObserveHedge,
		OnUsage:             usage,
		OnFirstToken:        m.ObserveFirstToken,
		OnStreamInterrupted: m.ObserveStreamInterrupted,
	}
}
