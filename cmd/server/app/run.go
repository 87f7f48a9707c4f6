// Package app wires every piece of Nexus together. It lives under cmd/server
// because it is the one place that knows them all; main and the end-to-end
// tests both call Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/logging"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Run does everything main does, so that tests can run the real server:
// load config, build the logger, metrics, circuits and LLM client, the
// agents and the API, then listen and serve until ctx ends, and drain.
// getenv is the only way it reads the environment, and only for the
// variables in config.EnvVars (plus the ones llm.api_key_env, the
// providers' api_key_env and each source's dsn_env name). A source that
// cannot be opened (its variable unset, its DSN invalid, its database
// unreachable, its role able to write) stops start-up with an error
// naming its config path. With
// -h it prints the usage to stdout and returns nil. ready, if not nil, is
// told the bound address once the listener is up (tests listen on
// 127.0.0.1:0). A receive on reload, if not nil, asks for a config reload
// (main feeds it SIGHUP); asks that arrive while one runs coalesce into
// one more, and neither a reload nor an ask ever holds up shutdown.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(net.Addr), reload <-chan struct{}) error {
	started := time.Now()
	opts, err := parseOptions(args, getenv, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	loaded, err := loadConfig(opts)
	if err != nil {
		// A bad value is quoted, and llm.base_url may carry a secret.
		return errors.New(redact.Text(err.Error()))
	}
	cfg := loaded.cfg
	// The one read outside config.EnvVars: its name is configured, and -h
	// says so under LLM_API_KEY.
	apiKey := firstNonEmpty(opts.value(config.EnvAPIKey), getenv(cfg.LLM.APIKeyEnv))
	adminToken := opts.value(config.EnvAdminToken)

	// The log goes through a Sink, so that a slow stdout never stalls a
	// request. Its close is deferred first, so it runs last: every line
	// logged until Run returns is written, and the drops, if any, too.
	logs := logging.NewSink(stdout, 0, 0)
	logger, err := newLogger(logs, firstNonEmpty(opts.value(config.EnvLogLevel), "info"))
	if err != nil {
		_ = logs.Close()
		return err
	}
	defer closeLog(logs, logger)
	redactor := redact.New(append([]string{apiKey, adminToken}, otherKeys(cfg.LLM, getenv)...)...)
	if loaded.defaults {
		logger.Info("no config file; running on the built-in defaults",
			slog.String("path", absPath(opts.configPath)),
			slog.String("hint", "write the file there, or name one with -config or "+config.EnvConfig))
	}
	logEffectiveConfig(logger, loaded, opts, apiKey != "", adminToken != "")
	live := config.NewLive(opts.configPath, cfg, started)

	// The default provider's key may come from LLM_API_KEY (or its flag);
	// every other provider's from the variable its api_key_env names.
	keyOf := func(name string, p config.Provider) string {
		if name == config.DefaultProvider {
			return firstNonEmpty(opts.value(config.EnvAPIKey), getenv(p.APIKeyEnv))
		}
		return getenv(p.APIKeyEnv)
	}
	clients := newProviders(keyOf)
	defer clients.close()

	var circuits *circuit.Registry
	m := metrics.New(config.CircuitNames(), func() []metrics.CircuitState {
		var out []metrics.CircuitState
		for _, s := range circuits.Statuses() {
			cs := metrics.CircuitState{Name: s.Name, State: s.State, Forced: s.Forced, InFlight: s.InFlight}
			for _, t := range s.Targets {
				cs.Targets = append(cs.Targets, metrics.TargetState{Provider: t.Provider, Model: t.Model, State: t.State, Forced: t.Forced})
			}
			out = append(out, cs)
		}
		return out
	})
	m.ObserveLogDrops(logs.Dropped)
	alerts := newAlerter(cfg.Alerts, logger, m)
	defer alerts.close()
	// API keys, tenants, rate limits and token budgets (auth.go).
	sec, err := newSecurity(cfg, live, opts.configPath, logger, m)
	if err != nil {
		return err
	}
	defer sec.close()
	circuits = circuit.NewRegistry(registryConfig(cfg, clients.apply(cfg.LLM)), circuit.Options{
		Logger:   logger,
		Redactor: redactor,
		Hooks:    circuitHooks(m, alerts, sec.usage),
	})
	defer circuits.Close()

	// Every provider is probed with GET {base_url}/models at start-up (an
	// unreachable one is a WARN that names it) and every
	// llm.probe_interval. Probes never count in any breaker.
	prober := llm.NewProber(cfg.LLM.ProbeInterval.Duration(), llm.DefaultProbeTimeout, logger, redactor)
	defer prober.Close()
	prober.Set(probeTargets(cfg.LLM, clients.apply(cfg.LLM)))
	prober.Start()
	m.ObserveProviders(func() []metrics.ProviderState {
		var out []metrics.ProviderState
		for _, p := range prober.Statuses() {
			ps := metrics.ProviderState{Name: p.Name, Probed: p.Reachable != nil}
			if p.Reachable != nil {
				ps.Reachable = *p.Reachable
			}
			if p.LatencyMS != nil {
				ps.Latency = time.Duration(*p.LatencyMS * float64(time.Millisecond))
			}
			out = append(out, ps)
		}
		return out
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

	// Live sources: each is opened, its role checked and its tables
	// introspected now; any failure stops start-up. They are probed every
	// llm.probe_interval (30 s when probes are off) and closed last.
	sources, err := openSources(ctx, cfg, getenv, redactor, logger, m)
	if err != nil {
		return err
	}
	defer sources.Close()
	sourceProbe := cfg.LLM.ProbeInterval.Duration()
	if sourceProbe <= 0 {
		sourceProbe = pgsource.DefaultProbeInterval
	}
	sources.StartProbing(sourceProbe, pgsource.DefaultProbeTimeout)

	cert, err := loadCertificate(cfg.Server, logger)
	if err != nil {
		return err
	}
	rl := newReloader(reloader{live: live, circuits: circuits, providers: clients, prober: prober, alerts: alerts, sources: sources,
		log: logger, opts: opts, file: loaded.file, redact: redactor, cert: cert})
	var accepting atomic.Bool
	accepting.Store(true)
	handler := api.NewServer(api.Config{
		Logger:   logger,
		Redactor: redactor,
		Access:   sec.access,
		Analyst: agent.NewAnalyst(agent.Config{
			Answerer:        circuits.Circuit(config.CircuitDataAnalyst),
			Planner:         circuits.Circuit(config.CircuitCodeGenerator),
			Critic:          circuits.Circuit(config.CircuitCoTEngine),
			Charter:         circuits.Circuit(config.CircuitVisualization),
			Data:            agent.StoreTables(store),
			Sources:         agent.SourceTables(sources),
			ReviewByDefault: cfg.CoTReview.Enabled,
			MaxIterations:   cfg.CoTReview.MaxIterations,
			MaxSQLAttempts:  cfg.Datasets.MaxSQLAttempts,
		}),
		Generator:      codegen.NewGenerator(circuits.Circuit(config.CircuitCodeGenerator), store, sources),
		Circuits:       circuits,
		Providers:      prober,
		Datasets:       store,
		Sources:        sources,
		Settings:       live,
		Metrics:        m,
		AdminToken:     adminToken,
		Reload:         rl.reload,
		Ready:          accepting.Load,
		MaxBodyBytes:   cfg.Server.MaxBodyBytes,
		MaxUploadBytes: cfg.Datasets.MaxUploadBytes,
		RequestTimeout: cfg.Server.RequestTimeoutSeconds.Duration(),
		SSEHeartbeat:   cfg.Server.SSEHeartbeatSeconds.Duration(),
		Version:        version(),
		Started:        started,
		Edge:           edgeConfig(cfg),
	})

	ln, err := listen(cfg.Server)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.ObserveConnections(ln.open.Load, cfg.Server.MaxConnections)
	var active inflight
	srv := newHTTPServer(cfg.Server, active.wrap(handler), logger, cert)
	logger.Info("nexus listening", slog.String("addr", ln.Addr().String()), slog.Bool("tls", cert != nil), slog.String("version", version()))
	if ready != nil {
		ready(ln.Addr())
	}

	// Reloads run on a goroutine of their own, one at a time, so that
	// neither the loop below nor a signal ever waits for one. Requests that
	// arrive while one runs coalesce into one more. Shutdown cancels
	// reloadCtx: a reload not yet committed then changes nothing.
	reloadCtx, stopReloads := context.WithCancel(context.Background())
	pending := make(chan struct{}, 1)
	requestReload := func() {
		select {
		case pending <- struct{}{}:
		default: // one is already pending
		}
	}
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		for {
			select {
			case <-pending:
				_ = rl.reload(reloadCtx)
			case <-reloadCtx.Done():
				return
			}
		}
	}()
	defer func() {
		stopReloads()
		<-reloaderDone
	}()
	if err := config.Watch(reloadCtx, opts.configPath, 100*time.Millisecond, logger, requestReload); err != nil {
		level := slog.LevelWarn
		if loaded.defaults {
			level = slog.LevelInfo // no file, and maybe no directory, to watch
		}
		logger.Log(context.Background(), level, "config file watching is off; SIGHUP and the admin API still reload", slog.String("error", err.Error()))
	}
	sec.watchKeys(reloadCtx, cfg, requestReload)

	errc := make(chan error, 1)
	go func() { errc <- serve(srv, ln) }()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-reload:
			requestReload()
		case <-ctx.Done():
			stopReloads()
			return shutdown(srv, errc, &accepting, &active, live.Current().Server, logger)
		}
	}
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

