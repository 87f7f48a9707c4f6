package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
)

// Health values, per circuit and overall.
const (
	healthHealthy   = "healthy"
	healthDegraded  = "degraded"
	healthUnhealthy = "unhealthy"
)

// codeHealthDisabled is the error code of GET /api/health/status while
// circuit_breaker.expose_health_endpoint is false.
const codeHealthDisabled = "health_endpoint_disabled"

type healthResponse struct {
	Status          string          `json:"status"`
	Timestamp       time.Time       `json:"timestamp"`
	Version         string          `json:"version"`
	UptimeSeconds   float64         `json:"uptime_seconds"`
	Config          config.Status   `json:"config"`
	CircuitBreakers circuitsSection `json:"circuit_breakers"`
	// Workers is the DuckDB worker pool: size, busy, restarts and
	// last_kill_reason.
	Workers *dataset.PoolStats `json:"workers,omitempty"`
}

type circuitsSection struct {
	Enabled         bool            `json:"enabled"`
	OverallHealth   string          `json:"overall_health"`
	CircuitBreakers []circuitHealth `json:"circuit_breakers"`
}

type circuitHealth struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Health string `json:"health"`
	Forced bool   `json:"forced"`
	Model  string `json:"model"`
	// LLMBaseURL is where the circuit's calls go, without userinfo, query
	// or secrets.
	LLMBaseURL string `json:"llm_base_url"`
	// Guards lists the routes whose LLM calls go through the circuit.
	Guards                []guardedRoute `json:"guards"`
	Config                circuitConfig  `json:"config"`
	RemainingDelaySeconds float64        `json:"remaining_delay_seconds"`
	InFlight              int            `json:"in_flight"`
	RecentTransitions     []transition   `json:"recent_transitions"`
	Statistics            circuit.Stats  `json:"statistics"`
}

// guardedRoute is one route whose LLM calls a circuit guards.
type guardedRoute struct {
	Endpoint string `json:"endpoint"`
	// Step is the /analyze pipeline step (as its steps report it) whose
	// calls go through the circuit; empty when every LLM call of the
	// endpoint does.
	Step string `json:"step,omitempty"`
}

// circuitGuards maps each circuit to the routes it guards, as
// cmd/server/app wires the analyst's Answerer, Planner, Critic and Charter
// and the code generator. An end-to-end test checks it against the
// circuits that /analyze's steps and /generate report.
var circuitGuards = map[string][]guardedRoute{
	config.CircuitDataAnalyst:   {{Endpoint: "POST /analyze", Step: agent.StepAnswer}},
	config.CircuitCodeGenerator: {{Endpoint: "POST /generate"}, {Endpoint: "POST /analyze", Step: agent.StepPlan}},
	config.CircuitCoTEngine:     {{Endpoint: "POST /analyze", Step: agent.StepReview}},
	config.CircuitVisualization: {{Endpoint: "POST /analyze", Step: agent.StepChart}},
}

type transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Forced bool      `json:"forced"`
}

type circuitConfig struct {
	FailureThreshold int     `json:"failure_threshold"`
	RecoveryTimeout  float64 `json:"recovery_timeout"`
	SuccessThreshold int     `json:"success_threshold"`
	Timeout          float64 `json:"timeout"`
	MaxConcurrent    int     `json:"max_concurrent"`
}

func handleHealthStatus(r CircuitReporter, store DatasetStore, settings Settings, version string, started time.Time, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !settings.Current().CircuitBreaker.ExposeHealthEndpoint {
			// A code of its own, so that the dashboard can tell a
			// turned-off endpoint from a proxy's 404 or a dead server.
			return &Error{Status: http.StatusNotFound, Code: codeHealthDisabled,
				Message: "the health endpoint is turned off: circuit_breaker.expose_health_endpoint is false"}
		}
		statuses := r.Statuses()
		list := make([]circuitHealth, 0, len(statuses))
		for _, s := range statuses {
			list = append(list, circuitHealthFrom(s))
		}
		overall := overallHealth(statuses)
		t := now()
		var workers *dataset.PoolStats
		if store != nil {
			w := store.Stats().Workers
			workers = &w
		}
		return c.JSON(http.StatusOK, healthResponse{
			Workers:       workers,
			Status:        overall,
			Timestamp:     t.UTC(),
			Version:       version,
			UptimeSeconds: float64(t.Sub(started).Milliseconds()) / 1000,
			Config:        settings.Status(),
			CircuitBreakers: circuitsSection{
				Enabled:         r.Enabled(),
				OverallHealth:   overall,
				CircuitBreakers: list,
			},
		})
	}
}

func circuitHealthFrom(s circuit.CircuitStatus) circuitHealth {
	ts := make([]transition, 0, len(s.RecentTransitions))
	for _, t := range s.RecentTransitions {
		ts = append(ts, transition{From: t.From, To: t.To, At: t.At.UTC(), Reason: t.Reason, Forced: t.Forced})
	}
	guards := circuitGuards[s.Name]
	if guards == nil {
		guards = []guardedRoute{}
	}
	return circuitHealth{
		Name:       s.Name,
		State:      s.State,
		Health:     circuitHealthOf(s.State),
		Forced:     s.Forced,
		Model:      s.Model,
		LLMBaseURL: s.Target,
		Guards:     guards,
		Config: circuitConfig{
			FailureThreshold: s.Config.FailureThreshold,
			RecoveryTimeout:  float64(s.Config.RecoveryTimeout),
			SuccessThreshold: s.Config.SuccessThreshold,
			Timeout:          float64(s.Config.Timeout),
			MaxConcurrent:    s.Config.MaxConcurrent,
		},
		RemainingDelaySeconds: float64(s.RemainingDelay.Milliseconds()) / 1000,
		InFlight:              s.InFlight,
		RecentTransitions:     ts,
		Statistics:            s.Stats,
	}
}

func circuitHealthOf(state string) string {
	switch state {
	case circuit.StateOpen:
		return healthUnhealthy
	case circuit.StateHalfOpen:
		return healthDegraded
	default:
		return healthHealthy
	}
}

// overallHealth is healthy when every circuit is closed or disabled,
// unhealthy when every circuit is open, and degraded otherwise.
func overallHealth(statuses []circuit.CircuitStatus) string {
	open, fine := 0, 0
	for _, s := range statuses {
		switch s.State {
		case circuit.StateOpen:
			open++
		case circuit.StateClosed, circuit.StateDisabled:
			fine++
		}
	}
	switch {
	case fine == len(statuses):
		return healthHealthy
	case open == len(statuses):
		return healthUnhealthy
	default:
		return healthDegraded
	}
}

func handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}
