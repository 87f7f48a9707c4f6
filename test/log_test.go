package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The log is written asynchronously, but shutdown writes it out whole:
// the lines logged just before the end, down to "stopped", are all in the
// output once Run has returned, and the drop counter is exported. (Run's
// last steps take longer than the Sink's poll, so a missing Close shows
// here mostly as the Sink's goroutine, which goleak reports; the drain
// itself is tested in package logging.)
func TestShutdownShouldWriteOutTheLastLogLines(t *testing.T) {
	t.Parallel()
	// Given a running server whose drop counter is exported at zero
	n := startNexus(t)
	if v, ok := metric(n.scrape(t), "nexus_log_lines_dropped_total", nil); !ok || v != 0 {
		t.Fatalf("nexus_log_lines_dropped_total = %v (present %v), want 0", v, ok)
	}

	// When a request is made and the server stops at once after it
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/healthz", nil)
	req.Header.Set("X-Request-ID", "last-request-before-shutdown")
	expectStatus(t, n.do(t, req), http.StatusOK)
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}

	// Then its access line, the shutdown and the final "stopped" are all
	// there, "stopped" last
	raw := n.logs.String()
	lines := strings.Split(strings.TrimSpace(raw), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["message"] != "stopped" {
		t.Fatalf("last line is not \"stopped\":\n%s", raw)
	}
	found := false
	for _, l := range n.logs.lines("request") {
		found = found || l["request_id"] == "last-request-before-shutdown"
	}
	if !found || len(n.logs.lines("shutting down")) != 1 {
		t.Fatalf("the last request's access line or the shutdown line is missing:\n%s", raw)
	}
}
