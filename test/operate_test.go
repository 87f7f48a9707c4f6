package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

const adminToken = "test-admin-token-123"

func withAdmin(o *startOpts) { o.env["NEXUS_ADMIN_TOKEN"] = adminToken }

// metric returns the value of the series name{labels} from a scrape, and
// whether it exists.
func metric(body, name string, labels map[string]string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, "} ")
		if !ok {
			if line == name || !strings.HasPrefix(line, name+" ") || len(labels) > 0 {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v, err == nil
		}
		got := map[string]string{}
		for _, kv := range strings.Split(strings.TrimPrefix(series, name+"{"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = strings.Trim(v, `"`)
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if match {
			v, err := strconv.ParseFloat(value, 64)
			return v, err == nil
		}
	}
	return 0, false
}

func (n *nexus) scrape(t testing.TB) string {
	t.Helper()
	resp, err := n.client.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

func expectMetric(t *testing.T, body, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := metric(body, name, labels)
	if !ok {
		t.Fatalf("series %s%v missing", name, labels)
	}
	if got != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func (n *nexus) admin(t testing.TB, method, path, token string) response {
	t.Helper()
	req, _ := http.NewRequest(method, n.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return n.do(t, req)
}

// The metrics show circuit state (computed at scrape time), disjoint call
// outcomes, transitions and HTTP requests by route template.
func TestMetricsShouldTellCircuitStateCallsAndRoutes(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 1, 2, 1))
	da := func(extra map[string]string) map[string]string {
		m := map[string]string{"circuit": "data_analyst"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	body := n.scrape(t)
	for _, st := range []string{"closed", "open", "half-open", "disabled"} {
		want := 0.0
		if st == "closed" {
			want = 1
		}
		expectMetric(t, body, "nexus_circuit_state", da(map[string]string{"state": st}), want)
	}
	expectMetric(t, body, "nexus_circuit_calls_total", da(map[string]string{"outcome": "rejected"}), 0)
	expectMetric(t, body, "nexus_circuit_forced", da(nil), 0)
	expectMetric(t, body, "nexus_alerts_dropped_total", nil, 0)
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := metric(body, name, nil); !ok {
			t.Errorf("runtime/process series %s missing", name)
		}
	}

	n.LLM.EnqueueFor(analystModel, fakellm.Reply("ok"), fakellm.Status(400, "too long"), fakellm.Hang(), fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusOK)
	expectStatus(t, n.analyze(t), http.StatusUnprocessableEntity)
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable) // timeout
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable) // 500 opens it
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable) // rejected
	n.get(t, "/no/such/route")

	body = n.scrape(t)
	for outcome, want := range map[string]float64{"success": 1, "neutral": 1, "timeout": 1, "failure": 1, "rejected": 1} {
		expectMetric(t, body, "nexus_circuit_calls_total", da(map[string]string{"outcome": outcome}), want)
	}
	expectMetric(t, body, "nexus_circuit_state", da(map[string]string{"state": "open"}), 1)
	expectMetric(t, body, "nexus_circuit_transitions_total", da(map[string]string{"from": "closed", "to": "open"}), 1)
	expectMetric(t, body, "nexus_llm_request_duration_seconds_count", da(map[string]string{"model": analystModel, "outcome": "timeout"}), 1)
	expectMetric(t, body, "nexus_http_requests_total", map[string]string{"route": "/analyze", "method": "POST", "code": "503"}, 3)
	expectMetric(t, body, "nexus_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "code": "404"}, 1)
	if strings.Contains(body, "/no/such/route") {
		t.Fatal("a raw request path became a label")
	}

	// The lazy half-open shows at scrape time, with no call made.
	eventually(t, 10*time.Second, "half-open in metrics", func() bool {
		v, _ := metric(n.scrape(t), "nexus_circuit_state", da(map[string]string{"state": "half-open"}))
		return v == 1
	})
}

// metrics_enabled false hides /metrics; log_circuit_changes false keeps
// transitions out of the log.
func TestFlagsShouldTurnMetricsAndTransitionLogsOff(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 2), func(o *startOpts) {
		o.cfg.CircuitBreaker.MetricsEnabled = false
		o.cfg.CircuitBreaker.LogCircuitChanges = false
	})
	expectStatus(t, n.get(t, "/metrics"), http.StatusNotFound)
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	if n.state(t, "data_analyst") != "open" {
		t.Fatal("circuit should be open")
	}
	if got := n.logs.lines("circuit state changed"); len(got) != 0 {
		t.Fatalf("transitions logged with log_circuit_changes false: %v", got)
	}
}

