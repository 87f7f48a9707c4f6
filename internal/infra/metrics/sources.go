package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SourceOutcomes are the outcomes of nexus_source_queries_total, each
// series pre-created at zero for every configured source: ok, or the
// source error's kind, or canceled by the caller. Any other outcome is
// counted as "other", so that the label set stays fixed.
var SourceOutcomes = []string{"ok", "unsafe_sql", "sql_error", "timeout", "unavailable", "unsafe_role", "not_found", "canceled", "other"}

// sourceBuckets are nexus_source_query_duration_seconds's buckets: a
// source query is bounded by its statement timeout, often well under a
// second.
var sourceBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// sourceMetrics are the live sources' series.
type sourceMetrics struct {
	queries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// ObserveSources registers the live sources' series and pre-creates them
// for names, the configured source names (labels come from configuration
// only): nexus_source_queries_total{source,outcome} and
// nexus_source_query_duration_seconds{source}. Call it once, before
// ObserveSourceQuery.
func (m *Metrics) ObserveSources(names []string) {
	m.sources = &sourceMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_source_queries_total",
			Help: "Queries run on each live source (the planner's, /sources/{name}/query's, rows and samples) by outcome: ok, unsafe_sql, sql_error, timeout, unavailable, unsafe_role, not_found, canceled. source is the configured source name.",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_source_query_duration_seconds",
			Help:    "Time spent on each live source's queries, guard (EXPLAIN) included, whatever their outcome. source is the configured source name.",
			Buckets: sourceBuckets,
		}, []string{"source"}),
	}
	m.reg.MustRegister(m.sources.queries, m.sources.duration)
	for _, n := range names {
		for _, o := range SourceOutcomes {
			m.sources.queries.WithLabelValues(n, o)
		}
		m.sources.duration.WithLabelValues(n)
	}
}

// ObserveSourceQuery counts one query of source with its outcome and
// duration. It does nothing before ObserveSources.
func (m *Metrics) ObserveSourceQuery(source, outcome string, d time.Duration) {
	if m.sources == nil {
		return
	}
	if !slices.Contains(SourceOutcomes, outcome) {
		outcome = "other"
	}
	m.sources.queries.WithLabelValues(source, outcome).Inc()
	m.sources.duration.WithLabelValues(source).Observe(d.Seconds())
}
