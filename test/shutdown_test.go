package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// A request in flight when shutdown begins completes; /readyz answers 503
// during the drain; afterwards new connections are refused cleanly, and
// Run returns nil (exit 0).
func TestShutdownShouldFinishInFlightRequestsAndRefuseNewOnes(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) {
		o.cfg.Server.DrainSeconds = 2
		// The held call outlasts the drain; its own timeout must too.
		c := o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
		c.Timeout = 60
		o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	})
	expectStatus(t, n.get(t, "/readyz"), http.StatusOK)
	release := make(chan struct{})
	n.LLM.EnqueueFor(analystModel, fakellm.Held(release, "finished despite shutdown"))
	before := n.LLM.Requests()
	inflight := make(chan response, 1)
	go func() { inflight <- n.analyze(t) }()
	eventually(t, 3*time.Second, "request reached the fake", func() bool { return n.LLM.Requests() > before })

	stopped := make(chan error, 1)
	go func() { stopped <- n.stop() }()
	eventually(t, 3*time.Second, "readyz 503 during the drain", func() bool {
		resp, err := n.client.Get(n.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	// The request is still in flight: only now does its LLM call end.
	close(release)

	r := <-inflight
	expectStatus(t, r, http.StatusOK)
	if r.Body["answer"] != "finished despite shutdown" {
		t.Fatalf("in-flight answer: %s", r.Raw)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	_, err := (&http.Client{Timeout: 2 * time.Second}).Get(n.URL + "/healthz")
	if err == nil || !(errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "refused")) {
		t.Fatalf("after shutdown: err = %v, want connection refused", err)
	}
}

// When in-flight requests outlast the grace period, Run returns an error
// (the process exits non-zero) and logs what was cut.
func TestShutdownShouldFailWhenTheGraceRunsOut(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) { o.cfg.Server.ShutdownGraceSeconds = 0.2 })
	n.LLM.EnqueueFor(analystModel, fakellm.Hang())
	before := n.LLM.Requests()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/analyze", strings.NewReader(`{"query":"q"}`))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := n.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 3*time.Second, "request reached the fake", func() bool { return n.LLM.Requests() > before })
	err := n.stop()
	if err == nil || !strings.Contains(err.Error(), "grace") {
		t.Fatalf("Run returned %v, want a grace error", err)
	}
	if len(n.logs.lines("shutdown grace ran out; in-flight requests were cut")) != 1 {
		t.Fatalf("cut requests not logged:\n%s", n.logs.String())
	}
	cut := n.logs.lines("request cut by shutdown")
	if len(cut) != 1 || cut[0]["path"] != "/analyze" || cut[0]["method"] != "POST" {
		t.Fatalf("cut request lines: %v", cut)
	}
	cancel()
}