// The admin API exists only with a token, and refuses a wrong one.
func TestAdminAPIShouldNeedItsToken(t *testing.T) {
	t.Parallel()
	off := startNexus(t)
	r := off.admin(t, http.MethodPost, "/api/circuits/data_analyst/open", "anything")
	expectStatus(t, r, http.StatusNotFound)

	n := startNexus(t, withAdmin)
	for _, tok := range []string{"", "wrong-token", adminToken + "x"} {
		r := n.admin(t, http.MethodPost, "/api/circuits/data_analyst/open", tok)
		expectStatus(t, r, http.StatusUnauthorized)
		if errorCode(r) != "unauthorized" {
			t.Fatalf("401 body: %s", r.Raw)
		}
	}
	if s := n.state(t, "data_analyst"); s != "closed" {
		t.Fatalf("a refused admin call changed the state to %s", s)
	}
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/nope/open", adminToken), http.StatusNotFound)
	expectStatus(t, n.admin(t, http.MethodGet, "/api/circuits/data_analyst/events", "wrong"), http.StatusUnauthorized)
	if strings.Contains(n.logs.String(), adminToken) {
		t.Fatal("the admin token reached the logs")
	}
}

// A forced open holds past the recovery timeout, rejects with
// Retry-After = recovery_timeout, and ends only with close or reset.
func TestForcedOpenShouldHoldUntilClosed(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin, withCircuit(config.CircuitDataAnalyst, 3, 1, 0.3, 2))
	r := n.admin(t, http.MethodPost, "/api/circuits/data_analyst/open", adminToken)
	expectStatus(t, r, http.StatusOK)
	if r.Body["state"] != "open" || r.Body["forced"] != true {
		t.Fatalf("open answer: %s", r.Raw)
	}
	deadline := time.Now().Add(700 * time.Millisecond) // > 2 recovery timeouts
	for time.Now().Before(deadline) {
		c := n.circuit(t, "data_analyst")
		if c["state"] != "open" || c["forced"] != true || c["remaining_delay_seconds"] != 0.0 {
			t.Fatalf("forced open drifted: %v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = n.analyze(t)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if errorCode(r) != "circuit_open" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("forced rejection: Retry-After %q, %s", r.Header.Get("Retry-After"), r.Raw)
	}
	if n.LLM.Requests() != 0 {
		t.Fatal("a forced-open circuit called the LLM")
	}
	body := n.scrape(t)
	expectMetric(t, body, "nexus_circuit_forced", map[string]string{"circuit": "data_analyst"}, 1)

	r = n.admin(t, http.MethodPost, "/api/circuits/data_analyst/close", adminToken)
	expectStatus(t, r, http.StatusOK)
	if r.Body["state"] != "closed" || r.Body["forced"] != false {
		t.Fatalf("close answer: %s", r.Raw)
	}
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("back"))
	expectStatus(t, n.analyze(t), http.StatusOK)
	ts := n.circuit(t, "data_analyst")["recent_transitions"].([]any)
	if len(ts) != 2 || ts[0].(map[string]any)["to"] != "open" || ts[1].(map[string]any)["to"] != "closed" || ts[0].(map[string]any)["forced"] != true {
		t.Fatalf("recent_transitions: %v", ts)
	}

	// reset closes and zeroes statistics.
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/data_analyst/open", adminToken), http.StatusOK)
	r = n.admin(t, http.MethodPost, "/api/circuits/data_analyst/reset", adminToken)
	expectStatus(t, r, http.StatusOK)
	st := r.Body["statistics"].(map[string]any)
	if r.Body["state"] != "closed" || st["total_calls"] != 0.0 || st["rejected_count"] != 0.0 || st["success_count"] != 0.0 {
		t.Fatalf("reset answer: %s", r.Raw)
	}
	if got := len(n.logs.lines("admin action")); got != 4 {
		t.Fatalf("admin actions logged %d times, want 4", got)
	}
}

