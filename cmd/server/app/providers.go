package app

import (
	"sort"
	"sync"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/redact"
)

// providers keeps one llm.Client, with its own transport, per configured
// provider. A reload rebuilds the clients whose settings (URL, key, pool,
// reply cap) changed and keeps the others, so that their connections and
// their targets' breakers survive.
type providers struct {
	// key returns the API key of the named provider.
	key func(name string, p config.Provider) string

	mu      sync.Mutex
	clients map[string]*providerClient
}

type providerClient struct {
	settings llm.Config
	client   *llm.Client
}

func newProviders(key func(string, config.Provider) string) *providers {
	return &providers{key: key, clients: map[string]*providerClient{}}
}

// apply brings the clients in line with cfg and returns them by name.
func (p *providers) apply(cfg config.LLM) map[string]*llm.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	resolved := cfg.ResolvedProviders()
	out := make(map[string]*llm.Client, len(resolved))
	for name, pc := range resolved {
		want := llm.Config{
			BaseURL:             pc.BaseURL,
			APIKey:              p.key(name, pc),
			MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost,
			MaxResponseBytes:    cfg.MaxResponseBytes,
		}
		cur, ok := p.clients[name]
		if !ok || cur.settings != want {
			if ok {
				// Calls in flight finish on their connections; only the
				// idle ones go.
				cur.client.Close()
			}
			cur = &providerClient{settings: want, client: llm.NewClient(want)}
			p.clients[name] = cur
		}
		out[name] = cur.client
	}
	for name, cur := range p.clients {
		if _, ok := resolved[name]; !ok {
			cur.client.Close()
			delete(p.clients, name)
		}
	}
	return out
}

// close releases every client's idle connections.
func (p *providers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cur := range p.clients {
		cur.client.Close()
	}
}

// secrets are every provider's API key, for the redactor.
func (p *providers) secrets(cfg config.LLM) []string {
	var out []string
	names := make([]string, 0)
	resolved := cfg.ResolvedProviders()
	for name := range resolved {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if k := p.key(name, resolved[name]); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// registryConfig turns the validated config into the circuits' own
// settings and targets: package circuit does not know package config.
func registryConfig(cfg config.Config, clients map[string]*llm.Client) circuit.RegistryConfig {
	resolved := cfg.LLM.ResolvedProviders()
	out := circuit.RegistryConfig{Enabled: cfg.CircuitBreaker.Enabled, LogCircuitChanges: cfg.CircuitBreaker.LogCircuitChanges}
	for _, name := range config.CircuitNames() {
		cc, ok := cfg.CircuitBreaker.Circuits[name]
		if !ok {
			continue
		}
		spec := circuit.Spec{Name: name, Settings: settingsOf(cc)}
		for _, t := range cfg.LLM.Models[name] {
			spec.Targets = append(spec.Targets, circuit.TargetSpec{
				Provider: t.Provider, Model: t.Model,
				// Shown as the one URL policy says: scheme://host[:port].
				URL:      redact.URL(resolved[t.Provider].BaseURL),
				Endpoint: resolved[t.Provider].BaseURL,
				LLM:      clients[t.Provider],
			})
		}
		out.Circuits = append(out.Circuits, spec)
	}
	return out
}

// settingsOf converts one circuit's config, its zeros filled with the
// defaults (config.Circuit.Effective).
func settingsOf(cc config.Circuit) circuit.Settings {
	cc = cc.Effective()
	return circuit.Settings{
		FailureThreshold:          cc.FailureThreshold,
		RecoveryTimeout:           cc.RecoveryTimeout.Duration(),
		RecoveryBackoffMultiplier: cc.RecoveryBackoffMultiplier,
		MaxRecoveryTimeout:        cc.MaxRecoveryTimeout.Duration(),
		SuccessThreshold:          cc.SuccessThreshold,
		Timeout:                   cc.Timeout.Duration(),
		MaxConcurrent:             cc.MaxConcurrent,
		MaxAttempts:               cc.MaxAttempts,
		RetryBackoff:              cc.RetryBackoff.Duration(),
		MaxRetryBackoff:           cc.MaxRetryBackoff.Duration(),
		MaxRetryAfter:             cc.MaxRetryAfter.Duration(),
		FailureRateThreshold:      cc.FailureRateThreshold,
		FailureRateWindow:         cc.FailureRateWindow.Duration(),
		MinimumCalls:              cc.MinimumCalls,
		HedgeAfter:                cc.HedgeAfter.Duration(),
		HedgeBudgetPercent:        cc.HedgeBudgetPercent,
		RecoveryProbe:             cc.RecoveryProbe,
		FirstTokenTimeout:         cc.FirstTokenTimeout.Duration(),
		SlowCallThreshold:         cc.SlowCallThreshold.Duration(),
		SlowCallRateThreshold:     cc.SlowCallRateThreshold,
	}
}

// probeTargets lists every provider for the prober, default first.
func probeTargets(cfg config.LLM, clients map[string]*llm.Client) []llm.ProbeTarget {
	resolved := cfg.ResolvedProviders()
	out := make([]llm.ProbeTarget, 0, len(resolved))
	for _, name := range cfg.ProviderNames() {
		// The whole URL, so that a move to another path is a new
		// provider to probe; the prober shows scheme and host only.
		out = append(out, llm.ProbeTarget{Name: name, URL: resolved[name].BaseURL, Client: clients[name]})
	}
	return out
}
