package metrics_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/metrics/metricstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Circuit state, forced and in-flight series are computed at scrape time
// from the current statuses; the dataset gauges come from one snapshot.
func TestScrapeShouldReadStateAtScrapeTime(t *testing.T) {
	t.Parallel()
	current := []metrics.CircuitState{{Name: "data_analyst", State: "closed"}}
	m := metrics.New([]string{"data_analyst"}, func() []metrics.CircuitState { return current })
	st := metrics.DatasetStats{Stored: 3, OpenHandles: 1}
	m.ObserveDatasets(func() metrics.DatasetStats { return st })

	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		got, ok := metricstest.Value(t, m, name, labels)
		if !ok || got != want {
			t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	da := func(kv ...string) map[string]string {
		l := map[string]string{"circuit": "data_analyst"}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	check("nexus_circuit_state", da("state", "closed"), 1)
	check("nexus_circuit_state", da("state", "open"), 0)
	check("nexus_circuit_calls_total", da("outcome", "rejected"), 0)
	check("nexus_datasets", nil, 3)
	check("nexus_dataset_open_handles", nil, 1)
	check("nexus_worker_busy", nil, 0)
	check("nexus_worker_kills_total", map[string]string{"reason": "memory"}, 0)

	current = []metrics.CircuitState{{Name: "data_analyst", State: "open", Forced: true, InFlight: 2}}
	st = metrics.DatasetStats{Stored: 4, OpenHandles: 2, WorkersBusy: 1, WorkerKills: map[string]int64{"deadline": 3}}
	m.ObserveCall("data_analyst", "m", "rejected", time.Millisecond)
	check("nexus_circuit_state", da("state", "open"), 1)
	check("nexus_circuit_state", da("state", "closed"), 0)
	check("nexus_circuit_forced", da(), 1)
	check("nexus_circuit_in_flight", da(), 2)
	check("nexus_circuit_calls_total", da("outcome", "rejected"), 1)
	check("nexus_datasets", nil, 4)
	check("nexus_dataset_open_handles", nil, 2)
	check("nexus_worker_busy", nil, 1)
	check("nexus_worker_kills_total", map[string]string{"reason": "deadline"}, 3)
	check("nexus_worker_kills_total", map[string]string{"reason": "crash"}, 0)
}

// The log's drop count is read at scrape time.
func TestScrapeShouldReportLogLinesDropped(t *testing.T) {
	t.Parallel()
	// Given a log that has dropped 7 lines
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	dropped := int64(7)
	m.ObserveLogDrops(func() int64 { return dropped })

	// When it drops 5 more before the next scrape
	if got, ok := metricstest.Value(t, m, "nexus_log_lines_dropped_total", nil); !ok || got != 7 {
		t.Fatalf("nexus_log_lines_dropped_total = %v (present %v), want 7", got, ok)
	}
	dropped += 5

	// Then the scrape shows 12
	if got, _ := metricstest.Value(t, m, "nexus_log_lines_dropped_total", nil); got != 12 {
		t.Fatalf("nexus_log_lines_dropped_total = %v, want 12", got)
	}
}
