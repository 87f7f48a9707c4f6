// Package app wires every piece of Nexus together. It lives under cmd/server
// because it is the one place that knows them all; main and the end-to-end
// tests both call Run.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	slogzerolog "github.com/samber/slog-zerolog/v2"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/redact"
)

// options are the command line and environment overrides.
type options struct {
	configPath string
	addr       string
	baseURL    string
	apiKey     string
	logLevel   string
}

// parseOptions reads flags, falling back to the environment: flags win,
// then NEXUS_CONFIG, NEXUS_ADDR, LLM_BASE_URL and LLM_API_KEY.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("nexus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.configPath, "config", firstNonEmpty(getenv("NEXUS_CONFIG"), config.DefaultPath), "config file path (env NEXUS_CONFIG)")
	fs.StringVar(&o.addr, "addr", getenv("NEXUS_ADDR"), "listen address, default from config server.addr (:8080) (env NEXUS_ADDR)")
	fs.StringVar(&o.baseURL, "llm-base-url", getenv("LLM_BASE_URL"), "OpenAI-compatible base URL (env LLM_BASE_URL)")
	fs.StringVar(&o.apiKey, "llm-api-key", "", "LLM API key; prefer the environment (env LLM_API_KEY, or the variable named by llm.api_key_env)")
	fs.StringVar(&o.logLevel, "log-level", firstNonEmpty(getenv("NEXUS_LOG_LEVEL"), "info"), "debug, info, warn or error (env NEXUS_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, nil
}

