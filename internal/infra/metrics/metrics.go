// Package metrics is Nexus's Prometheus adapter: one registry per process
// run (never the global default), the series operators alert on, and the
// exposition handler. Labels come only from circuit names, configured
// provider, model and source names, route templates and fixed outcome
// words, so cardinality stays bounded whatever users send.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// States a circuit can be in, as nexus_circuit_state labels them.
var states = []string{"closed", "open", "half-open", "disabled"}

// Hedge outcomes as nexus_llm_hedges_total labels them.
var hedgeOutcomes = []string{"won", "lost"}

// CircuitState is what the state gauges need to know of one circuit.
type CircuitState struct {
	Name     string
	State    string
	Forced   bool
	InFlight int
	// Targets are the circuit's ordered (provider, model) targets, each
	// exported as nexus_target_state.
	Targets []TargetState
}

// TargetState is what nexus_target_state needs to know of one target of a
// circuit. Provider and Model are the configured names.
type TargetState struct {
	Provider string
	Model    string
	// State is "closed", "open", "half-open" or "disabled"; a disabled
	// target (or an unknown state) has no nexus_target_state sample.
	State string
	// Forced is true while an operator holds the target open.
	Forced bool
}

// Metrics holds Nexus's collectors.
type Metrics struct {
	reg            *prometheus.Registry
	calls          *prometheus.CounterVec
	targetCalls    *prometheus.CounterVec
	targetDuration *prometheus.HistogramVec
	transitions    *prometheus.CounterVec
	llmDuration    *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	failovers      *prometheus.CounterVec
	hedges         *prometheus.CounterVec
	firstToken     *prometheus.HistogramVec
	interruptions  *prometheus.CounterVec
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	alertsDropped  prometheus.Counter
	alertsFailed   prometheus.Counter
	alertsSent     prometheus.Counter
	// sources is set by ObserveSources.
	sources *sourceMetrics
}

// durationBuckets are the LLM call duration histograms' buckets, in seconds.
var durationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60}

// firstTokenBuckets are nexus_llm_time_to_first_token_seconds's buckets, in
// seconds: a hosted model's first token comes in a few hundred
// milliseconds, a loaded or local one in seconds, and first_token_timeout
// is rarely set above 30.
var firstTokenBuckets = []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30}

// callOutcomes are the outcomes of nexus_circuit_calls_total, pre-created
// at zero for every circuit.
var callOutcomes = []string{"success", "failure", "rejected", "timeout", "neutral"}

