// Package metricstest reads series back from a Metrics scrape, for tests.
package metricstest

import (
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
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		tb.Fatalf("parse scrape: %v", err)
	}
	f, ok := families[name]
	if !ok {
		return 0, false
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
		if s.GetGauge() != nil {
			return s.GetGauge().GetValue(), true
		}
		return s.GetCounter().GetValue(), true
	}
	return 0, false
}