// Run does everything main does, so that tests can run the real server:
// load config, build the logger, metrics, circuits and LLM client, the
// agents and the API, then listen and serve until ctx ends, and drain.
// ready, if not nil, is told the bound address once the listener is up
// (tests listen on 127.0.0.1:0). reload, if not nil, triggers a config
// reload per receive (main feeds it SIGHUP).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(net.Addr), reload <-chan struct{}) error {
	started := time.Now()
	opts, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(opts, getenv)
	if err != nil {
		return err
	}
	apiKey := firstNonEmpty(opts.apiKey, getenv("LLM_API_KEY"), getenv(cfg.LLM.APIKeyEnv))
	adminToken := getenv("NEXUS_ADMIN_TOKEN")

	logger, err := newLogger(stdout, opts.logLevel)
	if err != nil {
		return err
	}
	redactor := redact.New(apiKey, adminToken)
	logEffectiveConfig(logger, cfg, opts.configPath, apiKey != "", adminToken != "")
	live := config.NewLive(opts.configPath, cfg, started)

	llm := infra.NewLLMClient(infra.LLMConfig{
		BaseURL:             cfg.LLM.BaseURL,
		APIKey:              apiKey,
		MaxIdleConnsPerHost: cfg.LLM.MaxIdleConnsPerHost,
		MaxResponseBytes:    cfg.LLM.MaxResponseBytes,
	})
	defer llm.Close()

	var circuits *infra.Registry
	m := metrics.New(config.CircuitNames(), func() []metrics.CircuitState {
		var out []metrics.CircuitState
		for _, s := range circuits.Statuses() {
			out = append(out, metrics.CircuitState{Name: s.Name, State: s.State, Forced: s.Forced, InFlight: s.InFlight})
		}
		return out
	})
	alerts := newAlerter(cfg.Alerts, logger, m)
	defer alerts.close()
	circuits = infra.NewRegistry(cfg, llm, infra.Options{
		Logger:            logger,
		Redactor:          redactor,
		LogCircuitChanges: cfg.CircuitBreaker.LogCircuitChanges,
		OnTransition: func(t infra.Transition) {
			m.ObserveTransition(t.Circuit, t.From, t.To)
			alerts.notify(t)
		},
		OnCall: func(e infra.CallEvent) { m.ObserveCall(e.Circuit, e.Model, e.Outcome, e.Duration) },
	})

	store, err := dataset.Open(dataset.Config{
		Dir:              cfg.Datasets.Dir,
		MaxUploadBytes:   cfg.Datasets.MaxUploadBytes,
		StatementTimeout: cfg.Datasets.StatementTimeout.Duration(),
		MaxRows:          cfg.Datasets.MaxRows,
		MaxResultBytes:   cfg.Datasets.MaxResultBytes,
		MemoryLimitMB:    cfg.Datasets.MemoryLimitMB,
		MaxOpen:          cfg.Datasets.MaxOpenDatasets,
		Workers:          cfg.Datasets.Workers,
		WorkerMemoryMB:   cfg.Datasets.WorkerMemoryMB,
		MaxJSONDepth:     cfg.Datasets.MaxJSONDepth,
		MaxColumns:       cfg.Datasets.MaxColumns,
		MaxInlineLoads:   cfg.Datasets.MaxInlineLoads,
	}, logger)
	if err != nil {
		return fmt.Errorf("datasets: %w", err)
	}
	defer store.Close()
	m.ObserveDatasets(func() metrics.DatasetStats {
		st := store.Stats()
		return metrics.DatasetStats{Stored: st.Datasets, OpenHandles: st.OpenHandles,
			WorkersBusy: st.Workers.Busy, WorkerKills: st.Workers.Kills}
	})

	rl := &reloader{live: live, circuits: circuits, alerts: alerts, log: logger, opts: opts, getenv: getenv, redact: redactor}
	var accepting atomic.Bool
	accepting.Store(true)
	handler := api.NewServer(api.Config{
		Logger: logger,
		Analyst: agent.NewAnalyst(agent.Config{
			Answerer:        circuits.Circuit(config.CircuitDataAnalyst),
			Planner:         circuits.Circuit(config.CircuitCodeGenerator),
			Critic:          circuits.Circuit(config.CircuitCoTEngine),
			Charter:         circuits.Circuit(config.CircuitVisualization),
			Data:            agent.StoreTables(store),
			ReviewByDefault: cfg.CoTReview.Enabled,
			MaxIterations:   cfg.CoTReview.MaxIterations,
			MaxSQLAttempts:  cfg.Datasets.MaxSQLAttempts,
		}),
		Generator:      codegen.NewGenerator(circuits.Circuit(config.CircuitCodeGenerator), store),
		Circuits:       circuits,
		Datasets:       store,
		Settings:       live,
		Metrics:        m,
		AdminToken:     adminToken,
		Reload:         rl.reload,
		Ready:          accepting.Load,
		MaxBodyBytes:   cfg.Server.MaxBodyBytes,
		MaxUploadBytes: cfg.Datasets.MaxUploadBytes,
		RequestTimeout: cfg.Server.RequestTimeoutSeconds.Duration(),
		Version:        version(),
		Started:        started,
	})

	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var active inflight
	srv := &http.Server{
		Handler:           active.wrap(handler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("nexus listening", slog.String("addr", ln.Addr().String()), slog.String("version", version()))
	if ready != nil {
		ready(ln.Addr())
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if err := config.Watch(watchCtx, opts.configPath, 100*time.Millisecond, logger, func() { _ = rl.reload(watchCtx) }); err != nil {
		logger.Warn("config file watching is off", slog.String("error", err.Error()))
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for done := false; !done; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-reload:
			_ = rl.reload(watchCtx)
		case <-ctx.Done():
			done = true
		}
	}
	return shutdown(srv, errc, &accepting, &active, live.Current().Server, logger)
}

// shutdown stops taking new work: /readyz answers 503 for drain_seconds
// while the listener still serves, then the listener closes and in-flight
// requests get shutdown_grace_seconds to finish. Their LLM calls are not
// cancelled by the shutdown itself. Running out of grace is an error, so
// the process exits non-zero.
func shutdown(srv *http.Server, errc <-chan error, accepting *atomic.Bool, active *inflight, cfg config.Server, log *slog.Logger) error {
	accepting.Store(false)
	log.Info("shutting down", slog.Float64("drain_seconds", float64(cfg.DrainSeconds)),
		slog.Float64("shutdown_grace_seconds", float64(cfg.ShutdownGraceSeconds)))
	if d := cfg.DrainSeconds.Duration(); d > 0 {
		time.Sleep(d)
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGraceSeconds.Duration())
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		active.logCut(log)
		_ = srv.Close()
		log.Error("shutdown grace ran out; in-flight requests were cut", slog.String("error", err.Error()))
		<-errc
		return fmt.Errorf("shutdown: grace of %s ran out: %w", cfg.ShutdownGraceSeconds.Duration(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// loadConfig reads the file and applies the environment and flag
// overrides, then validates the result.
func loadConfig(opts options, getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(opts.configPath)
	if err != nil {
		return config.Config{}, err
	}
	if opts.addr != "" {
		cfg.Server.Addr = opts.addr
	}
	if opts.baseURL != "" {
		cfg.LLM.BaseURL = opts.baseURL
	}
	if dir := getenv("NEXUS_DATA_DIR"); dir != "" {
		cfg.Datasets.Dir = dir
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, fmt.Errorf("config after overrides:\n%w", err)
	}
	return cfg, nil
}

// newLogger builds the slog logger with zerolog behind it. slog-zerolog's
// own timestamp follows zerolog's global TimeFieldFormat (whole seconds),
// so it is turned off and a hook writes one "time" key in RFC 3339 with
// nanoseconds instead, without touching the global.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	zl := zerolog.New(w).Hook(zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
		e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(time.RFC3339Nano))
	}))
	return slog.New(slogzerolog.Option{Level: lvl, Logger: &zl, NoTimestamp: true}.NewZerologHandler()), nil
}