// New registers every collector on a fresh registry. circuits is read at
// scrape time, so that a lazily due half-open shows without any call; it
// feeds both the per-circuit and the per-target state gauges.
// circuitNames pre-creates at zero the series whose labels are all known
// from it (calls by circuit, transitions, hedges); series with a provider
// label (retries, failovers, first tokens, stream interruptions) appear on
// their first observation.
func New(circuitNames []string, circuits func() []CircuitState) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_circuit_calls_total",
			Help: "LLM attempts through each circuit by outcome, all targets together: success, failure, rejected (refused by a target's breaker, bulkhead or cooldown), timeout, neutral (LLM 400/422 or client hang-up). nexus_target_calls_total splits them by target.",
		}, []string{"circuit", "outcome"}),
		targetCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_target_calls_total",
			Help: "LLM attempts by circuit, target provider, model and outcome (as nexus_circuit_calls_total). circuit is the configured circuit name, provider and model the target's configured provider and model (model is other when a request named another one); labels come from configuration only.",
		}, []string{"circuit", "provider", "model", "outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_circuit_transitions_total",
			Help: "Circuit state transitions.",
		}, []string{"circuit", "from", "to"}),
		llmDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_llm_request_duration_seconds",
			Help:    "Time spent on LLM calls (rejected calls excluded), by circuit, configured model (or other) and outcome; nexus_target_request_duration_seconds splits them by provider too.",
			Buckets: durationBuckets,
		}, []string{"circuit", "model", "outcome"}),
		targetDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_target_request_duration_seconds",
			Help:    "Time spent on LLM calls (rejected calls excluded), by circuit, target provider, model and outcome. circuit is the configured circuit name, provider and model the target's configured provider and model (model is other when a request named another one); labels come from configuration only.",
			Buckets: durationBuckets,
		}, []string{"circuit", "provider", "model", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_llm_retries_total",
			Help: "LLM calls retried on the same target after a counted failure. circuit is the configured circuit name, provider and model the target's configured provider and model; labels come from configuration only.",
		}, []string{"circuit", "provider", "model"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_llm_failovers_total",
			Help: "LLM calls that moved on from one target to a later one and sent it a request. circuit is the configured circuit name, from_provider the configured provider given up on, to_provider the configured provider tried next; labels come from configuration only.",
		}, []string{"circuit", "from_provider", "to_provider"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_llm_hedges_total",
			Help: "Hedged LLM calls by how the hedge ended: won (the hedge request to a later target answered first) or lost (the first request answered first, or neither succeeded). circuit is the configured circuit name; labels come from configuration only.",
		}, []string{"circuit", "outcome"}),
		firstToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_llm_time_to_first_token_seconds",
			Help:    "How long each streamed LLM attempt waited for its first token, by circuit, target provider and model; attempts that got no token are not observed (they are timeouts or failures in nexus_target_calls_total). circuit is the configured circuit name, provider and model the target's configured provider and model (model is other when a request named another one); labels come from configuration only.",
			Buckets: firstTokenBuckets,
		}, []string{"circuit", "provider", "model"}),
		interruptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_stream_interruptions_total",
			Help: "Streamed LLM calls that failed after part of their answer had reached the client, so that they could be neither retried nor failed over. circuit is the configured circuit name, provider the configured provider of the target that failed; labels come from configuration only.",
		}, []string{"circuit", "provider"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_http_requests_total",
			Help: "HTTP requests by route template (unmatched for 404s), method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_http_request_duration_seconds",
			Help:    "HTTP request time by route template and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		alertsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_alerts_dropped_total",
			Help: "Alert webhook events dropped because the queue was full.",
		}),
		alertsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_alerts_failed_total",
			Help: "Alert webhook events given up after all attempts.",
		}),
		alertsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_alerts_sent_total",
			Help: "Alert webhook events delivered.",
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.calls, m.targetCalls, m.transitions, m.llmDuration, m.targetDuration, m.retries, m.failovers, m.hedges,
		m.firstToken, m.interruptions,
		m.httpRequests, m.httpDuration,
		m.alertsDropped, m.alertsFailed, m.alertsSent,
		&stateCollector{circuits: circuits},
	)
	for _, c := range circuitNames {
		for _, o := range callOutcomes {
			m.calls.WithLabelValues(c, o)
		}
		for _, o := range hedgeOutcomes {
			m.hedges.WithLabelValues(c, o)
		}
		for _, t := range [][2]string{{"closed", "open"}, {"open", "half-open"}, {"half-open", "closed"}, {"half-open", "open"}} {
			m.transitions.WithLabelValues(c, t[0], t[1])
		}
	}
	return m
}

// DatasetStats is one snapshot of the dataset store and its workers.
type DatasetStats struct {
	Stored      int
	OpenHandles int
	WorkersBusy int
	// WorkerKills counts worker kills by reason (memory, deadline, crash,
	// cancelled).
	WorkerKills map[string]int64
}

// ObserveDatasets exports the dataset store's state, read once per
// scrape: nexus_datasets (stored), nexus_dataset_open_handles (read-only
// DuckDB handles the workers keep open), nexus_worker_busy and
// nexus_worker_kills_total{reason}.
func (m *Metrics) ObserveDatasets(stats func() DatasetStats) {
	m.reg.MustRegister(&datasetCollector{stats: stats})
}

// ObserveLogDrops exports nexus_log_lines_dropped_total, read from
// dropped at scrape time: log lines dropped because the log's output
// (stdout) fell behind. dropped must never decrease.
func (m *Metrics) ObserveLogDrops(dropped func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "nexus_log_lines_dropped_total",
		Help: "Log lines dropped because the log's output (stdout) could not keep up.",
	}, func() float64 { return float64(dropped()) }))
}

// killReasons are always exported, so a dashboard sees zeros before the
// first kill.
var killReasons = []string{"memory", "deadline", "crash", "cancelled"}

