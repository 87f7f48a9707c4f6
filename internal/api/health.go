package api

import (
	"math"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
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
	// Providers are the LLM providers with their last probe (GET
	// {base_url}/models): name, base URL (scheme and host), reachable,
	// last_probe_at and latency_ms; null until the first probe ends.
	Providers []providerHealth `json:"providers"`
	// Workers is the DuckDB worker pool: size, busy, restarts and
	// last_kill_reason.
	Workers *dataset.PoolStats `json:"workers,omitempty"`
	// Sources are the live sources with their last check: reachable,
	// latency_ms, last_error (redacted) and last_checked_at.
	Sources []sourceHealth `json:"sources"`
}

// sourceHealth is a live source's reachability, as its prober and its
// queries last found it.
type sourceHealth struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	pgsource.Health
}

type providerHealth struct {
	Name        string     `json:"name"`
	BaseURL     string     `json:"base_url"`
	Reachable   *bool      `json:"reachable"`
	LastProbeAt *time.Time `json:"last_probe_at"`
	LatencyMS   *float64   `json:"latency_ms"`
	LastError   *string    `json:"last_error"`
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
	// TimeToFirstTokenP50MS is the median wait for the first token, in
	// milliseconds, over the circuit's last 256 streamed attempts that got
	// one (any target's); null while there were none.
	TimeToFirstTokenP50MS *float64     `json:"time_to_first_token_p50_ms"`
	RecentTransitions     []transition `json:"recent_transitions"`
	// Statistics add up every target's; consecutive_failures is the first
	// target's.
	Statistics circuit.Stats `json:"statistics"`
	// Available is true while any target admits calls.
	Available bool `json:"available"`
	// Targets are the circuit's targets in the order calls try them; the
	// circuit's own state is the first one's.
	Targets []targetHealth `json:"targets"`
}

