package circuit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/infra/redact"
)

// Hooks are told of what happens in the circuits, outside any lock; each
// may be nil. Their labels come from configuration only.
type Hooks struct {
	// OnTransition is told of every target's transition, in order.
	OnTransition func(Transition)
	// OnCall is told of every attempt's outcome and every refusal.
	OnCall func(CallEvent)
	// OnRetry is told of every retry on the same target.
	OnRetry func(circuit, provider, model string)
	// OnFailover is told each time a call moves on to a later target and
	// sends it a request.
	OnFailover func(circuit, fromProvider, toProvider string)
	// OnHedge is told how each hedge ended: HedgeWon or HedgeLost.
	OnHedge func(circuit, outcome string)
	// OnUsage is told of the tokens every attempt's upstream reported
	// spending, the attempts whose answer was not used (a failed retry,
	// an empty completion) included. ctx is the call's own context, so
	// that the caller can attribute the tokens to whatever its context
	// carries (the API key of the request); the circuits know nothing of
	// it.
	OnUsage func(ctx context.Context, e UsageEvent)
	// OnFirstToken is told how long each streamed attempt waited for its
	// first token.
	OnFirstToken func(circuit, provider, model string, d time.Duration)
	// OnStreamInterrupted is told of every stream that failed after its
	// first token had reached the caller.
	OnStreamInterrupted func(circuit, provider string)
}

// UsageEvent is the tokens one attempt on one target spent.
type UsageEvent struct {
	Circuit  string
	Provider string
	// Model is the target's configured model, or "other" when a request
	// named another one (as in CallEvent).
	Model            string
	PromptTokens     int
	CompletionTokens int
}

// Options are the registry's injected dependencies.
type Options struct {
	Logger *slog.Logger
	// Redactor scrubs secrets from errors kept in statistics.
	Redactor *redact.Redactor
	// Now is the clock for statistics and delays; time.Now when nil.
	Now   func() time.Time
	Hooks Hooks
}

// Registry holds one Circuit per configured name. It is built once in run
// and handed to the agents that need it; there is no global lookup.
type Registry struct {
	circuits   map[string]*Circuit
	order      []string
	log        *slog.Logger
	background *background

	mu      sync.Mutex
	enabled bool
}

// NewRegistry builds every circuit in cfg, whose values must have been
// validated: failsafe-go's builders panic on out-of-range values. Close
// stops its recovery probes.
func NewRegistry(cfg RegistryConfig, opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{enabled: cfg.Enabled, circuits: map[string]*Circuit{}, log: opts.Logger, background: newBackground()}
	for _, spec := range cfg.Circuits {
		c := &Circuit{
			name: spec.Name, log: opts.Logger, redact: opts.Redactor, now: opts.Now, hooks: opts.Hooks,
			background: r.background,
			s:          spec.Settings, enabled: cfg.Enabled, logChanges: cfg.LogCircuitChanges,
			events: eventLog{max: maxEvents},
		}
		for _, ts := range spec.Targets {
			c.targets = append(c.targets, c.newTarget(ts))
		}
		r.circuits[spec.Name] = c
		r.order = append(r.order, spec.Name)
	}
	return r
}

func (c *Circuit) newTarget(spec TargetSpec) *target {
	t := &target{c: c, spec: spec}
	t.build(c.s)
	return t
}