// The events endpoint lists transitions, classified failures, summarised
// rejections and forced changes, each with a time.
func TestEventsShouldListWhatHappenedToACircuit(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 0.2))
	n.LLM.EnqueueFor(analystModel, fakellm.Hang())
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	for i := 0; i < 3; i++ {
		expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	}
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/data_analyst/close", adminToken), http.StatusOK)
	r := n.admin(t, http.MethodGet, "/api/circuits/data_analyst/events", adminToken)
	expectStatus(t, r, http.StatusOK)
	events := r.Body["events"].([]any)
	var types []string
	for _, e := range events {
		m := e.(map[string]any)
		if m["at"] == nil || m["at"] == "" {
			t.Fatalf("event without a time: %v", m)
		}
		types = append(types, m["type"].(string))
		switch m["type"] {
		case "failure":
			if m["kind"] != "llm_timeout" {
				t.Fatalf("failure event: %v", m)
			}
		case "rejected":
			if m["count"] != 3.0 {
				t.Fatalf("rejections not summarised: %v", m)
			}
		}
	}
	want := []string{"failure", "transition", "rejected", "forced"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("event types = %v, want %v", types, want)
	}
}

func rewriteConfig(t *testing.T, path string, mutate func(*config.Config)) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	mutate(&cfg)
	data, _ := json.MarshalIndent(cfg, "", "  ")
	writeAtomically(t, path, data)
}

// writeAtomically replaces the file as editors do: write aside, rename.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Editing the config file reloads it live: a changed circuit is rebuilt
// closed with its statistics kept, an unchanged one keeps its state, and no
// request in flight fails because of the reload.
func TestReloadShouldApplyAFileEditWhileRequestsFlow(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 1, 1, 30, 2), withCircuit(config.CircuitCodeGenerator, 5, 1, 30, 2))
	// Open data_analyst; code_generator keeps serving.
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	n.LLM.SetDefaultFor(codegenModel, fakellm.Delay(20*time.Millisecond, "```python\nresult = 1\n```"))

	var failed atomic.Int64
	var sent atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				r := n.generate(t)
				sent.Add(1)
				if r.Status != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	before := n.stats(t, "code_generator")["success_count"].(float64)
	rewriteConfig(t, n.ConfigPath, func(c *config.Config) {
		cg := c.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
		cg.FailureThreshold = 4
		c.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = cg
	})
	eventually(t, 5*time.Second, "code_generator rebuilt with failure_threshold 4", func() bool {
		return n.circuit(t, "code_generator")["config"].(map[string]any)["failure_threshold"] == 4.0
	})
	eventually(t, 5*time.Second, "more requests after the reload", func() bool { return sent.Load() > 40 })
	close(stopLoad)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the reload", failed.Load(), sent.Load())
	}
	if got := n.stats(t, "code_generator")["success_count"].(float64); got < before {
		t.Fatalf("statistics lost on rebuild: %v < %v", got, before)
	}
	if s := n.state(t, "data_analyst"); s != "open" {
		t.Fatalf("unchanged data_analyst lost its state: %s", s)
	}
	if got := len(n.logs.lines("config reloaded")); got != 1 {
		t.Fatalf("one save gave %d reloads", got)
	}
	if len(n.logs.lines("circuit rebuilt by config reload")) != 1 {
		t.Fatalf("rebuild not logged:\n%s", n.logs.String())
	}
}

