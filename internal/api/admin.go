package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/circuit"
)

// Admin actions on a circuit.
const (
	actionOpen  = "open"
	actionClose = "close"
	actionReset = "reset"
)

// adminOnly guards one admin route. Without a configured token the route
// does not exist (404). The token is compared in constant time, over
// digests so that its length does not leak either. It is applied per route,
// not to an /api group, so unknown /api paths still answer 404. An address
// with too many failed attempts gets 429 before its token is looked at.
func adminOnly(token string, log *slog.Logger, failures *authFailures) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if adminKeyAccepted(c) {
				return next(c) // an admin API key, checked by guard
			}
			if token == "" {
				return echo.ErrNotFound
			}
			remote := c.RealIP()
			if wait := failures.Wait(remote); wait > 0 {
				return tooManyAuthFailures(wait)
			}
			got, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				if failures.Fail(remote) {
					log.Warn("too many failed admin token attempts; the address is refused for a while",
						slog.String("remote", remote), slog.Float64("retry_after_seconds", failures.Wait(remote).Seconds()))
				}
				log.Warn("admin request refused", slog.String("request_id", requestIDOf(c)),
					slog.String("route", c.Path()), slog.String("remote", remote))
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="nexus-admin"`)
				return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "a valid admin bearer token is required"}
			}
			return next(c)
		}
	}
}

func lookupCircuit(r CircuitReporter, c echo.Context) (*circuit.Circuit, error) {
	cb, err := r.Lookup(c.Param("name"))
	if errors.Is(err, circuit.ErrUnknownCircuit) {
		return nil, &Error{Status: http.StatusNotFound, Code: "unknown_circuit", Message: err.Error(), Field: "name"}
	}
	return cb, err
}

func handleCircuitAction(r CircuitReporter, log *slog.Logger, action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		cb, err := lookupCircuit(r, c)
		if err != nil {
			return err
		}
		sel, err := targetSelector(c)
		if err != nil {
			return err
		}
		reason := "forced " + action + " by an operator"
		log.Info("admin action", slog.String("action", action), slog.String("circuit", cb.Name()),
			slog.String("provider", sel.Provider), slog.String("model", sel.Model),
			slog.String("request_id", requestIDOf(c)), slog.String("remote", c.RealIP()))
		switch action {
		case actionOpen:
			err = cb.ForceOpen(reason, sel)
		case actionClose:
			err = cb.Close(reason, sel)
		case actionReset:
			err = cb.Reset(reason, sel)
		}
		switch {
		case errors.Is(err, circuit.ErrDisabled):
			return &Error{Status: http.StatusConflict, Code: "circuit_breakers_disabled",
				Message: "circuit_breaker.enabled is false: there is no circuit to open"}
		case errors.Is(err, circuit.ErrUnknownTarget):
			return &Error{Status: http.StatusNotFound, Code: "unknown_target", Message: err.Error(), Field: "provider"}
		case err != nil:
			return err
		}
		return c.JSON(http.StatusOK, circuitHealthFrom(cb.Status()))
	}
}

// targetSelector reads ?provider=P&model=M: both name one target, neither
// means every target of the circuit.
func targetSelector(c echo.Context) (circuit.Selector, error) {
	sel := circuit.Selector{Provider: c.QueryParam("provider"), Model: c.QueryParam("model")}
	switch {
	case sel.Provider == "" && sel.Model != "":
		return sel, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "model needs provider: name a target by both", Field: "provider"}
	case sel.Provider != "" && sel.Model == "":
		return sel, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "provider needs model: name a target by both", Field: "model"}
	}
	return sel, nil
}

func handleCircuitEvents(r CircuitReporter) echo.HandlerFunc {
	return func(c echo.Context) error {
		cb, err := lookupCircuit(r, c)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"circuit": cb.Name(), "events": cb.Events()})
	}
}

func handleReload(reload func(context.Context) error, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		log.Info("admin action", slog.String("action", "reload"), slog.String("request_id", requestIDOf(c)), slog.String("remote", c.RealIP()))
		if reload == nil {
			return echo.ErrNotFound
		}
		if err := reload(c.Request().Context()); err != nil {
			return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Message: err.Error()}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "reloaded"})
	}
}

func handleMetrics(m Metrics, s Settings) echo.HandlerFunc {
	return func(c echo.Context) error {
		if m == nil || !s.Current().CircuitBreaker.MetricsEnabled {
			return echo.ErrNotFound
		}
		m.Handler().ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

func handleReadyz(ready func() bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !ready() {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	}
}
