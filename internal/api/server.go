// Package api is Nexus's HTTP surface, built on Echo. Handlers decode and
// validate input in one place (decode.go) and only return errors; one error
// handler (errors.go) maps every error to a status code and a JSON body.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra"
)

// Analyzer answers questions about data; *agent.Analyst is the real one.
type Analyzer interface {
	Analyze(ctx context.Context, req agent.Request) (agent.Answer, error)
}

// CodeGenerator writes and reviews code; *codegen.Generator is the real one.
type CodeGenerator interface {
	Generate(ctx context.Context, req codegen.Request) (codegen.Result, error)
}

// CircuitReporter reports circuit health; *infra.Registry is the real one.
type CircuitReporter interface {
	Enabled() bool
	Statuses() []infra.CircuitStatus
}

// Config holds the server's dependencies and settings.
type Config struct {
	Logger    *slog.Logger
	Analyst   Analyzer
	Generator CodeGenerator
	Circuits  CircuitReporter
	// ExposeHealth registers GET /api/health/status; without it the route
	// answers 404 like any unknown path.
	ExposeHealth bool
	// MaxBodyBytes limits JSON request bodies; larger ones get 413.
	MaxBodyBytes int64
	Version      string
	// Started is when the process started, for uptime_seconds.
	Started time.Time
	// Now is the clock for timestamps; time.Now when nil.
	Now func() time.Time
}

// NewServer returns the HTTP handler with every route and middleware.
func NewServer(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(requestID(), accessLog(cfg.Logger), recoverPanics(cfg.Logger))
	routes(e, cfg)
	return e
}
