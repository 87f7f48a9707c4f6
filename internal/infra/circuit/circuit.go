package circuit

import (
	"github.com/nexus/nexus/internal/infra/llm"

	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Circuit states as health reports them.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half-open"
	StateDisabled = "disabled"
)

// Chatter is the LLM transport that a circuit guards. *LLMClient is the
// real one.
type Chatter interface {
	Chat(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error)
}

// Transition is one change of a circuit's state.
type Transition struct {
	Circuit string    `json:"circuit"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	// Forced is true for changes made by an operator.
	Forced bool `json:"forced"`
	// Stats are the circuit's statistics right after the change.
	Stats Stats `json:"-"`
}

// Call outcomes as metrics label them; they are disjoint.
const (
	CallSuccess  = "success"
	CallFailure  = "failure"
	CallTimeout  = "timeout"
	CallRejected = "rejected"
	CallNeutral  = "neutral"
)

// CallEvent describes one guarded call, for metrics.
type CallEvent struct {
	Circuit string
	// Model is the circuit's configured model, or "other" when a request
	// named another one (keeps metric labels bounded).
	Model    string
	Outcome  string
	Duration time.Duration
}

// CircuitStatus is a point-in-time view of a circuit for health reports.
type CircuitStatus struct {
	Name  string
	State string
	// Forced is true while an operator holds the circuit open.
	Forced bool
	// Config is the circuit's effective settings.
	Config config.Circuit
	Model  string
	// Target is the LLM base URL the circuit's calls go to, fit to show:
	// no userinfo, query or fragment, and secrets redacted.
	Target string
	// RemainingDelay is how long an open circuit keeps rejecting; 0 when
	// not open or forced open.
	RemainingDelay    time.Duration
	Stats             Stats
	RecentTransitions []Transition
	// InFlight is how many calls are in flight through the circuit now.
	InFlight int
}

// Circuit guards every LLM call of one named agent step with a failsafe-go
// circuit breaker and a call timeout (callTimeout: failsafe-go's timeout
// semantics and error without its executor), and, when max_concurrent is
// set, a bulkhead that refuses calls past that many in flight.
//
// failsafe-go records every error that its handle conditions do not match
// as a success, and pairs each half-open permit with exactly one record. A
// neutral outcome (LLM 400/422, client hang-up) must change nothing, so the
// breaker is driven by hand: Circuit admits calls itself, limits half-open
// trials to success_threshold, and only for a counted outcome takes a permit
// and records it at once. A neutral trial simply hands its slot back.
//
// Every call into cb happens with mu held. failsafe-go runs state listeners
// synchronously on the calling goroutine, so onStateChanged relies on the
// caller's lock and must never take mu itself.
//
// A Circuit is never replaced: a reload rebuilds its breaker in place, so
// that the agents holding it see new settings at once.
type Circuit struct {
	name    string
	target  string // the LLM base URL as redact.URL shows it
	llm     Chatter
	log     *slog.Logger
	redact  *redact.Redactor
	now     func() time.Time
	observe func(Transition)
	onCall  func(CallEvent)

	mu         sync.Mutex
	cfg        config.Circuit
	enabled    bool
	logChanges bool
	model      string
	limit      callTimeout
	cb         circuitbreaker.CircuitBreaker[llm.ChatResponse]
	forced     bool
	// gen counts transitions and rebuilds; a permit records into the
	// breaker only if nothing changed since it was taken, so a call
	// admitted while closed can never close a half-open circuit without a
	// real trial, and a call in flight across a forced change or a reload
	// records nothing into the new state.
	gen    uint64
	trials int
	// inFlight counts admitted calls not yet finished, across rebuilds;
	// cfg.MaxConcurrent caps it while circuit breakers are enabled.
	inFlight int
	counts   counters
	reason   string    // why the transition about to happen happens
	forcing  bool      // the transition about to happen is an operator's
	at       time.Time // when it happened, if not now (the lazy half-open)
	pending  []Transition
	recent   []Transition
	events   eventLog
}

type permit struct {
	gen   uint64
	trial bool
}

// busyLocked reports whether the bulkhead refuses another call.
func (c *Circuit) busyLocked() bool {
	return c.cfg.MaxConcurrent > 0 && c.inFlight >= c.cfg.MaxConcurrent
}

func newCircuit(name string, cfg config.Circuit, enabled bool, model, target string, llm Chatter, opts Options) *Circuit {
	c := &Circuit{
		name:       name,
		target:     target,
		llm:        llm,
		log:        opts.Logger,
		redact:     opts.Redactor,
		now:        opts.Now,
		observe:    opts.OnTransition,
		onCall:     opts.OnCall,
		logChanges: opts.LogCircuitChanges,
		events:     eventLog{max: maxEvents},
	}
	c.build(cfg, enabled, model)
	return c
}

// build (re)creates the breaker and the call limit, and zeroes the failure
// streak, since the new breaker has counted nothing yet. Requires mu or
// exclusivity.
func (c *Circuit) build(cfg config.Circuit, enabled bool, model string) {
	c.cfg, c.enabled, c.model = cfg, enabled, model
	c.counts.consecutive = 0
	c.limit = callTimeout(cfg.Timeout.Duration())
	c.cb = circuitbreaker.NewBuilder[llm.ChatResponse]().
		WithFailureThreshold(uint(cfg.FailureThreshold)).
		WithSuccessThreshold(uint(cfg.SuccessThreshold)).
		WithDelay(cfg.RecoveryTimeout.Duration()).
		OnStateChanged(c.onStateChanged).
		Build()
	c.forced = false
	c.trials = 0
	c.gen++
}

// Name is the circuit's configured name.
func (c *Circuit) Name() string { return c.name }

// Model is the model this circuit's calls use unless a request names one.
func (c *Circuit) Model() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.model
}

// Complete sends req to the LLM through the circuit. Every error is an
// *LLMError; a rejection by an open circuit makes no upstream request.
func (c *Circuit) Complete(ctx context.Context, req llm.ChatRequest) (llm.ChatResponse, error) {
	p, limit, model, label, err := c.acquire(req.Model)
	if err != nil {
		c.emitCall(label, CallRejected, 0)
		return llm.ChatResponse{}, err
	}
	finished := false
	defer func() {
		if !finished {
			// The LLM client panicked: the call ends as neutral, so that
			// neither its bulkhead slot nor its half-open trial slot is
			// lost; the panic goes on up.
			_ = c.finish(p, llm.Neutral, "", nil)
		}
	}()
	start := time.Now()
	resp, err := limit.get(ctx, func(ctx context.Context) (llm.ChatResponse, error) {
		return c.llm.Chat(ctx, model, req)
	})
	took := time.Since(start)
	outcome, kind := llm.Classify(ctx, err)
	c.emitCall(label, callLabel(outcome, kind), took)
	finished = true
	if ferr := c.finish(p, outcome, kind, err); ferr != nil {
		return llm.ChatResponse{}, ferr
	}
	return resp, nil
}

func callLabel(o llm.Outcome, k llm.Kind) string {
	switch {
	case o == llm.Success:
		return CallSuccess
	case o == llm.Neutral:
		return CallNeutral
	case k == llm.KindTimeout:
		return CallTimeout
	default:
		return CallFailure
	}
}

func (c *Circuit) emitCall(model, outcome string, d time.Duration) {
	if c.onCall != nil {
		c.onCall(CallEvent{Circuit: c.name, Model: model, Outcome: outcome, Duration: d})
	}
}

func (c *Circuit) acquire(override string) (permit, callTimeout, string, string, error) {
	c.mu.Lock()
	model, label := c.model, c.model
	if override != "" && override != c.model {
		model, label = override, "other"
	}
	limit := c.limit
	admit := func(p permit) (permit, callTimeout, string, string, error) {
		c.inFlight++
		pending := c.takePendingLocked() // the lazy half-open this call found
		c.mu.Unlock()
		c.flush(pending)
		return p, limit, model, label, nil
	}
	if !c.enabled {
		return admit(permit{gen: c.gen})
	}
	c.syncLocked()
	if !c.forced {
		switch c.cb.State() {
		case circuitbreaker.ClosedState:
			if c.busyLocked() {
				return c.refuseBusyLocked(model, label)
			}
			return admit(permit{gen: c.gen})
		case circuitbreaker.HalfOpenState:
			if c.trials < c.cfg.SuccessThreshold {
				if c.busyLocked() {
					return c.refuseBusyLocked(model, label)
				}
				c.trials++
				return admit(permit{gen: c.gen, trial: true})
			}
		}
	}
	c.counts.rejected++
	state, remaining := c.stateLocked(), c.cb.RemainingDelay()
	msg := fmt.Sprintf("circuit %s is %s after repeated LLM failures; no request was sent", c.name, state)
	cause := ErrCircuitOpen
	switch {
	case c.forced:
		remaining = c.cfg.RecoveryTimeout.Duration()
		msg = fmt.Sprintf("circuit %s is held open by an operator; no request was sent", c.name)
		cause = ErrCircuitForcedOpen
	case state == StateHalfOpen:
		msg = fmt.Sprintf("circuit %s is half-open and its trial calls are in flight; no request was sent", c.name)
	}
	c.events.rejected(c.now(), llm.KindCircuitOpen, "calls rejected without contacting the LLM")
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
	return permit{}, 0, model, label, &LLMError{
		Circuit: c.name, Kind: llm.KindCircuitOpen, State: state,
		RetryAfter: remaining, Message: msg, Err: cause,
	}
}

// busyRetryAfter is the Retry-After of a bulkhead refusal: calls finish
// within the circuit's timeout, usually much sooner.
const busyRetryAfter = time.Second

// refuseBusyLocked refuses a call that the breaker would admit because
// max_concurrent calls are in flight. It is a rejection, not a failure:
// the breaker's counts and state are untouched. It unlocks mu.
func (c *Circuit) refuseBusyLocked(model, label string) (permit, callTimeout, string, string, error) {
	c.counts.rejected++
	state := c.stateLocked()
	msg := fmt.Sprintf("circuit %s already has %d calls in flight, its max_concurrent; no request was sent", c.name, c.cfg.MaxConcurrent)
	c.events.rejected(c.now(), llm.KindCircuitBusy, "calls refused: max_concurrent calls already in flight")
	pending := c.takePendingLocked() // the lazy half-open, if it just became due
	c.mu.Unlock()
	c.flush(pending)
	return permit{}, 0, model, label, &LLMError{
		Circuit: c.name, Kind: llm.KindCircuitBusy, State: state,
		RetryAfter: busyRetryAfter, Message: msg, Err: ErrCircuitBusy,
	}
}

// finish records an admitted call's outcome and ends its stay in flight.
func (c *Circuit) finish(p permit, outcome llm.Outcome, kind llm.Kind, err error) error {
	c.mu.Lock()
	c.inFlight--
	current := c.enabled && p.gen == c.gen
	if p.trial && current && outcome == llm.Neutral {
		// Only a neutral trial hands its slot back: at most
		// success_threshold trials reach the LLM per half-open period.
		c.trials--
	}
	var msg string
	if err != nil {
		// The one place an LLM error becomes the text that is stored
		// and reported: redacted and bounded, however long the
		// upstream's message was.
		msg = c.redact.Scrub(llm.Describe(kind, err, c.cfg.Timeout.Duration()))
	}
	now := c.now()
	switch outcome {
	case llm.Success:
		c.counts.success++
		if p.gen == c.gen {
			c.counts.consecutive = 0
		}
		if current {
			if p.trial {
				c.reason = fmt.Sprintf("%d trial call(s) succeeded", c.cfg.SuccessThreshold)
			}
			c.record(p, c.cb.RecordSuccess)
		}
	case llm.Failure:
		c.counts.failure++
		if kind == llm.KindTimeout {
			c.counts.timeouts++
		}
		if p.gen == c.gen {
			// The streak mirrors the breaker's count: a call admitted
			// before a state change, a close or a rebuild does not
			// move it.
			c.counts.consecutive++
		}
		c.counts.lastFailureAt = now
		c.counts.lastError = string(kind) + ": " + msg
		c.events.add(Event{At: now, Type: EventFailure, Kind: string(kind), Reason: msg})
		if current {
			if p.trial {
				c.reason = "trial call failed: " + c.counts.lastError
			} else {
				c.reason = fmt.Sprintf("%d consecutive failures, last: %s", c.cfg.FailureThreshold, c.counts.lastError)
			}
			c.record(p, c.cb.RecordFailure)
		}
	}
	var out error
	if err != nil {
		retry := llm.RetryAfter(err)
		if c.enabled {
			retry = max(retry, c.cb.RemainingDelay())
		}
		out = &LLMError{
			Circuit: c.name, Kind: kind, State: c.stateLocked(), Status: llm.HTTPStatus(err),
			RetryAfter: retry, Message: msg, Err: err,
		}
	}
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
	return out
}

// record takes the breaker's permit just before recording, so that the
// breaker's own half-open permit count stays balanced (Circuit limits
// trials itself).
func (c *Circuit) record(p permit, fn func()) {
	if p.trial {
		c.cb.TryAcquirePermit()
	}
	fn()
	c.reason = ""
}

// syncLocked makes failsafe-go's lazy open→half-open move happen as soon as
// the recovery timeout has passed, so that health, logs and callers agree.
// HalfOpen() spends no trial slot, unlike TryAcquirePermit. A forced open
// never drifts to half-open.
func (c *Circuit) syncLocked() {
	if c.enabled && !c.forced && c.cb.State() == circuitbreaker.OpenState && c.cb.RemainingDelay() <= 0 {
		c.reason = fmt.Sprintf("recovery timeout of %s elapsed", c.cfg.RecoveryTimeout.Duration())
		c.at = c.counts.lastStateChangeAt.Add(c.cfg.RecoveryTimeout.Duration())
		c.cb.HalfOpen()
		c.reason = ""
	}
}

func (c *Circuit) stateLocked() string {
	if !c.enabled {
		return StateDisabled
	}
	if c.forced {
		return StateOpen
	}
	switch c.cb.State() {
	case circuitbreaker.OpenState:
		if c.cb.RemainingDelay() <= 0 {
			return StateHalfOpen
		}
		return StateOpen
	case circuitbreaker.HalfOpenState:
		return StateHalfOpen
	default:
		return StateClosed
	}
}

// onStateChanged runs inside a call into cb, with mu already held.
func (c *Circuit) onStateChanged(e circuitbreaker.StateChangedEvent) {
	c.gen++
	c.trials = 0
	at := c.now()
	if !c.at.IsZero() {
		at, c.at = c.at, time.Time{}
	}
	c.counts.lastStateChangeAt = at
	c.noteTransition(Transition{
		Circuit: c.name, From: e.OldState.String(), To: e.NewState.String(),
		Reason: c.reason, At: at, Forced: c.forcing,
	})
}

// noteTransition queues t for logging and observers, and keeps it.
// Requires mu.
func (c *Circuit) noteTransition(t Transition) {
	t.Stats = c.counts.snapshot()
	c.pending = append(c.pending, t)
	c.recent = append(c.recent, t)
	if len(c.recent) > maxRecentTransitions {
		c.recent = c.recent[len(c.recent)-maxRecentTransitions:]
	}
	typ := EventTransition
	if t.Forced {
		typ = EventForced
	}
	c.events.add(Event{At: t.At, Type: typ, From: t.From, To: t.To, Reason: t.Reason})
}

func (c *Circuit) takePendingLocked() []Transition {
	p := c.pending
	c.pending = nil
	return p
}

// flush logs and publishes transitions outside the lock, so that observers
// may read the circuit.
func (c *Circuit) flush(ts []Transition) {
	if len(ts) == 0 {
		return
	}
	c.mu.Lock()
	logChanges := c.logChanges
	c.mu.Unlock()
	for _, t := range ts {
		if logChanges {
			level := slog.LevelInfo
			if t.To == StateOpen {
				level = slog.LevelWarn
			}
			c.log.Log(context.Background(), level, "circuit state changed",
				slog.String("circuit", t.Circuit), slog.String("from", t.From),
				slog.String("to", t.To), slog.String("reason", t.Reason), slog.Bool("forced", t.Forced))
		}
		if c.observe != nil {
			c.observe(t)
		}
	}
}

// Status reports the circuit's effective state, making a due lazy
// open→half-open move visible (and logged) first.
func (c *Circuit) Status() CircuitStatus {
	c.mu.Lock()
	c.syncLocked()
	st := CircuitStatus{
		Name:              c.name,
		State:             c.stateLocked(),
		Forced:            c.forced,
		Config:            c.cfg,
		Model:             c.model,
		Target:            c.target,
		Stats:             c.counts.snapshot(),
		RecentTransitions: append([]Transition(nil), c.recent...),
		InFlight:          c.inFlight,
	}
	if c.enabled && !c.forced {
		st.RemainingDelay = c.cb.RemainingDelay()
	}
	pending := c.takePendingLocked()
	c.mu.Unlock()
	c.flush(pending)
	return st
}

// Events returns the circuit's last events, oldest first.
func (c *Circuit) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events.list()
}
