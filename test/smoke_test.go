//go:build smoke

package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
)

// TestSmokeAgainstARealLLM runs the real server against a real
// OpenAI-compatible endpoint. It is behind the smoke build tag and skipped
// unless NEXUS_SMOKE_BASE_URL is set:
//
//	NEXUS_SMOKE_BASE_URL=http://localhost:11434/v1 NEXUS_SMOKE_MODEL=llama3.1 \
//	  go test -tags smoke -run Smoke -v ./test/
//
// NEXUS_SMOKE_API_KEY is passed as LLM_API_KEY when set.
func TestSmokeAgainstARealLLM(t *testing.T) {
	base := os.Getenv("NEXUS_SMOKE_BASE_URL")
	if base == "" {
		t.Skip("NEXUS_SMOKE_BASE_URL is not set")
	}
	model := os.Getenv("NEXUS_SMOKE_MODEL")
	if model == "" {
		model = "llama3.1"
	}
	// LLM_BASE_URL overrides the fake upstream that startNexus configures.
	m := startNexus(t, func(o *startOpts) {
		o.env["LLM_BASE_URL"] = base
		o.env["LLM_API_KEY"] = os.Getenv("NEXUS_SMOKE_API_KEY")
		for _, name := range config.CircuitNames() {
			o.cfg.LLM.Models[name] = config.Single(model)
			c := o.cfg.CircuitBreaker.Circuits[name]
			c.Timeout = 120
			o.cfg.CircuitBreaker.Circuits[name] = c
		}
	})
	id := m.mustUpload(t, "sales.csv", []byte(salesCSV))
	r := m.post(t, "/analyze", map[string]any{"query": "Which region has the highest total sales?", "dataset_id": id, "visualize": true})
	expectStatus(t, r, http.StatusOK)
	t.Logf("answer: %v\nsql: %v\nsteps: %v", r.Body["answer"], r.Body["sql"], r.Body["steps"])
	// A 200 is not enough: the smoke test checks that a real model wrote
	// SQL that ran, and answered from its rows, without degrading.
	if sql, _ := r.Body["sql"].(string); sql == "" {
		t.Errorf("no query succeeded: sql = %v, degraded = %v", r.Body["sql"], r.Body["degraded"])
	}
	if rc, _ := r.Body["row_count"].(float64); rc < 1 {
		t.Errorf("the query returned no rows: row_count = %v", r.Body["row_count"])
	}
	if a, _ := r.Body["answer"].(string); strings.TrimSpace(a) == "" {
		t.Errorf("empty answer")
	}
	if r.Body["fallback_used"] != false || degraded(r) != "" {
		t.Errorf("the answer degraded: fallback_used = %v, degraded = %q", r.Body["fallback_used"], degraded(r))
	}
	g := m.post(t, "/generate", map[string]any{"prompt": "total sales per region", "language": "sql", "dataset_id": id})
	expectStatus(t, g, http.StatusOK)
	t.Logf("generate: %s", g.Raw)
	if code, _ := g.Body["code"].(string); strings.TrimSpace(code) == "" {
		t.Errorf("/generate returned no code")
	}
	if g.Body["is_valid"] != true {
		t.Errorf("/generate's SQL failed its review against the dataset: %v", g.Body["error_message"])
	}
	for _, name := range config.CircuitNames() {
		if st := m.stats(t, name); st["failure_count"] != 0.0 {
			t.Errorf("circuit %s counted failures against the real LLM: %v", name, st)
		}
	}
}