// An invalid config is rejected whole and shows in health; fixing it clears
// the error. SIGHUP (here: the reload channel) and the admin endpoint
// reload too, and enabled, expose_health_endpoint and metrics_enabled
// apply live.
func TestReloadShouldRejectAnInvalidConfigAndApplyFlagsLive(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin)
	good, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	loaded := n.get(t, "/api/health/status").Body["config"].(map[string]any)["loaded_at"]

	writeAtomically(t, n.ConfigPath, []byte(strings.Replace(string(good), `"failure_threshold": 3`, `"failure_treshold": 3`, 1)))
	eventually(t, 5*time.Second, "last_reload_error", func() bool {
		return n.get(t, "/api/health/status").Body["config"].(map[string]any)["last_reload_error"] != nil
	})
	cfgStatus := n.get(t, "/api/health/status").Body["config"].(map[string]any)
	if !strings.Contains(cfgStatus["last_reload_error"].(string), "failure_treshold: unknown key") || cfgStatus["loaded_at"] != loaded {
		t.Fatalf("config status: %v", cfgStatus)
	}
	r := n.admin(t, http.MethodPost, "/api/config/reload", adminToken)
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if errorCode(r) != "invalid_config" {
		t.Fatalf("reload answer: %s", r.Raw)
	}

	// Fix it, turn circuit breakers off, and reload through SIGHUP's path.
	var cfg config.Config
	if err := json.Unmarshal(good, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.CircuitBreaker.Enabled = false
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(n.ConfigPath+".next", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(n.ConfigPath+".next", n.ConfigPath); err != nil {
		t.Fatal(err)
	}
	n.hup <- struct{}{}
	eventually(t, 5*time.Second, "circuits disabled", func() bool { return n.state(t, "data_analyst") == "disabled" })
	if e := n.get(t, "/api/health/status").Body["config"].(map[string]any)["last_reload_error"]; e != nil {
		t.Fatalf("last_reload_error not cleared: %v", e)
	}

	cfg.CircuitBreaker.Enabled = true
	cfg.CircuitBreaker.MetricsEnabled = false
	cfg.CircuitBreaker.ExposeHealthEndpoint = false
	data, _ = json.Marshal(cfg)
	writeAtomically(t, n.ConfigPath, data)
	r = n.admin(t, http.MethodPost, "/api/config/reload", adminToken)
	expectStatus(t, r, http.StatusOK)
	eventually(t, 5*time.Second, "health hidden", func() bool { return n.get(t, "/api/health/status").Status == http.StatusNotFound })
	// The 404 says why, so that the dashboard can tell it from a proxy's.
	if r := n.get(t, "/api/health/status"); errorCode(r) != "health_endpoint_disabled" ||
		r.Body["error"].(map[string]any)["message"] != "the health endpoint is turned off: circuit_breaker.expose_health_endpoint is false" {
		t.Fatalf("hidden health answer: %s", r.Raw)
	}
	expectStatus(t, n.get(t, "/metrics"), http.StatusNotFound)
}

// A change to a restart-only section is logged as "restart required" and
// ignored: the old value stays in force, and the reload still succeeds.
func TestReloadShouldKeepRestartOnlySettingsUntilRestart(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin)
	rewriteConfig(t, n.ConfigPath, func(c *config.Config) {
		c.Server.MaxBodyBytes = 16
		c.Datasets.MaxRows = 1
		c.CircuitBreaker.LogCircuitChanges = false
	})
	r := n.admin(t, http.MethodPost, "/api/config/reload", adminToken)
	expectStatus(t, r, http.StatusOK)
	sections := map[string]bool{}
	for _, l := range n.logs.lines("restart required: config change ignored until then") {
		if l["level"] != "warn" {
			t.Fatalf("restart-required line not at WARN: %v", l)
		}
		sections[l["section"].(string)] = true
	}
	// The file watcher may reload the same change a second time; each
	// reload names the same sections.
	if len(sections) != 2 || !sections["server"] || !sections["datasets"] {
		t.Fatalf("restart-required sections = %v, want server and datasets:\n%s", sections, n.logs.String())
	}
	if e := n.get(t, "/api/health/status").Body["config"].(map[string]any)["last_reload_error"]; e != nil {
		t.Fatalf("last_reload_error = %v", e)
	}
	// The body limit in force is still the old one; the live flag applied.
	expectStatus(t, n.analyze(t), http.StatusOK)
	if got := n.logs.lines("config reloaded"); len(got) == 0 || got[len(got)-1]["log_circuit_changes"] != false {
		t.Fatalf("live flag not applied: %v", got)
	}
}

