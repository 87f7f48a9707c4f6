package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
)

// reloader re-reads the config file on a file change, SIGHUP or the admin
// endpoint. An invalid file is rejected whole and the old config stays.
// Circuits, circuit_breaker flags, the llm section (providers, targets,
// models) and alerts apply live; anything else (the sources section
// included) is logged as needing a restart and otherwise left as it was.
// Every reload re-introspects the live sources, whose tables may have
// changed without any change to the file.
//
// A reload waits on nothing slow but the sources' refresh, which is
// bounded (sourceRefreshTimeout) and ends with its context (shutdown
// cancels it): the alert notifier it replaces drains in the background
// (see alerter.update).
type reloader struct {
	live      *config.Live
	circuits  *circuit.Registry
	providers *providers
	prober    *llm.Prober
	alerts    *alerter
	// sources are refreshed by every accepted reload; nil: none.
	sources *pgsource.Set
	log     *slog.Logger
	opts    options
	// redact cleans a rejected file's error before it is logged and shown
	// by health: config errors quote the values they refuse.
	redact *redact.Redactor
	// cert is the TLS certificate, re-read on every reload; nil over
	// plain HTTP.
	cert *certificate

	// turn is held by the reload in progress, so that reloads run one at a
	// time. It is a channel rather than a mutex so that a reload waiting
	// for its turn gives up when its context ends.
	turn chan struct{}
	// file is the config file as the last accepted load read it, before
	// overrides; only the holder of turn touches it.
	file config.Config
}

func newReloader(r reloader) *reloader {
	r.turn = make(chan struct{}, 1)
	return &r
}

// reload loads the file and applies it. It returns ctx's error, changing
// nothing, if ctx ends before the new config is committed.
func (r *reloader) reload(ctx context.Context) error {
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.turn }()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Whatever becomes of the file, so that SIGHUP renews a certificate.
	r.cert.reload()
	l, err := loadConfig(r.opts)
	if err != nil {
		err = errors.New(r.redact.Redact(err.Error()))
		r.live.Fail(err)
		r.log.Error("config reload rejected; the previous config stays in force", slog.String("error", err.Error()))
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.logOverrides(l.file)
	r.file = l.file
	next, cur := l.cfg, r.live.Current()
	if len(cur.Auth.Keys) > 0 && len(next.Auth.Keys) == 0 && !next.Server.AllowOpenAPI {
		// Revoking every key must not mean granting everyone everything.
		err := errors.New("auth: this reload removes every API key, which would open every route to anyone who can reach the server; " +
			"keep a key, or set server.allow_open_api: true to mean it")
		r.live.Fail(err)
		r.log.Error("config reload rejected; the previous config stays in force", slog.String("error", err.Error()))
		return err
	}
	// Restart-only sections keep their values in force until a restart.
	for _, sec := range []struct {
		name    string
		changed bool
		keep    func()
	}{
		{"server", !next.Server.Equal(cur.Server), func() { next.Server = cur.Server }},
		{"datasets", next.Datasets != cur.Datasets, func() { next.Datasets = cur.Datasets }},
		{"cot_review", next.CoTReview != cur.CoTReview, func() { next.CoTReview = cur.CoTReview }},
		{"sources", !sourcesEqual(next.Sources, cur.Sources), func() { next.Sources = cur.Sources }},
	} {
		if sec.changed {
			r.log.Warn("restart required: config change ignored until then", slog.String("section", sec.name))
			sec.keep()
		}
	}
	if next.LLM.ProbeInterval != cur.LLM.ProbeInterval {
		r.log.Warn("restart required: config change ignored until then", slog.String("key", "llm.probe_interval"))
		next.LLM.ProbeInterval = cur.LLM.ProbeInterval
	}
	keepRestartOnlyLimits(r.log, &next, cur)
	// The config status is committed before its effects, so a client that
	// sees a rebuilt or disabled circuit also sees the reload that did it
	// (loaded_at moved, last_reload_error cleared).
	r.live.Set(next, time.Now())
	// A provider added by this reload brings a key the redactor must hide
	// from now on.
	r.redact.Add(r.providers.secrets(next.LLM)...)
	clients := r.providers.apply(next.LLM)
	changed := r.circuits.Apply(registryConfig(next, clients))
	if r.prober != nil {
		r.prober.Set(probeTargets(next.LLM, clients))
	}
	if next.Alerts != cur.Alerts {
		r.alerts.update(next.Alerts)
	}
	r.log.Info("config reloaded", slog.Any("rebuilt_circuits", changed),
		slog.Bool("circuit_breaker_enabled", next.CircuitBreaker.Enabled),
		slog.Bool("expose_health_endpoint", next.CircuitBreaker.ExposeHealthEndpoint),
		slog.Bool("metrics_enabled", next.CircuitBreaker.MetricsEnabled),
		slog.Bool("log_circuit_changes", next.CircuitBreaker.LogCircuitChanges),
		slog.Bool("alerts_enabled", next.Alerts.WebhookURL != ""))
	refreshSources(ctx, r.sources, r.log, r.redact)
	return nil
}

// logOverrides warns about each key that the file changed but the
// environment or a flag overrides, since the edit then has no effect. It
// names the key and the variable or flag, never a value: values may be
// secrets.
func (r *reloader) logOverrides(file config.Config) {
	for _, o := range overriddenKeys(r.opts) {
		if o.env.Get(file) != o.env.Get(r.file) {
			r.log.Warn("config file changed a key that is overridden; the override stays in force",
				slog.String("key", o.key), slog.String("overridden_by", o.source))
		}
	}
}