// logEffectiveConfig logs what is in force, with the API key reduced to
// whether one is set.
func logEffectiveConfig(log *slog.Logger, cfg config.Config, path string, hasKey, hasAdmin bool) {
	attrs := []any{
		slog.String("path", path),
		slog.Bool("circuit_breaker_enabled", cfg.CircuitBreaker.Enabled),
		slog.Bool("expose_health_endpoint", cfg.CircuitBreaker.ExposeHealthEndpoint),
		slog.Bool("log_circuit_changes", cfg.CircuitBreaker.LogCircuitChanges),
		slog.Bool("metrics_enabled", cfg.CircuitBreaker.MetricsEnabled),
		slog.String("llm_base_url", redact.URL(cfg.LLM.BaseURL)),
		slog.String("llm_api_key_env", cfg.LLM.APIKeyEnv),
		slog.Bool("llm_api_key_set", hasKey),
		slog.Bool("admin_api_enabled", hasAdmin),
		slog.Bool("alerts_enabled", cfg.Alerts.WebhookURL != ""),
		slog.String("addr", cfg.Server.Addr),
		slog.Group("server",
			slog.Int64("max_body_bytes", cfg.Server.MaxBodyBytes),
			slog.Float64("drain_seconds", float64(cfg.Server.DrainSeconds)),
			slog.Float64("shutdown_grace_seconds", float64(cfg.Server.ShutdownGraceSeconds)),
			slog.Float64("request_timeout_seconds", float64(cfg.Server.RequestTimeoutSeconds))),
		slog.Group("datasets",
			slog.String("dir", cfg.Datasets.Dir),
			slog.Int64("max_upload_bytes", cfg.Datasets.MaxUploadBytes),
			slog.Float64("statement_timeout", float64(cfg.Datasets.StatementTimeout)),
			slog.Int("max_rows", cfg.Datasets.MaxRows),
			slog.Int("memory_limit_mb", cfg.Datasets.MemoryLimitMB),
			slog.Int("max_open_datasets", cfg.Datasets.MaxOpenDatasets)),
		slog.Group("cot_review",
			slog.Bool("enabled", cfg.CoTReview.Enabled),
			slog.Int("max_iterations", cfg.CoTReview.MaxIterations)),
	}
	for _, name := range config.CircuitNames() {
		c := cfg.CircuitBreaker.Circuits[name]
		attrs = append(attrs, slog.Group(name,
			slog.Int("failure_threshold", c.FailureThreshold),
			slog.Float64("recovery_timeout", float64(c.RecoveryTimeout)),
			slog.Int("success_threshold", c.SuccessThreshold),
			slog.Float64("timeout", float64(c.Timeout)),
			slog.String("model", cfg.LLM.Models[name]),
		))
	}
	log.Info("effective config", attrs...)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
