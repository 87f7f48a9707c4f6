package api

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// overallHealth is exercised end to end in test/; the all-open case needs
// every circuit open, and two of the four have no endpoint yet.
func TestOverallHealth(t *testing.T) {
	t.Parallel()
	st := func(states ...string) []circuit.CircuitStatus {
		out := make([]circuit.CircuitStatus, len(states))
		for i, s := range states {
			out[i].State = s
		}
		return out
	}
	cases := []struct {
		name   string
		states []circuit.CircuitStatus
		want   string
	}{
		{"all closed", st("closed", "closed", "closed", "closed"), "healthy"},
		{"all disabled", st("disabled", "disabled"), "healthy"},
		{"all open", st("open", "open", "open", "open"), "unhealthy"},
		{"one open", st("open", "closed", "closed", "closed"), "degraded"},
		{"one half-open", st("half-open", "closed"), "degraded"},
		{"open and half-open", st("open", "half-open"), "degraded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := overallHealth(tc.states); got != tc.want {
				t.Fatalf("overallHealth = %q, want %q", got, tc.want)
			}
		})
	}
}

// streamer answers every request with its pieces, streamed.
type streamer struct{ pieces []string }

func (f streamer) Chat(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error) {
	return llm.ChatResponse{Content: strings.Join(f.pieces, ""), Model: model}, nil
}

func (f streamer) ChatStream(ctx context.Context, model string, req llm.ChatRequest, onDelta func(string)) (llm.ChatResponse, error) {
	for _, p := range f.pieces {
		onDelta(p)
	}
	return llm.ChatResponse{Content: strings.Join(f.pieces, ""), Model: model}, nil
}

// healthOf serves GET /api/health/status over r once and decodes the
// circuits' entries, by name, as JSON objects.
func healthOf(t *testing.T, r CircuitReporter) map[string]map[string]any {
	t.Helper()
	live := config.NewLive("nexus.json", config.Default(), time.Now())
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/api/health/status", nil), rec)
	if err := handleHealthStatus(r, nil, nil, nil, nil, live, "test", time.Now(), time.Now)(c); err != nil {
		t.Fatal(err)
	}
	var body struct {
		CircuitBreakers struct {
			CircuitBreakers []map[string]any `json:"circuit_breakers"`
		} `json:"circuit_breakers"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	out := map[string]map[string]any{}
	for _, c := range body.CircuitBreakers.CircuitBreakers {
		out[c["name"].(string)] = c
	}
	return out
}

// A circuit's time_to_first_token_p50_ms is null until a streamed attempt
// gets a first token, then the circuit's own median in milliseconds; the
// config shows the effective first_token_timeout and the slow-call keys.
func TestHealthShouldReportTheFirstTokenMedianOnceAStreamHadOne(t *testing.T) {
	t.Parallel()
	// Given two circuits, neither streamed through yet; planner's
	// first_token_timeout left at 0, coder's set with slow calls on
	target := func() []circuit.TargetSpec {
		return []circuit.TargetSpec{{Provider: "default", Model: "m", URL: "http://llm.test", Endpoint: "http://llm.test/v1",
			LLM: streamer{pieces: []string{"Hello", " world"}}}}
	}
	settings := circuit.Settings{FailureThreshold: 3, SuccessThreshold: 1, RecoveryTimeout: time.Minute, Timeout: 30 * time.Second,
		MaxAttempts: 1, RetryBackoff: time.Second, MaxRetryBackoff: time.Second, RecoveryBackoffMultiplier: 1,
		MaxRecoveryTimeout: time.Minute, FailureRateWindow: time.Minute, MinimumCalls: 10}
	coder := settings
	coder.FirstTokenTimeout, coder.SlowCallThreshold, coder.SlowCallRateThreshold = 5*time.Second, 2500*time.Millisecond, 50
	reg := circuit.NewRegistry(circuit.RegistryConfig{Enabled: true, Circuits: []circuit.Spec{
		{Name: "planner", Settings: settings, Targets: target()},
		{Name: "coder", Settings: coder, Targets: target()},
	}}, circuit.Options{})
	t.Cleanup(reg.Close)

	// Then health says null, not 0, and is explicit about it
	before := healthOf(t, reg)
	for _, name := range []string{"planner", "coder"} {
		v, ok := before[name]["time_to_first_token_p50_ms"]
		if !ok || v != nil {
			t.Fatalf("%s time_to_first_token_p50_ms = %v (present %v), want null", name, v, ok)
		}
	}
	for name, want := range map[string][3]float64{"planner": {30, 0, 0}, "coder": {5, 2.5, 50}} {
		cfg := before[name]["config"].(map[string]any)
		got := [3]float64{cfg["first_token_timeout"].(float64), cfg["slow_call_threshold"].(float64), cfg["slow_call_rate_threshold"].(float64)}
		if got != want {
			t.Errorf("%s config first_token_timeout, slow_call_threshold, slow_call_rate_threshold = %v, want %v", name, got, want)
		}
	}

	// When planner streams one answer
	planner, err := reg.Lookup("planner")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Stream(context.Background(), llm.ChatRequest{}, func(string) {}); err != nil {
		t.Fatal(err)
	}

	// Then planner reports its median in milliseconds, coder still null
	after := healthOf(t, reg)
	p50, ok := planner.TimeToFirstTokenP50()
	if !ok {
		t.Fatal("no first-token median after a streamed call")
	}
	want := math.Round(float64(p50)/1e4) / 100
	if got, isNum := after["planner"]["time_to_first_token_p50_ms"].(float64); !isNum || got != want {
		t.Fatalf("planner time_to_first_token_p50_ms = %v, want %v (the circuit's median, %s)", after["planner"]["time_to_first_token_p50_ms"], want, p50)
	}
	if v := after["coder"]["time_to_first_token_p50_ms"]; v != nil {
		t.Fatalf("coder time_to_first_token_p50_ms = %v, want null", v)
	}
}
