package api

import (
	"time"

	"github.com/labstack/echo/v4"
)

// routes lists every route Nexus serves. Routes gated by a reloadable flag
// are always registered and answer 404 while the flag is off.
func routes(e *echo.Echo, cfg Config) {
	deadline := requestDeadline(cfg.RequestTimeout)
	// Keys, scopes, tenants and limits, by each route's entry in
	// routePolicies (auth.go): ahead of every route's own middleware.
	e.Use(guard(cfg.Access, cfg.AdminToken, cfg.Datasets))
	heartbeat := func() time.Duration { return cfg.SSEHeartbeat }
	e.POST("/analyze", handleAnalyze(cfg.Analyst, cfg.MaxBodyBytes, heartbeat), deadline)
	e.POST("/generate", handleGenerate(cfg.Generator, cfg.MaxBodyBytes, heartbeat), deadline)

	upload := uploadDeadlines(cfg.Edge)
	e.POST("/datasets", handleUpload(cfg.Datasets, cfg.MaxUploadBytes), upload)
	e.GET("/datasets", handleListDatasets(cfg.Datasets))
	e.GET("/datasets/:id", handleGetDataset(cfg.Datasets))
	e.DELETE("/datasets/:id", handleDeleteDataset(cfg.Datasets))
	e.POST("/datasets/:id/tables", handleAddTables(cfg.Datasets, cfg.MaxUploadBytes), upload)
	// Reading data without the LLM: they work while every circuit is open.
	e.GET("/datasets/:id/rows", handleRows(cfg.Datasets), deadline)
	e.POST("/datasets/:id/query", handleQuery(cfg.Datasets, cfg.MaxBodyBytes), deadline)

	// Live sources, read without the LLM: they work while every circuit
	// is open.
	e.GET("/sources", handleListSources(cfg.Sources, cfg.Redactor))
	e.GET("/sources/:name", handleGetSource(cfg.Sources, cfg.Redactor), deadline)
	e.GET("/sources/:name/rows", handleSourceRows(cfg.Sources), deadline)
	e.POST("/sources/:name/query", handleSourceQuery(cfg.Sources, cfg.MaxBodyBytes), deadline)

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(cfg.Ready))
	e.GET("/api/health/status", handleHealthStatus(cfg.Circuits, cfg.Providers, cfg.Datasets, cfg.Sources, cfg.Redactor, cfg.Settings, cfg.Version, cfg.Started, cfg.Now))
	e.GET("/metrics", handleMetrics(cfg.Metrics, cfg.Settings))
	e.GET("/dashboard", handleDashboard())

	// One failed-authentication budget per address, for the admin token
	// and the API keys together.
	failures := newAuthFailures(cfg.Edge.AuthFailures, cfg.Now)
	if cfg.Access != nil {
		cfg.Access.failures = failures
	}
	admin := adminOnly(cfg.AdminToken, cfg.Logger, failures)
	for _, action := range []string{actionOpen, actionClose, actionReset} {
		e.POST("/api/circuits/:name/"+action, handleCircuitAction(cfg.Circuits, cfg.Logger, action), admin)
	}
	e.GET("/api/circuits/:name/events", handleCircuitEvents(cfg.Circuits), admin)
	e.POST("/api/config/reload", handleReload(cfg.Reload, cfg.Logger), admin)
}
