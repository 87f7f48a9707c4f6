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

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Analyzer answers questions about data; *agent.Analyst is the real one.
type Analyzer interface {
	Analyze(ctx context.Context, req agent.Request) (agent.Answer, error)
}

// CodeGenerator writes and reviews code; *codegen.Generator is the real one.
type CodeGenerator interface {
	Generate(ctx context.Context, req codegen.Request) (codegen.Result, error)
}

// CircuitReporter reports and controls circuits; *circuit.Registry is the
// real one.
type CircuitReporter interface {
	Enabled() bool
	Statuses() []circuit.CircuitStatus
	Lookup(name string) (*circuit.Circuit, error)
}

// ProviderReporter reports the LLM providers' last probes; *llm.Prober is
// the real one.
type ProviderReporter interface {
	Statuses() []llm.ProviderStatus
}

// Settings is the configuration in force, which a reload may change;
// *config.Live is the real one.
type Settings interface {
	Current() config.Config
	Status() config.Status
}

// Metrics records HTTP requests and serves the exposition;
// *metrics.Metrics is the real one.
type Metrics interface {
	ObserveHTTP(route, method string, code int, d time.Duration)
	Handler() http.Handler
}

// Config holds the server's dependencies and settings.
type Config struct {
	Logger    *slog.Logger
	Analyst   Analyzer
	Generator CodeGenerator
	Circuits  CircuitReporter
	// Providers may be nil: health then lists no providers.
	Providers ProviderReporter
	Datasets  DatasetStore
	// Sources may be nil: no live sources.
	Sources Sources
	// Settings supplies the live flags: expose_health_endpoint and
	// metrics_enabled are read on every request, so a reload applies them.
	Settings Settings
	// Metrics may be nil (no HTTP metrics, /metrics answers 404).
	Metrics Metrics
	// AdminToken enables the admin API; empty means its routes answer 404
	// (unless admin API keys exist).
	AdminToken string
	// Access holds the API keys and the limits (auth.go); nil leaves the
	// API open and unlimited.
	Access *Access
	// Redactor hides the configured secrets (the API key, the admin token)
	// and applies the URL policy to error text bound for the log; nil
	// still applies the policy.
	Redactor *redact.Redactor
	// Reload re-reads the config file; POST /api/config/reload calls it.
	Reload func(ctx context.Context) error
	// Ready reports whether the server takes new work; /readyz answers 503
	// once it is false (shutdown has begun).
	Ready func() bool
	// MaxBodyBytes limits JSON request bodies; larger ones get 413.
	MaxBodyBytes int64
	// MaxUploadBytes is the dataset store's limit on an uploaded file
	// (datasets.max_upload_bytes). POST /datasets refuses a whole request
	// body larger than this plus 64 KiB for the form with 413; 0 means
	// dataset.DefaultMaxUploadBytes, the store's own default.
	MaxUploadBytes int64
	// RequestTimeout bounds each /analyze and /generate request; past it
	// the request answers 504 request_timeout. 0 means no limit.
	RequestTimeout time.Duration
	// SSEHeartbeat is the interval between the heartbeat comments a
	// streamed (SSE) answer sends while it has nothing else to send
	// (server.sse_heartbeat_seconds, 0.05 to 300 s). Restart-only: it is
	// read once, when the server is built. A Config built in code (a
	// test) may leave it 0, which the SSE handler must treat as its
	// default.
	SSEHeartbeat time.Duration
	Version      string
	// Started is when the process started, for uptime_seconds.
	Started time.Time
	// Edge holds the HTTP edge's settings: client addresses, CORS, body
	// deadlines, failed-auth limits.
	Edge Edge
	// Now is the clock for timestamps; time.Now when nil.
	Now func() time.Time
}

// NewServer returns the HTTP handler with every route and middleware.
func NewServer(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = dataset.DefaultMaxUploadBytes
	}
	cfg = tenants(cfg)
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger, cfg.Redactor, cfg.RequestTimeout)
	e.IPExtractor = clientIPExtractor(cfg.Edge.TrustedProxies)
	e.Use(requestID(), accessLog(cfg.Logger, cfg.Metrics), recoverPanics(cfg.Logger))
	e.Use(edgeMiddleware(cfg)...)
	routes(e, cfg)
	headRoutes(e)
	return e
}
