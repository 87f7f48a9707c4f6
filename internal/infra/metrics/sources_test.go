package metrics_test

import (
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/metrics/metricstest"
)

// Source series exist at zero for every configured source and outcome
// before any query; an outcome outside the fixed set counts as other, so
// that no label comes from anywhere but the config.
func TestSourceQueriesShouldBeCountedByConfiguredSourceAndOutcome(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	m.ObserveSourceQuery("sales", "ok", time.Millisecond) // before ObserveSources: ignored
	m.ObserveSources([]string{"sales"})
	for _, o := range metrics.SourceOutcomes {
		if got, ok := metricstest.Value(t, m, "nexus_source_queries_total", map[string]string{"source": "sales", "outcome": o}); !ok || got != 0 {
			t.Fatalf("%s = %v (present %v) before any query", o, got, ok)
		}
	}
	m.ObserveSourceQuery("sales", "ok", 20*time.Millisecond)
	m.ObserveSourceQuery("sales", "timeout", time.Second)
	m.ObserveSourceQuery("sales", "something new", time.Millisecond)
	for outcome, want := range map[string]float64{"ok": 1, "timeout": 1, "other": 1, "unavailable": 0} {
		if got, _ := metricstest.Value(t, m, "nexus_source_queries_total", map[string]string{"source": "sales", "outcome": outcome}); got != want {
			t.Errorf("%s = %v, want %v", outcome, got, want)
		}
	}
	if got, _ := metricstest.HistogramCount(t, m, "nexus_source_query_duration_seconds", map[string]string{"source": "sales"}); got != 3 {
		t.Errorf("duration count = %v, want 3", got)
	}
}