// targetHealth is one (circuit, target) pair's breaker.
type targetHealth struct {
	Provider   string `json:"provider"`
	Model      string `json:"model"`
	LLMBaseURL string `json:"llm_base_url"`
	State      string `json:"state"`
	Forced     bool   `json:"forced"`
	// Admits is true when the target would take a call now.
	Admits bool `json:"admits"`
	// CoolingDownUntil is set while the upstream's Retry-After holds the
	// target back.
	CoolingDownUntil      *time.Time `json:"cooling_down_until"`
	RemainingDelaySeconds float64    `json:"remaining_delay_seconds"`
	// CurrentRecoveryTimeout is the open delay the target has now, grown
	// by recovery_backoff_multiplier on each reopening since it last closed.
	CurrentRecoveryTimeout float64       `json:"current_recovery_timeout"`
	InFlight               int           `json:"in_flight"`
	RecentTransitions      []transition  `json:"recent_transitions"`
	Statistics             circuit.Stats `json:"statistics"`
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
	// Provider and Model name the target that changed state.
	Provider string    `json:"provider"`
	Model    string    `json:"model"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
	Forced   bool      `json:"forced"`
}

type circuitConfig struct {
	FailureThreshold          int     `json:"failure_threshold"`
	RecoveryTimeout           float64 `json:"recovery_timeout"`
	SuccessThreshold          int     `json:"success_threshold"`
	Timeout                   float64 `json:"timeout"`
	MaxConcurrent             int     `json:"max_concurrent"`
	MaxAttempts               int     `json:"max_attempts"`
	RetryBackoff              float64 `json:"retry_backoff"`
	MaxRetryBackoff           float64 `json:"max_retry_backoff"`
	MaxRetryAfter             float64 `json:"max_retry_after"`
	RecoveryBackoffMultiplier float64 `json:"recovery_backoff_multiplier"`
	MaxRecoveryTimeout        float64 `json:"max_recovery_timeout"`
	FailureRateThreshold      float64 `json:"failure_rate_threshold"`
	FailureRateWindow         float64 `json:"failure_rate_window"`
	MinimumCalls              int     `json:"minimum_calls"`
	HedgeAfter                float64 `json:"hedge_after"`
	HedgeBudgetPercent        float64 `json:"hedge_budget_percent"`
	RecoveryProbe             bool    `json:"recovery_probe"`
	// FirstTokenTimeout is the effective one: the circuit's timeout when
	// the file leaves it at 0.
	FirstTokenTimeout     float64 `json:"first_token_timeout"`
	SlowCallThreshold     float64 `json:"slow_call_threshold"`
	SlowCallRateThreshold float64 `json:"slow_call_rate_threshold"`
}

func handleHealthStatus(r CircuitReporter, providers ProviderReporter, store DatasetStore, sources Sources, redactor *redact.Redactor,
	settings Settings, version string, started time.Time, now func() time.Time) echo.HandlerFunc {
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
			h := circuitHealthFrom(s)
			h.TimeToFirstTokenP50MS = firstTokenP50(r, s.Name)
			list = append(list, h)
		}
		overall := overallHealth(statuses)
		t := now()
		var workers *dataset.PoolStats
		if store != nil {
			w := store.Stats().Workers
			workers = &w
		}
		provs := []providerHealth{}
		if providers != nil {
			for _, p := range providers.Statuses() {
				provs = append(provs, providerHealth{Name: p.Name, BaseURL: p.URL, Reachable: p.Reachable,
					LastProbeAt: p.LastProbeAt, LatencyMS: p.LatencyMS, LastError: p.LastError})
			}
		}
		srcs := []sourceHealth{}
		if sources != nil {
			for _, s := range sources.All() {
				srcs = append(srcs, sourceHealth{Name: s.Name(), Kind: sourceKind, Health: redactHealth(s.Health(), redactor)})
			}
		}
		return c.JSON(http.StatusOK, healthResponse{
			Providers:     provs,
			Sources:       srcs,
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

func transitionsOf(list []circuit.Transition) []transition {
	ts := make([]transition, 0, len(list))
	for _, t := range list {
		ts = append(ts, transition{Provider: t.Provider, Model: t.Model, From: t.From, To: t.To, At: t.At.UTC(), Reason: t.Reason, Forced: t.Forced})
	}
	return ts
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// firstTokenP50 is the named circuit's median wait for a first token, in
// milliseconds to 2 decimals, or nil while no streamed attempt got one.
func firstTokenP50(r CircuitReporter, name string) *float64 {
	c, err := r.Lookup(name)
	if err != nil {
		return nil
	}
	d, ok := c.TimeToFirstTokenP50()
	if !ok {
		return nil
	}
	ms := math.Round(float64(d)/float64(10*time.Microsecond)) / 100
	return &ms
}

func circuitHealthFrom(s circuit.CircuitStatus) circuitHealth {
	guards := circuitGuards[s.Name]
	if guards == nil {
		guards = []guardedRoute{}
	}
	targets := make([]targetHealth, 0, len(s.Targets))
	for _, t := range s.Targets {
		targets = append(targets, targetHealth{
			Provider: t.Provider, Model: t.Model, LLMBaseURL: t.URL, State: t.State, Forced: t.Forced, Admits: t.Admits,
			CoolingDownUntil: t.CoolingDownUntil, RemainingDelaySeconds: seconds(t.RemainingDelay),
			CurrentRecoveryTimeout: seconds(t.CurrentRecoveryTimeout), InFlight: t.InFlight,
			RecentTransitions: transitionsOf(t.RecentTransitions), Statistics: t.Stats,
		})
	}
	cfg := s.Settings
	return circuitHealth{
		Name:       s.Name,
		State:      s.State,
		Health:     circuitHealthOf(s),
		Forced:     s.Forced,
		Model:      s.Model,
		LLMBaseURL: s.Target,
		Guards:     guards,
		Config: circuitConfig{
			FailureThreshold: cfg.FailureThreshold, RecoveryTimeout: cfg.RecoveryTimeout.Seconds(),
			SuccessThreshold: cfg.SuccessThreshold, Timeout: cfg.Timeout.Seconds(), MaxConcurrent: cfg.MaxConcurrent,
			MaxAttempts: cfg.MaxAttempts, RetryBackoff: cfg.RetryBackoff.Seconds(), MaxRetryBackoff: cfg.MaxRetryBackoff.Seconds(),
			MaxRetryAfter: cfg.MaxRetryAfter.Seconds(), RecoveryBackoffMultiplier: cfg.RecoveryBackoffMultiplier,
			MaxRecoveryTimeout: cfg.MaxRecoveryTimeout.Seconds(), FailureRateThreshold: cfg.FailureRateThreshold,
			FailureRateWindow: cfg.FailureRateWindow.Seconds(), MinimumCalls: cfg.MinimumCalls,
			HedgeAfter: cfg.HedgeAfter.Seconds(), HedgeBudgetPercent: cfg.HedgeBudgetPercent, RecoveryProbe: cfg.RecoveryProbe,
			FirstTokenTimeout: firstTokenTimeout(cfg).Seconds(), SlowCallThreshold: cfg.SlowCallThreshold.Seconds(),
			SlowCallRateThreshold: cfg.SlowCallRateThreshold,
		},
		RemainingDelaySeconds: seconds(s.RemainingDelay),
		InFlight:              s.InFlight,
		RecentTransitions:     transitionsOf(s.RecentTransitions),
		Statistics:            s.Stats,
		Available:             s.Available,
		Targets:               targets,
	}
}

// firstTokenTimeout is the first-token limit in force, as circuit.Settings
// documents it: 0 (or more than Timeout) means Timeout.
func firstTokenTimeout(s circuit.Settings) time.Duration {
	if s.FirstTokenTimeout <= 0 || s.FirstTokenTimeout > s.Timeout {
		return s.Timeout
	}
	return s.FirstTokenTimeout
}

// circuitHealthOf is healthy while the first target is closed (or breakers
// are disabled); degraded while it is half-open or cooling down, or while
// it is not closed but another target admits calls; unhealthy when no
// target can answer.
// With one target this is what it always was: open is unhealthy, half-open
// degraded.
func circuitHealthOf(s circuit.CircuitStatus) string {
	switch {
	case s.State == circuit.StateClosed && len(s.Targets) > 0 && s.Targets[0].CoolingDownUntil != nil:
		// Closed, but holding back at the upstream's request (429/503
		// with Retry-After): a pause, not a trip.
		return healthDegraded
	case s.State == circuit.StateClosed || s.State == circuit.StateDisabled:
		return healthHealthy
	case s.State == circuit.StateHalfOpen || s.Available:
		return healthDegraded
	default:
		return healthUnhealthy
	}
}

// overallHealth is healthy when every circuit is, unhealthy when every
// circuit is, and degraded otherwise: one circuit down leaves the others'
// routes working.
func overallHealth(statuses []circuit.CircuitStatus) string {
	healthy, unhealthy := 0, 0
	for _, s := range statuses {
		switch circuitHealthOf(s) {
		case healthHealthy:
			healthy++
		case healthUnhealthy:
			unhealthy++
		}
	}
	switch {
	case healthy == len(statuses):
		return healthHealthy
	case unhealthy == len(statuses):
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
