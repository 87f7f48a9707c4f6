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
	"time"

	"github.com/rs/zerolog"
	slogzerolog "github.com/samber/slog-zerolog/v2"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra"
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
// load config, build the logger, circuits and LLM client, the agents and
// the API, then listen and serve until ctx ends. ready, if not nil, is
// told the bound address once the listener is up (tests listen on
// 127.0.0.1:0).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(net.Addr)) error {
	started := time.Now()
	opts, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(opts.configPath)
	if err != nil {
		return err
	}
	if opts.addr != "" {
		cfg.Server.Addr = opts.addr
	}
	if opts.baseURL != "" {
		cfg.LLM.BaseURL = opts.baseURL
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config after overrides:\n%w", err)
	}
	apiKey := firstNonEmpty(opts.apiKey, getenv("LLM_API_KEY"), getenv(cfg.LLM.APIKeyEnv))

	logger, err := newLogger(stdout, opts.logLevel)
	if err != nil {
		return err
	}
	redactor := infra.NewRedactor(apiKey)
	logEffectiveConfig(logger, cfg, opts.configPath, apiKey != "")

	llm := infra.NewLLMClient(infra.LLMConfig{
		BaseURL:             cfg.LLM.BaseURL,
		APIKey:              apiKey,
		MaxIdleConnsPerHost: cfg.LLM.MaxIdleConnsPerHost,
	})
	defer llm.Close()
	circuits := infra.NewRegistry(cfg, llm, infra.Options{
		Logger:            logger,
		Redactor:          redactor,
		LogCircuitChanges: cfg.CircuitBreaker.LogCircuitChanges,
	})

	handler := api.NewServer(api.Config{
		Logger:       logger,
		Analyst:      agent.NewAnalyst(circuits.Circuit(config.CircuitDataAnalyst)),
		Generator:    codegen.NewGenerator(circuits.Circuit(config.CircuitCodeGenerator)),
		Circuits:     circuits,
		ExposeHealth: cfg.CircuitBreaker.ExposeHealthEndpoint,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		Version:      version(),
		Started:      started,
	})

	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("nexus listening", slog.String("addr", ln.Addr().String()), slog.String("version", version()))

	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newLogger builds the slog logger with zerolog behind it. The zerolog
// logger gets no Timestamp(): slog-zerolog adds "time" itself, and two
// "time" keys break many log pipelines.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	zl := zerolog.New(w)
	return slog.New(slogzerolog.Option{Level: lvl, Logger: &zl}.NewZerologHandler()), nil
}

// logEffectiveConfig logs what is in force, with the API key reduced to
// whether one is set.
func logEffectiveConfig(log *slog.Logger, cfg config.Config, path string, hasKey bool) {
	attrs := []any{
		slog.String("path", path),
		slog.Bool("circuit_breaker_enabled", cfg.CircuitBreaker.Enabled),
		slog.Bool("expose_health_endpoint", cfg.CircuitBreaker.ExposeHealthEndpoint),
		slog.Bool("log_circuit_changes", cfg.CircuitBreaker.LogCircuitChanges),
		slog.Bool("metrics_enabled", cfg.CircuitBreaker.MetricsEnabled),
		slog.String("llm_base_url", cfg.LLM.BaseURL),
		slog.String("llm_api_key_env", cfg.LLM.APIKeyEnv),
		slog.Bool("llm_api_key_set", hasKey),
		slog.String("addr", cfg.Server.Addr),
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
