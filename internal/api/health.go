package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra"
	"github.com/nexus/nexus/internal/infra/dataset"
)

// Health values, per circuit and overall.
const (
	healthHealthy   = "healthy"
	healthDegraded  = "degraded"
	healthUnhealthy = "unhealthy"
)

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
	Name                  string        `json:"name"`
	State                 string        `json:"state"`
	Health                string        `json:"health"`
	Forced                bool          `json:"forced"`
	Model                 string        `json:"model"`
	Config                circuitConfig `json:"config"`
	RemainingDelaySeconds float64       `json:"remaining_delay_seconds"`
	InFlight              int           `json:"in_flight"`
	RecentTransitions     []transition  `json:"recent_transitions"`
	Statistics            infra.Stats   `json:"statistics"`
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
			return echo.ErrNotFound
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

func circuitHealthFrom(s infra.CircuitStatus) circuitHealth {
	ts := make([]transition, 0, len(s.RecentTransitions))
	for _, t := range s.RecentTransitions {
		ts = append(ts, transition{From: t.From, To: t.To, At: t.At.UTC(), Reason: t.Reason, Forced: t.Forced})
	}
	return circuitHealth{
		Name:   s.Name,
		State:  s.State,
		Health: circuitHealthOf(s.State),
		Forced: s.Forced,
		Model:  s.Model,
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
	case infra.StateOpen:
		return healthUnhealthy
	case infra.StateHalfOpen:
		return healthDegraded
	default:
		return healthHealthy
	}
}

// overallHealth is healthy when every circuit is closed or disabled,
// unhealthy when every circuit is open, and degraded otherwise.
func overallHealth(statuses []infra.CircuitStatus) string {
	open, fine := 0, 0
	for _, s := range statuses {
		switch s.State {
		case infra.StateOpen:
			open++
		case infra.StateClosed, infra.StateDisabled:
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
