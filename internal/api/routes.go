package api

import "github.com/labstack/echo/v4"

// routes lists every route Nexus serves.
func routes(e *echo.Echo, cfg Config) {
	e.POST("/analyze", handleAnalyze(cfg.Analyst, cfg.MaxBodyBytes))
	e.POST("/generate", handleGenerate(cfg.Generator, cfg.MaxBodyBytes))
	e.GET("/healthz", handleHealthz())
	if cfg.ExposeHealth {
		e.GET("/api/health/status", handleHealthStatus(cfg.Circuits, cfg.Version, cfg.Started, cfg.Now))
	}
}
