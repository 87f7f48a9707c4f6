package e2e

import (
	"fmt"
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

// BenchmarkAnalyzeOverhead measures the analyst's own time per /analyze on
// a 1M-row dataset with a group-by: the request's total time less the time
// spent in LLM calls (read from nexus_llm_request_duration_seconds_sum).
// The fake LLM answers at once. Target: < 20 ms of overhead per request.
// It also reports the run step alone (DuckDB executing the query).
func BenchmarkAnalyzeOverhead(b *testing.B) {
	n := startNexus(b, func(o *startOpts) {
		o.env["NEXUS_LOG_LEVEL"] = "error"
		o.cfg.CircuitBreaker.LogCircuitChanges = false
	})
	var csv strings.Builder
	csv.WriteString("region,product,sales\n")
	regions := []string{"North", "South", "East", "West", "Central"}
	for i := 0; i < 1_000_000; i++ {
		fmt.Fprintf(&csv, "%s,p%d,%d\n", regions[i%5], i%97, i%1000)
	}
	id := n.mustUpload(b, "big.csv", []byte(csv.String()))
	n.LLM.SetDefaultFor(codegenModel, sqlReply("SELECT region, sum(sales) AS total, count(*) AS n FROM data GROUP BY region ORDER BY total DESC"))
	n.LLM.SetDefaultFor(analystModel, fakellm.Reply("North leads."))
	llmSeconds := func() float64 {
		body := n.scrape(b)
		total := 0.0
		for _, c := range []string{"code_generator", "data_analyst"} {
			v, _ := metric(body, "nexus_llm_request_duration_seconds_sum", map[string]string{"circuit": c, "model": map[string]string{"code_generator": codegenModel, "data_analyst": analystModel}[c], "outcome": "success"})
			total += v
		}
		return total
	}
	body := fmt.Sprintf(`{"query":"sales by region","dataset_id":%q}`, id)
	var wall, run time.Duration
	llmBefore := llmSeconds()
	runs := 0
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/analyze", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		r := n.do(b, req)
		wall += time.Since(start)
		if r.Status != http.StatusOK || r.Body["row_count"] != 5.0 {
			b.Fatalf("analyze: %s", r.Raw)
		}
		for _, s := range r.Body["steps"].([]any) {
			if m := s.(map[string]any); m["step"] == "run" {
				run += time.Duration(m["duration_ms"].(float64) * float64(time.Millisecond))
			}
		}
		runs++
	}
	llm := time.Duration((llmSeconds() - llmBefore) * float64(time.Second))
	b.ReportMetric(float64((wall-llm).Microseconds())/1000/float64(runs), "overhead-ms/op")
	b.ReportMetric(float64(run.Microseconds())/1000/float64(runs), "run-step-ms/op")
	b.ReportMetric(float64(llm.Microseconds())/1000/float64(runs), "llm-ms/op")
}