// A webhook hears of a circuit opening and closing again.
func TestAlertsShouldPostTransitionsToTheWebhook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	n := startNexus(t, withAdmin, withCircuit(config.CircuitDataAnalyst, 1, 1, 0.2, 2), func(o *startOpts) {
		o.cfg.Alerts.WebhookURL = hook.URL + "/alerts"
	})
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "down"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	eventually(t, 10*time.Second, "half-open", func() bool { return n.state(t, "data_analyst") == "half-open" })
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("back"))
	expectStatus(t, n.analyze(t), http.StatusOK)
	eventually(t, 5*time.Second, "two alerts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	})
	// Forced transitions alert too.
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/visualization/open", adminToken), http.StatusOK)
	eventually(t, 5*time.Second, "the forced-open alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3 && got[2]["circuit"] == "visualization" && got[2]["to"] == "open"
	})
	mu.Lock()
	defer mu.Unlock()
	sort.SliceStable(got, func(i, j int) bool { return got[i]["time"].(string) < got[j]["time"].(string) })
	if got[0]["circuit"] != "data_analyst" || got[0]["from"] != "closed" || got[0]["to"] != "open" || got[0]["reason"] == "" {
		t.Fatalf("open alert: %v", got[0])
	}
	if got[1]["from"] != "half-open" || got[1]["to"] != "closed" {
		t.Fatalf("close alert: %v", got[1])
	}
	if st, ok := got[0]["statistics"].(map[string]any); !ok || st["failure_count"] != 1.0 {
		t.Fatalf("alert statistics: %v", got[0]["statistics"])
	}
}

// Given a circuit with failure_threshold 3, when an operator closes or
// resets it, either from closed with two failures counted or from open,
// then consecutive_failures is 0 and it takes exactly three more upstream
// failures to open it again: the third opens it and the fourth call is
// rejected without reaching the LLM.
func TestAdminCloseAndResetShouldZeroTheFailureStreak(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"close", "reset"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			n := startNexus(t, withAdmin, withCircuit(config.CircuitDataAnalyst, 3, 1, 30, 2))
			n.LLM.SetDefaultFor(analystModel, fakellm.Status(500, "down"))

			// expectOpensAfterThree sends failing calls one by one and
			// checks the streak and the state after each.
			expectOpensAfterThree := func(t *testing.T) {
				t.Helper()
				before := n.LLM.RequestsFor(analystModel)
				for i := 1; i <= 3; i++ {
					expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
					want := "closed"
					if i == 3 {
						want = "open"
					}
					if got := n.state(t, config.CircuitDataAnalyst); got != want {
						t.Fatalf("after %d failures: state %s, want %s", i, got, want)
					}
					expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"consecutive_failures": float64(i)})
				}
				r := n.analyze(t)
				expectStatus(t, r, http.StatusServiceUnavailable)
				if errorCode(r) != "circuit_open" {
					t.Fatalf("fourth call: %s", r.Raw)
				}
				if got := n.LLM.RequestsFor(analystModel) - before; got != 3 {
					t.Fatalf("upstream requests = %d, want 3", got)
				}
			}
			act := func(t *testing.T) {
				t.Helper()
				r := n.admin(t, http.MethodPost, "/api/circuits/data_analyst/"+action, adminToken)
				expectStatus(t, r, http.StatusOK)
				if st := r.Body["statistics"].(map[string]any); r.Body["state"] != "closed" || st["consecutive_failures"] != 0.0 {
					t.Fatalf("%s answer: %s", action, r.Raw)
				}
				expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"consecutive_failures": 0})
			}

			// From closed, two failures into the streak.
			for i := 0; i < 2; i++ {
				expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
			}
			expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"consecutive_failures": 2})
			act(t)
			expectOpensAfterThree(t)

			// From open.
			act(t)
			expectOpensAfterThree(t)
		})
	}
}

