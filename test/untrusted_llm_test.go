package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// LLM replies are untrusted input: a reply body is read only up to
// llm.max_response_bytes, and an upstream's error text is stored and
// reported cut to 512 characters.

func withMaxResponseBytes(n int64) func(*startOpts) {
	return func(o *startOpts) { o.cfg.LLM.MaxResponseBytes = n }
}

const capped = "malformed reply from the LLM: reply body exceeds llm.max_response_bytes (65536 bytes); the connection was closed"

// Given an upstream that answers 200 and streams whitespace "forever" (32
// MiB, far past the cap), when /generate calls it, then the call fails at
// max_response_bytes as a malformed reply: one counted failure, one
// upstream request, and the upstream sees the connection closed.
func TestAnEndlessWhitespaceReplyShouldFailAtTheCap(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withMaxResponseBytes(64<<10))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Step{Whitespace: 32 << 20})

	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	msg, _ := r.Body["error"].(map[string]any)["message"].(string)
	if errorCode(r) != "llm_unavailable" || msg != capped || r.Body["circuit"] != "code_generator" {
		t.Fatalf("body: %s", r.Raw)
	}
	expectStats(t, n, "code_generator", map[string]float64{"failure_count": 1, "total_calls": 1, "success_count": 0, "timeout_count": 0})
	if le, _ := n.stats(t, "code_generator")["last_error"].(string); le != "llm_unavailable: "+capped {
		t.Fatalf("last_error = %q", le)
	}
	if got := n.LLM.RequestsFor(codegenModel); got != 1 {
		t.Fatalf("upstream requests = %d, want 1", got)
	}
	eventually(t, 5*time.Second, "the upstream to see the connection closed", func() bool { return n.LLM.Canceled() == 1 })
}

// Given a 500 whose error body is 10 MB, the error body is capped too.
func TestAHugeErrorBodyShouldFailAtTheCap(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withMaxResponseBytes(64<<10))
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(http.StatusInternalServerError, strings.Repeat("x", 10<<20)))

	r := n.generate(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	msg, _ := r.Body["error"].(map[string]any)["message"].(string)
	if errorCode(r) != "llm_unavailable" || msg != capped {
		t.Fatalf("body (%d bytes): %.500s", len(r.Raw), r.Raw)
	}
	expectStats(t, n, "code_generator", map[string]float64{"failure_count": 1, "total_calls": 1})
	if got := n.LLM.RequestsFor(codegenModel); got != 1 {
		t.Fatalf("upstream requests = %d, want 1", got)
	}
}

// Given an upstream whose error message is 10 MB but within the cap, the
// message is cut to 512 characters in the 503 body, in last_error, in the
// circuit's events and in the logs; no response carries the 10 MB.
func TestAHugeUpstreamErrorMessageShouldBeCutEverywhere(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin, withMaxResponseBytes(16<<20), withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 20))
	huge := strings.Repeat("é", 5<<20) // 10 MB of two-byte runes
	n.LLM.SetDefaultFor(analystModel, fakellm.Status(http.StatusInternalServerError, huge))
	want := "upstream HTTP 500: " + strings.Repeat("é", 512-len("upstream HTTP 500: ")) + "…"

	r := n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	msg, _ := r.Body["error"].(map[string]any)["message"].(string)
	if errorCode(r) != "llm_unavailable" || msg != want || !utf8.ValidString(msg) {
		t.Fatalf("503 body (%d bytes): %.300s", len(r.Raw), r.Raw)
	}
	if len(r.Raw) > 4<<10 {
		t.Fatalf("503 body is %d bytes", len(r.Raw))
	}

	h := n.get(t, "/api/health/status")
	if len(h.Raw) > 16<<10 {
		t.Fatalf("health is %d bytes", len(h.Raw))
	}
	if le, _ := n.stats(t, "data_analyst")["last_error"].(string); le != "llm_unavailable: "+want {
		t.Fatalf("last_error (%d runes) = %.100q…", utf8.RuneCountInString(le), le)
	}
	expectStats(t, n, "data_analyst", map[string]float64{"failure_count": 1})

	ev := n.admin(t, http.MethodGet, "/api/circuits/data_analyst/events", adminToken)
	expectStatus(t, ev, http.StatusOK)
	if len(ev.Raw) > 8<<10 {
		t.Fatalf("events are %d bytes", len(ev.Raw))
	}
	var failure map[string]any
	for _, e := range ev.Body["events"].([]any) {
		if m := e.(map[string]any); m["type"] == "failure" {
			failure = m
		}
	}
	if failure == nil || failure["reason"] != want {
		t.Fatalf("events: %.1000s", ev.Raw)
	}

	logs := n.logs.String()
	if strings.Contains(logs, strings.Repeat("é", 600)) {
		t.Fatalf("the logs hold more than 512 characters of the upstream's message (%d bytes of logs)", len(logs))
	}
	if len(n.logs.lines("circuit state changed")) != 1 {
		t.Fatal("the failure did not open the circuit")
	}
}
