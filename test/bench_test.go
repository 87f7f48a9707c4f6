package e2e

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// BenchmarkHTTPFastFail measures POST /analyze over loopback while the
// data_analyst circuit is open (target p99 < 1 ms), beside GET /healthz on
// the same server and client as a baseline for the HTTP round trip itself.
func BenchmarkHTTPFastFail(b *testing.B) {
	n := startNexus(b, func(o *startOpts) {
		o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{
			FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 3600, Timeout: 5,
		}
		o.cfg.CircuitBreaker.LogCircuitChanges = false
	}, func(o *startOpts) { o.env["NEXUS_LOG_LEVEL"] = "error" })
	n.LLM.SetDefault(fakellm.Status(500, "down"))
	body := `{"query":"How many rows?"}`
	send := func(b *testing.B, method, path string) int {
		req, _ := http.NewRequest(method, n.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := n.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = drain(resp)
		return resp.StatusCode
	}
	send(b, http.MethodPost, "/analyze") // opens the circuit
	upstream := n.LLM.Requests()

	measure := func(b *testing.B, method, path string, want int) {
		lat := make([]time.Duration, 0, 1<<16)
		for b.Loop() {
			start := time.Now()
			if got := send(b, method, path); got != want {
				b.Fatalf("status %d, want %d", got, want)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) }
		b.ReportMetric(pct(0.50), "p50-µs")
		b.ReportMetric(pct(0.99), "p99-µs")
	}
	b.Run("healthz-baseline", func(b *testing.B) { measure(b, http.MethodGet, "/healthz", http.StatusOK) })
	b.Run("analyze-open-circuit", func(b *testing.B) { measure(b, http.MethodPost, "/analyze", http.StatusServiceUnavailable) })
	if got := n.LLM.Requests(); got != upstream {
		b.Fatalf("open circuit let %d requests through", got-upstream)
	}
}
