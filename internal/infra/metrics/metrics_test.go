package metrics_test

import (
	"math"
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
	if got, ok := metricstest.Value(t, m, "nexus_target_calls_total", da("provider", "openai", "model", "m", "outcome", "rejected")); ok {
		t.Fatalf("nexus_target_calls_total = %v before any call, want no series (targets are not known in advance)", got)
	}
	check("nexus_datasets", nil, 3)
	check("nexus_dataset_open_handles", nil, 1)
	check("nexus_worker_busy", nil, 0)
	check("nexus_worker_kills_total", map[string]string{"reason": "memory"}, 0)

	current = []metrics.CircuitState{{Name: "data_analyst", State: "open", Forced: true, InFlight: 2}}
	st = metrics.DatasetStats{Stored: 4, OpenHandles: 2, WorkersBusy: 1, WorkerKills: map[string]int64{"deadline": 3}}
	m.ObserveCall("data_analyst", "openai", "m", "rejected", time.Millisecond)
	check("nexus_circuit_state", da("state", "open"), 1)
	check("nexus_circuit_state", da("state", "closed"), 0)
	check("nexus_circuit_forced", da(), 1)
	check("nexus_circuit_in_flight", da(), 2)
	check("nexus_circuit_calls_total", da("outcome", "rejected"), 1)
	check("nexus_target_calls_total", da("provider", "openai", "model", "m", "outcome", "rejected"), 1)
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

// labels builds a label set from name, value pairs.
func labels(kv ...string) map[string]string {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// checker returns a function asserting that a gauge or counter series has
// exactly the wanted value.
func checker(t *testing.T, m *metrics.Metrics) func(name string, l map[string]string, want float64) {
	return func(name string, l map[string]string, want float64) {
		t.Helper()
		got, ok := metricstest.Value(t, m, name, l)
		if !ok || got != want {
			t.Fatalf("%s%v = %v (present %v), want %v", name, l, got, ok, want)
		}
	}
}

// absent asserts that no series of name has labels l.
func absent(t *testing.T, m *metrics.Metrics, name string, l map[string]string) {
	t.Helper()
	if got, ok := metricstest.Value(t, m, name, l); ok {
		t.Fatalf("%s%v = %v, want no series", name, l, got)
	}
}

// Calls and their durations are labelled with the target's provider;
// rejected calls are counted but enter no duration histogram.
func TestObserveCallShouldLabelTheProvider(t *testing.T) {
	t.Parallel()
	// Given a circuit
	m := metrics.New([]string{"planner"}, func() []metrics.CircuitState { return nil })
	check := checker(t, m)

	// When it makes two successful calls to openai, one failed call to
	// anthropic and is refused once by an open anthropic target
	m.ObserveCall("planner", "openai", "gpt-4o", "success", 300*time.Millisecond)
	m.ObserveCall("planner", "openai", "gpt-4o", "success", 700*time.Millisecond)
	m.ObserveCall("planner", "anthropic", "claude", "failure", time.Second)
	m.ObserveCall("planner", "anthropic", "claude", "rejected", 0)

	// Then the calls are counted by target and outcome, and by circuit
	check("nexus_target_calls_total", labels("circuit", "planner", "provider", "openai", "model", "gpt-4o", "outcome", "success"), 2)
	check("nexus_target_calls_total", labels("circuit", "planner", "provider", "anthropic", "model", "claude", "outcome", "failure"), 1)
	check("nexus_target_calls_total", labels("circuit", "planner", "provider", "anthropic", "model", "claude", "outcome", "rejected"), 1)
	absent(t, m, "nexus_target_calls_total", labels("circuit", "planner", "provider", "openai", "model", "gpt-4o", "outcome", "failure"))
	check("nexus_circuit_calls_total", labels("circuit", "planner", "outcome", "success"), 2)
	check("nexus_circuit_calls_total", labels("circuit", "planner", "outcome", "rejected"), 1)

	// And the durations by provider, model and outcome, without the rejection
	hist := func(provider, model, outcome string) (uint64, bool) {
		return metricstest.HistogramCount(t, m, "nexus_target_request_duration_seconds",
			labels("circuit", "planner", "provider", provider, "model", model, "outcome", outcome))
	}
	if n, ok := hist("openai", "gpt-4o", "success"); !ok || n != 2 {
		t.Fatalf("openai success durations = %d (present %v), want 2", n, ok)
	}
	if n, ok := hist("anthropic", "claude", "failure"); !ok || n != 1 {
		t.Fatalf("anthropic failure durations = %d (present %v), want 1", n, ok)
	}
	if n, ok := hist("anthropic", "claude", "rejected"); ok {
		t.Fatalf("rejected durations = %d, want no series", n)
	}
}

// Retries, failovers and hedges are counted; hedges start at zero for
// every known circuit, retries and failovers appear when first seen.
func TestShouldCountRetriesFailoversAndHedges(t *testing.T) {
	t.Parallel()
	// Given two known circuits
	m := metrics.New([]string{"planner", "coder"}, func() []metrics.CircuitState { return nil })
	check := checker(t, m)
	for _, c := range []string{"planner", "coder"} {
		check("nexus_llm_hedges_total", labels("circuit", c, "outcome", "won"), 0)
		check("nexus_llm_hedges_total", labels("circuit", c, "outcome", "lost"), 0)
	}
	absent(t, m, "nexus_llm_retries_total", nil)
	absent(t, m, "nexus_llm_failovers_total", nil)

	// When planner retries openai twice and anthropic once, fails over
	// from openai to anthropic once, and hedges three times (two won)
	m.ObserveRetry("planner", "openai", "gpt-4o")
	m.ObserveRetry("planner", "openai", "gpt-4o")
	m.ObserveRetry("planner", "anthropic", "claude")
	m.ObserveFailover("planner", "openai", "anthropic")
	m.ObserveHedge("planner", "won")
	m.ObserveHedge("planner", "won")
	m.ObserveHedge("planner", "lost")

	// Then each is counted under its labels, and coder is untouched
	check("nexus_llm_retries_total", labels("circuit", "planner", "provider", "openai", "model", "gpt-4o"), 2)
	check("nexus_llm_retries_total", labels("circuit", "planner", "provider", "anthropic", "model", "claude"), 1)
	check("nexus_llm_failovers_total", labels("circuit", "planner", "from_provider", "openai", "to_provider", "anthropic"), 1)
	absent(t, m, "nexus_llm_failovers_total", labels("circuit", "planner", "from_provider", "anthropic", "to_provider", "openai"))
	check("nexus_llm_hedges_total", labels("circuit", "planner", "outcome", "won"), 2)
	check("nexus_llm_hedges_total", labels("circuit", "planner", "outcome", "lost"), 1)
	check("nexus_llm_hedges_total", labels("circuit", "coder", "outcome", "won"), 0)
	check("nexus_llm_hedges_total", labels("circuit", "coder", "outcome", "lost"), 0)
	absent(t, m, "nexus_llm_retries_total", labels("circuit", "coder"))
}

// Each target's state is read at scrape time from the circuits callback:
// 0 closed, 1 half-open, 2 open, nothing while disabled; the per-circuit
// gauges are unchanged.
func TestScrapeShouldExportEachTargetsState(t *testing.T) {
	t.Parallel()
	// Given a circuit whose three targets are closed, half-open and open
	current := []metrics.CircuitState{{
		Name: "planner", State: "closed", InFlight: 1,
		Targets: []metrics.TargetState{
			{Provider: "openai", Model: "gpt-4o", State: "closed"},
			{Provider: "anthropic", Model: "claude", State: "half-open"},
			{Provider: "local", Model: "llama", State: "open", Forced: true},
		},
	}}
	m := metrics.New([]string{"planner"}, func() []metrics.CircuitState { return current })
	check := checker(t, m)
	target := func(provider, model string) map[string]string {
		return labels("circuit", "planner", "provider", provider, "model", model)
	}

	// Then a scrape shows 0, 1 and 2
	check("nexus_target_state", target("openai", "gpt-4o"), 0)
	check("nexus_target_state", target("anthropic", "claude"), 1)
	check("nexus_target_state", target("local", "llama"), 2)
	// And the circuit's own gauges as before
	check("nexus_circuit_state", labels("circuit", "planner", "state", "closed"), 1)
	check("nexus_circuit_state", labels("circuit", "planner", "state", "open"), 0)
	check("nexus_circuit_forced", labels("circuit", "planner"), 0)
	check("nexus_circuit_in_flight", labels("circuit", "planner"), 1)

	// When the first target opens, the second closes and the third is
	// disabled
	current = []metrics.CircuitState{{
		Name: "planner", State: "open",
		Targets: []metrics.TargetState{
			{Provider: "openai", Model: "gpt-4o", State: "open"},
			{Provider: "anthropic", Model: "claude", State: "closed"},
			{Provider: "local", Model: "llama", State: "disabled"},
		},
	}}

	// Then the next scrape follows, with no sample for the disabled one
	check("nexus_target_state", target("openai", "gpt-4o"), 2)
	check("nexus_target_state", target("anthropic", "claude"), 0)
	absent(t, m, "nexus_target_state", target("local", "llama"))
	check("nexus_circuit_state", labels("circuit", "planner", "state", "open"), 1)
}

// Provider probes export up and latency from the first probe on.
func TestScrapeShouldExportProviderProbes(t *testing.T) {
	t.Parallel()
	// Given two providers not probed yet
	current := []metrics.ProviderState{{Name: "openai"}, {Name: "anthropic"}}
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	m.ObserveProviders(func() []metrics.ProviderState { return current })
	check := checker(t, m)

	// Then there is no sample at all
	absent(t, m, "nexus_provider_up", nil)
	absent(t, m, "nexus_provider_probe_latency_seconds", nil)

	// When openai's probe answers in 250ms
	current = []metrics.ProviderState{
		{Name: "openai", Probed: true, Reachable: true, Latency: 250 * time.Millisecond},
		{Name: "anthropic"},
	}

	// Then openai is up with that latency, anthropic still has no sample
	check("nexus_provider_up", labels("provider", "openai"), 1)
	check("nexus_provider_probe_latency_seconds", labels("provider", "openai"), 0.25)
	absent(t, m, "nexus_provider_up", labels("provider", "anthropic"))
	absent(t, m, "nexus_provider_probe_latency_seconds", labels("provider", "anthropic"))

	// When anthropic's probe fails after 2s and openai's next one after 1.5s
	current = []metrics.ProviderState{
		{Name: "openai", Probed: true, Reachable: false, Latency: 1500 * time.Millisecond},
		{Name: "anthropic", Probed: true, Reachable: false, Latency: 2 * time.Second},
	}

	// Then both are down with their last probe's latency
	check("nexus_provider_up", labels("provider", "openai"), 0)
	check("nexus_provider_probe_latency_seconds", labels("provider", "openai"), 1.5)
	check("nexus_provider_up", labels("provider", "anthropic"), 0)
	check("nexus_provider_probe_latency_seconds", labels("provider", "anthropic"), 2)
}

// The listener's open connections are read at scrape time, beside the cap.
func TestScrapeShouldReportOpenConnectionsAndTheirCap(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	open := int64(3)
	m.ObserveConnections(func() int64 { return open }, 100)
	check := checker(t, m)
	check("nexus_http_open_connections", nil, 3)
	check("nexus_http_max_connections", nil, 100)
	open = 100
	check("nexus_http_open_connections", nil, 100)
}

// Streamed calls' first-token waits and interruptions are recorded by
// circuit and target; like the other series with a provider label, they
// appear on their first observation.
func TestShouldRecordFirstTokensAndStreamInterruptions(t *testing.T) {
	t.Parallel()
	// Given two known circuits and no streamed call yet
	m := metrics.New([]string{"planner", "coder"}, func() []metrics.CircuitState { return nil })
	check := checker(t, m)
	absent(t, m, "nexus_llm_time_to_first_token_seconds", nil)
	absent(t, m, "nexus_stream_interruptions_total", nil)

	// When planner's openai target gets two first tokens, after 300 ms and
	// 1.2 s, anthropic's one after 50 ms, and two of planner's streams on
	// openai and one on anthropic are cut after their first token
	m.ObserveFirstToken("planner", "openai", "gpt-4o", 300*time.Millisecond)
	m.ObserveFirstToken("planner", "openai", "gpt-4o", 1200*time.Millisecond)
	m.ObserveFirstToken("planner", "anthropic", "claude", 50*time.Millisecond)
	m.ObserveStreamInterrupted("planner", "openai")
	m.ObserveStreamInterrupted("planner", "openai")
	m.ObserveStreamInterrupted("planner", "anthropic")

	// Then each target's waits are in its own series, in seconds
	target := func(provider, model string) map[string]string {
		return labels("circuit", "planner", "provider", provider, "model", model)
	}
	if n, ok := metricstest.HistogramCount(t, m, "nexus_llm_time_to_first_token_seconds", target("openai", "gpt-4o")); !ok || n != 2 {
		t.Fatalf("openai first tokens = %d (present %v), want 2", n, ok)
	}
	if sum, _ := metricstest.HistogramSum(t, m, "nexus_llm_time_to_first_token_seconds", target("openai", "gpt-4o")); math.Abs(sum-1.5) > 1e-9 {
		t.Fatalf("openai first-token seconds = %v, want 1.5", sum)
	}
	if n, ok := metricstest.HistogramCount(t, m, "nexus_llm_time_to_first_token_seconds", target("anthropic", "claude")); !ok || n != 1 {
		t.Fatalf("anthropic first tokens = %d (present %v), want 1", n, ok)
	}
	// And the interruptions by circuit and provider, coder untouched
	check("nexus_stream_interruptions_total", labels("circuit", "planner", "provider", "openai"), 2)
	check("nexus_stream_interruptions_total", labels("circuit", "planner", "provider", "anthropic"), 1)
	absent(t, m, "nexus_stream_interruptions_total", labels("circuit", "coder"))
	absent(t, m, "nexus_llm_time_to_first_token_seconds", labels("circuit", "coder"))
}

// The first-token buckets span what LLMs do, from a hosted model's tens of
// milliseconds to a first_token_timeout of 30 s, so that a p50 or p99 is
// readable from them.
func TestFirstTokenBucketsShouldSpanLLMFirstTokens(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil, func() []metrics.CircuitState { return nil })
	m.ObserveFirstToken("planner", "openai", "gpt-4o", time.Second)
	bounds := metricstest.HistogramBounds(t, m, "nexus_llm_time_to_first_token_seconds", nil)
	if len(bounds) < 8 || bounds[0] > 0.05 || bounds[len(bounds)-1] < 30 {
		t.Fatalf("buckets = %v, want at least 8 from <= 0.05 s to >= 30 s", bounds)
	}
}
