package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra"
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
	CircuitBreakers circuitsSection `json:"circuit_breakers"`
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
	Model                 string        `json:"model"`
	Config                circuitConfig `json:"config"`
	RemainingDelaySeconds float64       `json:"remaining_delay_seconds"`
	Statistics            infra.Stats   `json:"statistics"`
}

type circuitConfig struct {
	FailureThreshold int     `json:"failure_threshold"`
	RecoveryTimeout  float64 `json:"recovery_timeout"`
	SuccessThreshold int     `json:"success_threshold"`
	Timeout          float64 `json:"timeout"`
}

func handleHealthStatus(r CircuitReporter, version string, started time.Time, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		statuses := r.Statuses()
		list := make([]circuitHealth, 0, len(statuses))
		for _, s := range statuses {
			list = append(list, circuitHealth{
				Name:   s.Name,
				State:  s.State,
				Health: circuitHealthOf(s.State),
				Model:  s.Model,
				Config: circuitConfig{
					FailureThreshold: s.Config.FailureThreshold,
					RecoveryTimeout:  float64(s.Config.RecoveryTimeout),
					SuccessThreshold: s.Config.SuccessThreshold,
					Timeout:          float64(s.Config.Timeout),
				},
				RemainingDelaySeconds: float64(s.RemainingDelay.Milliseconds()) / 1000,
				Statistics:            s.Stats,
			})
		}
		overall := overallHealth(statuses)
		t := now()
		return c.JSON(http.StatusOK, healthResponse{
			Status:        overall,
			Timestamp:     t.UTC(),
			Version:       version,
			UptimeSeconds: float64(t.Sub(started).Milliseconds()) / 1000,
			CircuitBreakers: circuitsSection{
				Enabled:         r.Enabled(),
				OverallHealth:   overall,
				CircuitBreakers: list,
			},
		})
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