// Given a circuit held open by an operator, when a request needs it, then
// the 503's error and fallback agree: both say an operator holds it, the
// fallback names the admin route that releases it and promises no
// recovery time; once released and then opened by failures, the fallback
// says again that it recovers on its own.
func TestForcedOpenFallbackShouldSayAnOperatorHoldsTheCircuit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		circuit, model string
		send           func(*nexus, testing.TB) response
		forced, auto   string
	}{
		{
			circuit: config.CircuitDataAnalyst, model: analystModel, send: (*nexus).analyze,
			forced: "The data analysis service is switched off: an operator holds its circuit (data_analyst) open. " +
				"It stays off until an operator releases it with POST /api/circuits/data_analyst/close or /reset; it does not recover on its own.",
			auto: "The data analysis service is temporarily unavailable. It recovers on its own; try again in %s s.",
		},
		{
			circuit: config.CircuitCodeGenerator, model: codegenModel, send: (*nexus).generate,
			forced: "Code generation is switched off: an operator holds its circuit (code_generator) open. " +
				"It stays off until an operator releases it with POST /api/circuits/code_generator/close or /reset; it does not recover on its own.",
			auto: "Code generation is temporarily unavailable. It recovers on its own; try again in %s s.",
		},
	} {
		t.Run(tc.circuit, func(t *testing.T) {
			t.Parallel()
			n := startNexus(t, withAdmin, withCircuit(tc.circuit, 1, 1, 30, 2))
			expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/"+tc.circuit+"/open", adminToken), http.StatusOK)

			r := tc.send(n, t)
			expectStatus(t, r, http.StatusServiceUnavailable)
			msg := r.Body["error"].(map[string]any)["message"]
			fb := r.Body["fallback"].(map[string]any)
			if errorCode(r) != "circuit_open" || msg != "circuit "+tc.circuit+" is held open by an operator; no request was sent" {
				t.Fatalf("forced error: %s", r.Raw)
			}
			if fb["message"] != tc.forced {
				t.Fatalf("forced fallback.message = %q\nwant %q", fb["message"], tc.forced)
			}
			if fb["retry_after_seconds"] != 30.0 || len(fb["alternatives"].([]any)) == 0 {
				t.Fatalf("forced fallback: %v", fb)
			}
			if got := n.LLM.RequestsFor(tc.model); got != 0 {
				t.Fatalf("%d upstream requests through a forced-open circuit", got)
			}

			// Released, then opened by a failure: it recovers on its own.
			expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/"+tc.circuit+"/close", adminToken), http.StatusOK)
			n.LLM.SetDefaultFor(tc.model, fakellm.Status(500, "down"))
			expectStatus(t, tc.send(n, t), http.StatusServiceUnavailable)
			r = tc.send(n, t)
			expectStatus(t, r, http.StatusServiceUnavailable)
			fb = r.Body["fallback"].(map[string]any)
			// The remaining delay, whatever time the two requests took.
			retry := r.Header.Get("Retry-After")
			if secs, err := strconv.Atoi(retry); err != nil || secs < 1 || secs > 30 {
				t.Fatalf("Retry-After = %q, want 1 to 30", retry)
			}
			if want := fmt.Sprintf(tc.auto, retry); errorCode(r) != "circuit_open" || fb["message"] != want {
				t.Fatalf("open after a failure: fallback.message %q\nwant %q\n%s", fb["message"], want, r.Raw)
			}
		})
	}
}
