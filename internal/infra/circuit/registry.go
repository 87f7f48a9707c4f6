package circuit

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Options are the registry's injected dependencies.
type Options struct {
	Logger *slog.Logger
	// Redactor scrubs secrets from errors kept in statistics.
	Redactor *redact.Redactor
	// LogCircuitChanges logs each transition once (WARN for open).
	LogCircuitChanges bool
	// Now is the clock for statistics; time.Now when nil.
	Now func() time.Time
	// OnTransition, if set, is told of every transition, outside any lock.
	OnTransition func(Transition)
	// OnCall, if set, is told of every call's outcome, outside any lock.
	OnCall func(CallEvent)
}

// ErrUnknownCircuit is returned for a circuit name that is not configured.
var ErrUnknownCircuit = errors.New("unknown circuit")

// Registry holds one Circuit per configured name. It is built once in run
// and handed to the agents that need it; there is no global lookup.
type Registry struct {
	circuits map[string]*Circuit
	order    []string
	log      *slog.Logger

	mu      sync.Mutex
	enabled bool
}

// NewRegistry builds every circuit in cfg. cfg must have passed Validate:
// failsafe-go's builders panic on out-of-range values.
func NewRegistry(cfg config.Config, llm Chatter, opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{enabled: cfg.CircuitBreaker.Enabled, circuits: map[string]*Circuit{}, log: opts.Logger}
	// llm.base_url is restart-only, so a circuit's target never changes.
	// It is shown as the one URL policy says: scheme://host[:port].
	target := opts.Redactor.Redact(redact.URL(cfg.LLM.BaseURL))
	for _, name := range config.CircuitNames() {
		cc, ok := cfg.CircuitBreaker.Circuits[name]
		if !ok {
			continue
		}
		r.circuits[name] = newCircuit(name, cc, cfg.CircuitBreaker.Enabled, cfg.LLM.Models[name], target, llm, opts)
		r.order = append(r.order, name)
	}
	return r
}

// Enabled reports circuit_breaker.enabled.
func (r *Registry) Enabled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.enabled
}

// Circuit returns the named circuit. Wiring code calls it once at start-up;
// an unknown name is a programming error, hence the panic.
func (r *Registry) Circuit(name string) *Circuit {
	c, ok := r.circuits[name]
	if !ok {
		panic(fmt.Sprintf("infra: no circuit named %q", name))
	}
	return c
}

// Lookup returns the named circuit, or ErrUnknownCircuit.
func (r *Registry) Lookup(name string) (*Circuit, error) {
	c, ok := r.circuits[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCircuit, name)
	}
	return c, nil
}

// Statuses reports every circuit, in configuration order.
func (r *Registry) Statuses() []CircuitStatus {
	out := make([]CircuitStatus, 0, len(r.order))
	for _, name := range r.order {
		out = append(out, r.circuits[name].Status())
	}
	return out
}

// Apply brings the circuits in line with a new, validated config: circuits
// whose settings did not change keep their state and statistics; changed
// ones are rebuilt closed (keeping statistics and events). It returns the
// names of the rebuilt circuits.
func (r *Registry) Apply(cfg config.Config) []string {
	r.mu.Lock()
	r.enabled = cfg.CircuitBreaker.Enabled
	r.mu.Unlock()
	var changed []string
	for _, name := range r.order {
		cc := cfg.CircuitBreaker.Circuits[name]
		switch r.circuits[name].reconfigure(cc, cfg.CircuitBreaker.Enabled, cfg.CircuitBreaker.LogCircuitChanges, cfg.LLM.Models[name]) {
		case reconfigRebuilt:
			changed = append(changed, name)
			r.log.Info("circuit rebuilt by config reload", slog.String("circuit", name),
				slog.Int("failure_threshold", cc.FailureThreshold), slog.Float64("recovery_timeout", float64(cc.RecoveryTimeout)),
				slog.Int("success_threshold", cc.SuccessThreshold), slog.Float64("timeout", float64(cc.Timeout)),
				slog.Int("max_concurrent", cc.MaxConcurrent),
				slog.Bool("enabled", cfg.CircuitBreaker.Enabled), slog.String("model", cfg.LLM.Models[name]))
		case reconfigBulk:
			r.log.Info("circuit max_concurrent changed by config reload; state kept", slog.String("circuit", name),
				slog.Int("max_concurrent", cc.MaxConcurrent))
		}
	}
	return changed
}