// Close stops the recovery probes and waits for those running. Calls keep
// working; only Nexus's own probes end.
func (r *Registry) Close() {
	r.background.stop() // no probe is scheduled from here on
	for _, name := range r.order {
		c := r.circuits[name]
		c.mu.Lock()
		for _, t := range c.targets {
			t.stopProbe()
		}
		c.mu.Unlock()
	}
	r.background.close()
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
		panic(fmt.Sprintf("circuit: no circuit named %q", name))
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

// Apply brings the circuits in line with a new, validated config (a
// circuit not in it keeps its settings). Targets that did not change
// (same provider, model and URL) keep their state and statistics; new ones
// start closed; removed ones are dropped. A change of breaker settings
// rebuilds every target of the circuit closed, keeping statistics, events
// and an operator's forced open. It returns the names of the rebuilt
// circuits.
func (r *Registry) Apply(cfg RegistryConfig) []string {
	r.mu.Lock()
	r.enabled = cfg.Enabled
	r.mu.Unlock()
	var changed []string
	for _, spec := range cfg.Circuits {
		c, ok := r.circuits[spec.Name]
		if !ok {
			continue
		}
		what := c.reconfigure(spec, cfg.Enabled, cfg.LogCircuitChanges)
		if what == reconfigNone {
			continue
		}
		if what == reconfigRebuilt {
			changed = append(changed, spec.Name)
		}
		s := spec.Settings
		ids := make([]string, 0, len(spec.Targets))
		for _, t := range spec.Targets {
			ids = append(ids, t.ID())
		}
		msg := "circuit rebuilt by config reload"
		if what != reconfigRebuilt {
			msg = "circuit settings or targets changed by config reload; state kept"
		}
		r.log.Info(msg, slog.String("circuit", spec.Name),
			slog.Int("failure_threshold", s.FailureThreshold), slog.Float64("recovery_timeout", s.RecoveryTimeout.Seconds()),
			slog.Int("success_threshold", s.SuccessThreshold), slog.Float64("timeout", s.Timeout.Seconds()),
			slog.Int("max_concurrent", s.MaxConcurrent), slog.Int("max_attempts", s.MaxAttempts),
			slog.Bool("enabled", cfg.Enabled), slog.Any("targets", ids))
	}
	return changed
}

// What a reload did to a circuit.
const (
	reconfigNone    = ""
	reconfigRebuilt = "rebuilt"
	reconfigInPlace = "settings applied in place; state kept"
)

// reconfigure applies a new spec. Changes that are not the breaker's
// (max_concurrent, retries, cooldowns, hedging, the targets' list) apply in
// place: an operator tuning them during an outage must not close a tripped
// target. A change of the breaker's settings, or of enabled, rebuilds every
// target closed, except those an operator holds open.
func (c *Circuit) reconfigure(spec Spec, enabled, logChanges bool) string {
	c.mu.Lock()
	c.logChanges = logChanges
	now := c.now()
	old := make(map[TargetSpec]*target, len(c.targets))
	for _, t := range c.targets {
		old[key(t.spec)] = t
	}
	same := len(spec.Targets) == len(c.targets)
	targets := make([]*target, 0, len(spec.Targets))
	for i, ts := range spec.Targets {
		t, ok := old[key(ts)]
		if ok {
			t.spec.LLM = ts.LLM // a new client for the same provider (a new key)
			delete(old, key(ts))
		} else {
			t = c.newTarget(ts)
			same = false
		}
		if same && c.targets[i] != t {
			same = false
		}
		targets = append(targets, t)
	}
	for _, t := range old {
		t.stopProbe()
	}
	rebuild := !breakerEqual(c.s, spec.Settings) || c.enabled != enabled
	if !rebuild && same && c.s == spec.Settings {
		c.mu.Unlock()
		return reconfigNone
	}
	if !rebuild {
		c.s = spec.Settings
		c.targets = targets
		c.events.add(Event{At: now, Type: EventReconfig, Reason: "settings or targets changed by a config reload; breaker state kept"})
		c.mu.Unlock()
		return reconfigInPlace
	}
	type before struct {
		t    *target
		from string
	}
	var was []before
	for _, t := range targets {
		t.syncLocked(now)
		was = append(was, before{t, t.stateLocked(now)})
	}
	c.s, c.enabled, c.targets = spec.Settings, enabled, targets
	c.events.add(Event{At: now, Type: EventReconfig, Reason: "settings changed by a config reload"})
	for _, b := range was {
		b.t.build(c.s)
		if to := b.t.stateLocked(now); b.from != to {
			b.t.counts.lastStateChangeAt = now
			c.noteTransitionLocked(b.t, Transition{Circuit: c.name, Provider: b.t.spec.Provider, Model: b.t.spec.Model,
				From: b.from, To: to, Reason: "rebuilt by a config reload", At: now})
		}
	}
	c.mu.Unlock()
	c.deliver()
	return reconfigRebuilt
}

// key identifies a target across reloads: its provider, model and
// endpoint (a provider moved to another path of the same host is another
// upstream).
func key(t TargetSpec) TargetSpec {
	t.LLM = nil
	return t
}
