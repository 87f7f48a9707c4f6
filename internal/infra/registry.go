package infra

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nexus/nexus/config"
)

// Options are the registry's injected dependencies.
type Options struct {
	Logger *slog.Logger
	// Redactor scrubs secrets from errors kept in statistics.
	Redactor *Redactor
	// LogCircuitChanges logs each transition once (WARN for open).
	LogCircuitChanges bool
	// Now is the clock for statistics; time.Now when nil.
	Now func() time.Time
	// OnTransition, if set, is told of every transition, outside any lock.
	OnTransition func(Transition)
}

// Registry holds one Circuit per configured name. It is built once in run
// and handed to the agents that need it; there is no global lookup.
type Registry struct {
	enabled  bool
	circuits map[string]*Circuit
	order    []string
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
	r := &Registry{enabled: cfg.CircuitBreaker.Enabled, circuits: map[string]*Circuit{}}
	for _, name := range config.CircuitNames() {
		cc, ok := cfg.CircuitBreaker.Circuits[name]
		if !ok {
			continue
		}
		r.circuits[name] = newCircuit(name, cc, cfg.CircuitBreaker.Enabled, cfg.LLM.Models[name], llm, opts)
		r.order = append(r.order, name)
	}
	return r
}

// Enabled reports circuit_breaker.enabled.
func (r *Registry) Enabled() bool { return r.enabled }

// Circuit returns the named circuit. Wiring code calls it once at start-up;
// an unknown name is a programming error, hence the panic.
func (r *Registry) Circuit(name string) *Circuit {
	c, ok := r.circuits[name]
	if !ok {
		panic(fmt.Sprintf("infra: no circuit named %q", name))
	}
	return c
}

// Statuses reports every circuit, in configuration order.
func (r *Registry) Statuses() []CircuitStatus {
	out := make([]CircuitStatus, 0, len(r.order))
	for _, name := range r.order {
		out = append(out, r.circuits[name].Status())
	}
	return out
}