var (
	datasetsDesc    = prometheus.NewDesc("nexus_datasets", "Datasets stored.", nil, nil)
	openHandlesDesc = prometheus.NewDesc("nexus_dataset_open_handles", "Read-only DuckDB handles the workers keep open.", nil, nil)
	workerBusyDesc  = prometheus.NewDesc("nexus_worker_busy", "DuckDB worker processes running a job now.", nil, nil)
	workerKillsDesc = prometheus.NewDesc("nexus_worker_kills_total",
		"DuckDB worker processes killed or lost, by reason.", []string{"reason"}, nil)
)

// datasetCollector reads every series from one snapshot, so they agree.
type datasetCollector struct{ stats func() DatasetStats }

func (c *datasetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- datasetsDesc
	ch <- openHandlesDesc
	ch <- workerBusyDesc
	ch <- workerKillsDesc
}

func (c *datasetCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(datasetsDesc, prometheus.GaugeValue, float64(st.Stored))
	ch <- prometheus.MustNewConstMetric(openHandlesDesc, prometheus.GaugeValue, float64(st.OpenHandles))
	ch <- prometheus.MustNewConstMetric(workerBusyDesc, prometheus.GaugeValue, float64(st.WorkersBusy))
	for _, r := range killReasons {
		ch <- prometheus.MustNewConstMetric(workerKillsDesc, prometheus.CounterValue, float64(st.WorkerKills[r]), r)
	}
}

// Handler serves the exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveCall counts one guarded call to the target (provider, model) of
// circuit; rejected calls spent no LLM time and enter no duration
// histogram. model must be a configured model name or "other".
func (m *Metrics) ObserveCall(circuit, provider, model, outcome string, d time.Duration) {
	m.calls.WithLabelValues(circuit, outcome).Inc()
	m.targetCalls.WithLabelValues(circuit, provider, model, outcome).Inc()
	if outcome != "rejected" {
		m.llmDuration.WithLabelValues(circuit, model, outcome).Observe(d.Seconds())
		m.targetDuration.WithLabelValues(circuit, provider, model, outcome).Observe(d.Seconds())
	}
}

// ObserveRetry counts one retry on the same target (provider, model) of
// circuit.
func (m *Metrics) ObserveRetry(circuit, provider, model string) {
	m.retries.WithLabelValues(circuit, provider, model).Inc()
}

// ObserveFailover counts one call of circuit moving on from a target of
// fromProvider to a later target of toProvider.
func (m *Metrics) ObserveFailover(circuit, fromProvider, toProvider string) {
	m.failovers.WithLabelValues(circuit, fromProvider, toProvider).Inc()
}

// ObserveHedge counts one hedge of circuit by how it ended: "won" or
// "lost".
func (m *Metrics) ObserveHedge(circuit, outcome string) {
	m.hedges.WithLabelValues(circuit, outcome).Inc()
}

// ObserveFirstToken records how long one streamed attempt on the target
// (provider, model) of circuit waited for its first token. model must be a
// configured model name or "other". Its signature is
// circuit.Hooks.OnFirstToken's.
func (m *Metrics) ObserveFirstToken(circuit, provider, model string, d time.Duration) {
	m.firstToken.WithLabelValues(circuit, provider, model).Observe(d.Seconds())
}

// ObserveStreamInterrupted counts one streamed call of circuit that failed
// on a target of provider after its first token had reached the client.
// Its signature is circuit.Hooks.OnStreamInterrupted's.
func (m *Metrics) ObserveStreamInterrupted(circuit, provider string) {
	m.interruptions.WithLabelValues(circuit, provider).Inc()
}

// ObserveTransition counts one state change.
func (m *Metrics) ObserveTransition(circuit, from, to string) {
	m.transitions.WithLabelValues(circuit, from, to).Inc()
}

// ObserveHTTP counts one HTTP request. route must be a route template.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// AlertDropped, AlertFailed and AlertSent count alert deliveries.
func (m *Metrics) AlertDropped() { m.alertsDropped.Inc() }

// AlertFailed counts an alert given up after all attempts.
func (m *Metrics) AlertFailed() { m.alertsFailed.Inc() }

