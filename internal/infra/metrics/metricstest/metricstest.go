// Package metricstest reads series back from a Metrics scrape, for tests.
package metricstest

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nexus/nexus/internal/infra/metrics"
)

// Value scrapes m and returns the value of the first gauge or counter
// series of name whose labels include labels, and whether there is one.
func Value(tb testing.TB, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	tb.Helper()
	s, ok := find(tb, m, name, labels)
	return s.value, ok
}

// HistogramCount scrapes m and returns the sample count of the first
// histogram series of name whose labels include labels, and whether there
// is one.
func HistogramCount(tb testing.TB, m *metrics.Metrics, name string, labels map[string]string) (uint64, bool) {
	tb.Helper()
	s, ok := find(tb, m, name, labels)
	return s.count, ok && s.histogram
}

// HistogramSum scrapes m and returns the sum of the samples of the first
// histogram series of name whose labels include labels, and whether there
// is one.
func HistogramSum(tb testing.TB, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	tb.Helper()
	s, ok := find(tb, m, name, labels)
	return s.sum, ok && s.histogram
}

// HistogramBounds scrapes m and returns the bucket upper bounds of the
// first histogram series of name whose labels include labels (without
// +Inf), or nil when there is none.
func HistogramBounds(tb testing.TB, m *metrics.Metrics, name string, labels map[string]string) []float64 {
	tb.Helper()
	s, _ := find(tb, m, name, labels)
	return s.bounds
}

// sample is what the helpers read of one series.
type sample struct {
	value     float64 // a gauge's or counter's value
	histogram bool
	count     uint64  // a histogram's sample count
	sum       float64 // a histogram's sample sum
	bounds    []float64
}

// find scrapes m and reads the first series of name whose labels include
// labels, and whether there is one.
func find(tb testing.TB, m *metrics.Metrics, name string, labels map[string]string) (sample, bool) {
	tb.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		tb.Fatalf("parse scrape: %v", err)
	}
	f, ok := families[name]
	if !ok {
		return sample{}, false
	}
next:
	for _, s := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case s.GetHistogram() != nil:
			h := s.GetHistogram()
			var bounds []float64
			for _, b := range h.GetBucket() {
				if !math.IsInf(b.GetUpperBound(), 1) {
					bounds = append(bounds, b.GetUpperBound())
				}
			}
			return sample{histogram: true, count: h.GetSampleCount(), sum: h.GetSampleSum(), bounds: bounds}, true
		case s.GetGauge() != nil:
			return sample{value: s.GetGauge().GetValue()}, true
		default:
			return sample{value: s.GetCounter().GetValue()}, true
		}
	}
	return sample{}, false
}