// newLogger builds the slog logger, zerolog behind it (see package
// logging), at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return logging.New(w, lvl), nil
}

// closeLog writes out the log's last lines at shutdown, then reports how
// many lines the log dropped because stdout could not keep up: exact once
// closed, and written straight to stdout.
func closeLog(logs *logging.Sink, log *slog.Logger) {
	_ = logs.Close()
	if n := logs.Dropped(); n > 0 {
		log.Warn("log lines were dropped: stdout could not keep up", slog.Int64("dropped", n))
	}
}

// logEffectiveConfig logs what is in force, with the API key reduced to
// whether one is set, and which keys the environment or a flag overrode
// (by name, never by value).
func logEffectiveConfig(log *slog.Logger, l loaded, opts options, hasKey, hasAdmin bool) {
	cfg := l.cfg
	source := "file"
	if l.defaults {
		source = "built-in defaults"
	}
	overrides := map[string]string{}
	for _, o := range overriddenKeys(opts) {
		overrides[o.key] = o.source
	}
	attrs := []any{
		slog.String("path", opts.configPath),
		slog.String("source", source),
		slog.Any("overrides", overrides),
		slog.Bool("circuit_breaker_enabled", cfg.CircuitBreaker.Enabled),
		slog.Bool("expose_health_endpoint", cfg.CircuitBreaker.ExposeHealthEndpoint),
		slog.Bool("log_circuit_changes", cfg.CircuitBreaker.LogCircuitChanges),
		slog.Bool("metrics_enabled", cfg.CircuitBreaker.MetricsEnabled),
		slog.String("llm_base_url", redact.URL(cfg.LLM.BaseURL)),
		slog.Any("llm_providers", providerURLs(cfg.LLM)),
		slog.String("llm_api_key_env", cfg.LLM.APIKeyEnv),
		slog.Bool("llm_api_key_set", hasKey),
		slog.Bool("admin_api_enabled", hasAdmin),
		slog.Bool("alerts_enabled", cfg.Alerts.WebhookURL != ""),
		slog.String("addr", cfg.Server.Addr),
		slog.Group("server",
			slog.Int64("max_body_bytes", cfg.Server.MaxBodyBytes),
			slog.Float64("drain_seconds", float64(cfg.Server.DrainSeconds)),
			slog.Float64("shutdown_grace_seconds", float64(cfg.Server.ShutdownGraceSeconds)),
			slog.Float64("request_timeout_seconds", float64(cfg.Server.RequestTimeoutSeconds)),
			slog.Float64("sse_heartbeat_seconds", float64(cfg.Server.SSEHeartbeatSeconds)),
			slog.Float64("read_timeout_seconds", float64(cfg.Server.ReadTimeoutSeconds)),
			slog.Int("max_connections", cfg.Server.MaxConnections),
			slog.Any("trusted_proxies", cfg.Server.TrustedProxies),
			slog.Any("cors_origins", cfg.Server.CORSOrigins),
			slog.Bool("tls", cfg.Server.TLS())),
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
		slog.Any("sources", sourceSummary(cfg)),
	}
	for _, name := range config.CircuitNames() {
		c := cfg.CircuitBreaker.Circuits[name]
		attrs = append(attrs, slog.Group(name,
			slog.Int("failure_threshold", c.FailureThreshold),
			slog.Float64("recovery_timeout", float64(c.RecoveryTimeout)),
			slog.Int("success_threshold", c.SuccessThreshold),
			slog.Float64("timeout", float64(c.Timeout)),
			slog.Any("targets", targetIDs(cfg.LLM.Models[name])),
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

// otherKeys are the API keys of the providers other than the default, for
// the redactor.
func otherKeys(cfg config.LLM, getenv func(string) string) []string {
	var out []string
	for _, name := range cfg.ProviderNames() {
		if name == config.DefaultProvider {
			continue
		}
		if k := getenv(cfg.ResolvedProviders()[name].APIKeyEnv); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func targetIDs(ts config.Targets) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.String())
	}
	return out
}

// providerURLs maps each provider to its base URL as it may be shown.
func providerURLs(cfg config.LLM) map[string]string {
	out := map[string]string{}
	for name, p := range cfg.ResolvedProviders() {
		out[name] = redact.URL(p.BaseURL)
	}
	return out
}