// AlertSent counts a delivered alert.
func (m *Metrics) AlertSent() { m.alertsSent.Inc() }

// stateCollector computes nexus_circuit_state, nexus_circuit_forced and
// nexus_circuit_in_flight at scrape time, the state in resilience4j's form
// (1 for the current state, 0 for the others), and nexus_target_state from
// the same snapshot.
type stateCollector struct {
	circuits func() []CircuitState
}

var (
	stateDesc = prometheus.NewDesc("nexus_circuit_state",
		"1 for the circuit's current state (closed, open, half-open, disabled), 0 for the others.",
		[]string{"circuit", "state"}, nil)
	forcedDesc = prometheus.NewDesc("nexus_circuit_forced",
		"1 while an operator holds the circuit open.", []string{"circuit"}, nil)
	inFlightDesc = prometheus.NewDesc("nexus_circuit_in_flight",
		"LLM calls in flight through the circuit now.", []string{"circuit"}, nil)
	targetStateDesc = prometheus.NewDesc("nexus_target_state",
		"State of each target of a circuit: 0 closed, 1 half-open, 2 open; no sample while disabled. circuit is the configured circuit name, provider and model the target's configured provider and model; labels come from configuration only.",
		[]string{"circuit", "provider", "model"}, nil)
)

// targetStateValues are nexus_target_state's values; other states have no
// sample.
var targetStateValues = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- forcedDesc
	ch <- inFlightDesc
	ch <- targetStateDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.circuits() {
		for _, st := range states {
			v := 0.0
			if st == s.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, s.Name, st)
		}
		f := 0.0
		if s.Forced {
			f = 1
		}
		ch <- prometheus.MustNewConstMetric(forcedDesc, prometheus.GaugeValue, f, s.Name)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(s.InFlight), s.Name)
		// A repeated (provider, model) would fail the whole scrape with a
		// duplicate series; configuration forbids it, and the first wins.
		seen := map[[2]string]bool{}
		for _, t := range s.Targets {
			v, ok := targetStateValues[t.State]
			key := [2]string{t.Provider, t.Model}
			if !ok || seen[key] {
				continue
			}
			seen[key] = true
			ch <- prometheus.MustNewConstMetric(targetStateDesc, prometheus.GaugeValue, v, s.Name, t.Provider, t.Model)
		}
	}
}

// ProviderState is what the provider probe gauges need to know of one
// configured provider.
type ProviderState struct {
	// Name is the provider's configured name.
	Name string
	// Probed is false until the first probe has finished; until then the
	// provider has no sample.
	Probed bool
	// Reachable is the last probe's verdict.
	Reachable bool
	// Latency is how long the last probe took.
	Latency time.Duration
}

// ObserveProviders exports the provider probes' results, read from
// providers at scrape time: nexus_provider_up{provider} (1 reachable, 0
// not) and nexus_provider_probe_latency_seconds{provider} (the last
// probe's duration). A provider not probed yet has neither. Call it at
// most once.
func (m *Metrics) ObserveProviders(providers func() []ProviderState) {
	m.reg.MustRegister(&providerCollector{providers: providers})
}

var (
	providerUpDesc = prometheus.NewDesc("nexus_provider_up",
		"1 when the last probe reached the provider, 0 when it did not; no sample before the first probe. provider is the configured provider name; labels come from configuration only.",
		[]string{"provider"}, nil)
	providerLatencyDesc = prometheus.NewDesc("nexus_provider_probe_latency_seconds",
		"How long the last probe of the provider took, whether or not it reached it; no sample before the first probe. provider is the configured provider name; labels come from configuration only.",
		[]string{"provider"}, nil)
)

// providerCollector reads both provider series from one snapshot.
type providerCollector struct{ providers func() []ProviderState }

func (c *providerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- providerUpDesc
	ch <- providerLatencyDesc
}

func (c *providerCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, p := range c.providers() {
		if !p.Probed || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		up := 0.0
		if p.Reachable {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(providerUpDesc, prometheus.GaugeValue, up, p.Name)
		ch <- prometheus.MustNewConstMetric(providerLatencyDesc, prometheus.GaugeValue, p.Latency.Seconds(), p.Name)
	}
}
