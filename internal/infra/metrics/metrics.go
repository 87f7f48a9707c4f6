// Package metrics is Nexus's Prometheus adapter: one registry per process
// run (never the global default), the series operators alert on, and the
// exposition handler. Labels come only from circuit names, configured
// model names, route templates and fixed outcome words, so cardinality
// stays bounded whatever users send.
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

// Call outcomes as nexus_circuit_calls_total labels them.
var outcomes = []string{"success", "failure", "rejected", "timeout", "neutral"}

// CircuitState is what the state gauges need to know of one circuit.
type CircuitState struct {
	Name     string
	State    string
	Forced   bool
	InFlight int
}

// Metrics holds Nexus's collectors.
type Metrics struct {
	reg           *prometheus.Registry
	calls         *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	llmDuration   *prometheus.HistogramVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	alertsDropped prometheus.Counter
	alertsFailed  prometheus.Counter
	alertsSent    prometheus.Counter
}

// New registers every collector on a fresh registry. circuits is read at
// scrape time, so that a lazily due half-open shows without any call.
// circuitNames pre-creates the per-circuit series at zero.
func New(circuitNames []string, circuits func() []CircuitState) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_circuit_calls_total",
			Help: "Calls through each circuit by outcome: success, failure, rejected (refused by the circuit), timeout, neutral (LLM 400/422 or client hang-up).",
		}, []string{"circuit", "outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_circuit_transitions_total",
			Help: "Circuit state transitions.",
		}, []string{"circuit", "from", "to"}),
		llmDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_llm_request_duration_seconds",
			Help:    "Time spent on LLM calls, by circuit, configured model (or other) and outcome.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60},
		}, []string{"circuit", "model", "outcome"}),
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
		m.calls, m.transitions, m.llmDuration, m.httpRequests, m.httpDuration,
		m.alertsDropped, m.alertsFailed, m.alertsSent,
		&stateCollector{circuits: circuits},
	)
	for _, c := range circuitNames {
		for _, o := range outcomes {
			m.calls.WithLabelValues(c, o)
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

// ObserveCall counts one guarded call; rejected calls spent no LLM time and
// enter no duration histogram.
func (m *Metrics) ObserveCall(circuit, model, outcome string, d time.Duration) {
	m.calls.WithLabelValues(circuit, outcome).Inc()
	if outcome != "rejected" {
		m.llmDuration.WithLabelValues(circuit, model, outcome).Observe(d.Seconds())
	}
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

// stateCollector computes nexus_circuit_state and nexus_circuit_forced at
// scrape time, in resilience4j's form: 1 for the current state, 0 for the
// others.
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
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- forcedDesc
	ch <- inFlightDesc
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
	}
}
