package circuit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Circuit states as health reports them.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half-open"
	StateDisabled = "disabled"
)

// Transition is one change of a target's state.
type Transition struct {
	Circuit  string    `json:"circuit"`
	Provider string    `json:"provider"`
	Model    string    `json:"model"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// Forced is true for changes made by an operator.
	Forced bool `json:"forced"`
	// First is true when the target is its circuit's first: the one whose
	// state is the circuit's.
	First bool `json:"first"`
	// Stats are the target's statistics right after the change.
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

// CallEvent describes one attempt on one target (or one refusal), for
// metrics.
type CallEvent struct {
	Circuit  string
	Provider string
	// Model is the target's configured model, or "other" when a request
	// named another one (keeps metric labels bounded).
	Model    string
	Outcome  string
	Duration time.Duration
}

// Circuit guards every LLM call of one named agent step. It walks its
// ordered targets: a target that is open, out of trial slots, busy or
// cooling down is skipped without a request; a counted failure is retried
// on the same target (max_attempts, with backoff or the upstream's
// Retry-After), then fails over to the next; the first success answers.
//
// One mutex guards the circuit and all its targets. Transitions are queued
// under it and handed to observers, in order, by a single drainer.
//
// A Circuit is never replaced: a reload applies new settings and targets
// in place, so that the agents holding it see them at once.
type Circuit struct {
	name       string
	log        *slog.Logger
	redact     *redact.Redactor
	now        func() time.Time
	hooks      Hooks
	background *background

	mu         sync.Mutex
	s          Settings
	enabled    bool
	logChanges bool
	targets    []*target
	events     eventLog
	recent     []Transition
	hedging    budget
	ttft       ttftRing
	// pending transitions await delivery; delivering is true while one
	// goroutine drains them (see deliver).
	pending    []Transition
	delivering bool
}

const (
	maxEvents            = 100
	maxRecentTransitions = 5
)

// Name is the circuit's configured name.
func (c *Circuit) Name() string { return c.name }

// Model is the model of the circuit's first target, which a request's
// model field overrides.
func (c *Circuit) Model() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.targets[0].spec.Model
}

// Complete sends req through the circuit's targets and returns the first
// usable completion, with Provider, Attempts and Failover filled in. Every
// error is an *LLMError; when no target could answer it lists them all.
// A request's model overrides the first target's model only.
func (c *Circuit) Complete(ctx context.Context, req llm.ChatRequest) (llm.ChatResponse, error) {
	c.mu.Lock()
	w := &walk{c: c, ctx: ctx, req: req, s: c.s, targets: c.targets, prev: -1}
	hedge := c.s.HedgeAfter > 0 && len(c.targets) > 1
	if hedge {
		c.hedging.call(c.now())
	}
	c.mu.Unlock()
	return w.run(hedge)
}

// Stream is Complete with the reply streamed: onToken gets the reply's
// text, piece by piece, on the calling goroutine, as the answering target
// sends it. Until a piece with more than whitespace has been handed on,
// a failure is invisible: it is retried or failed over like any other, and
// nothing of the failed attempt reaches onToken. Each attempt must send
// its first token within first_token_timeout, or it is a counted timeout.
// Once text has been handed on, a failure ends the call: it is recorded
// once on its target, and the error is an *LLMError with Interrupted set,
// returned with a ChatResponse naming the target. A caller that leaves is
// neutral, as in Complete. Streamed calls are never hedged.
func (c *Circuit) Stream(ctx context.Context, req llm.ChatRequest, onToken func(string)) (llm.ChatResponse, error) {
	c.mu.Lock()
	w := &walk{c: c, ctx: ctx, req: req, s: c.s, targets: c.targets, prev: -1, onToken: onToken}
	c.mu.Unlock()
	return w.run(false)
}

// walk is one call's way through the targets.
type walk struct {
	c       *Circuit
	ctx     context.Context
	req     llm.ChatRequest
	s       Settings
	targets []*target

	// onToken, for a streamed call, gets the text as it comes; committed
	// turns true once some of it (more than whitespace) was handed on.
	// Both are used by one goroutine at a time: streamed calls are
	// never hedged.
	onToken   func(string)
	committed bool

	attempts int
	prev     int       // index of the last target that got a request
	last     *LLMError // the last counted failure
	refused  []*refusal
	lastRef  *refusal
}

// attemptResult is what one request to one target came to.
type attemptResult struct {
	idx     int
	resp    llm.ChatResponse
	err     *LLMError
	outcome llm.Outcome
	raw     error
	// panicked holds what a hedged attempt's goroutine recovered.
	panicked any
}

func (w *walk) run(hedge bool) (llm.ChatResponse, error) {
	for i, t := range w.targets {
		retrying := false
		for try := 1; ; try++ {
			if err := w.ctx.Err(); err != nil {
				return llm.ChatResponse{}, w.canceled(err)
			}
			p, ref := w.c.admit(t, false)
			if ref != nil {
				w.refused = append(w.refused, ref)
				w.lastRef = ref
				break
			}
			var r attemptResult
			if hedge && i == 0 && try == 1 {
				r = w.hedged(t, p)
			} else {
				// A retry is counted only once admitted: one that the
				// opened breaker refuses made no request.
				r = w.attempt(w.ctx, i, t, p, attemptOpts{retry: retrying})
			}
			if r.err == nil {
				return w.answer(r), nil
			}
			if w.committed {
				return w.interrupted(r)
			}
			if r.outcome == llm.Neutral {
				if llm.ContextTooLong(r.raw) && w.ctx.Err() == nil {
					w.last = r.err
					break // too long for this target; the next may take it
				}
				r.err.Attempts = w.attempts
				return llm.ChatResponse{}, r.err
			}
			w.last = r.err
			if r.idx != i || try >= w.s.MaxAttempts || !llm.Retryable(r.raw) {
				break
			}
			wait := backoff(w.s, try)
			if ra := llm.RetryAfter(r.raw); ra > 0 {
				if ra > w.s.MaxRetryAfter || !w.fits(ra) {
					break // not worth waiting for: fail over
				}
				wait = ra
			}
			retrying = true
			if err := sleep(w.ctx, wait); err != nil {
				return llm.ChatResponse{}, w.canceled(err)
			}
		}
	}
	return llm.ChatResponse{}, w.c.unavailable(w)
}

// interrupted ends a streamed call whose attempt failed after text had
// reached the caller: no retry and no failover, since the caller already
// holds part of this target's answer.
func (w *walk) interrupted(r attemptResult) (llm.ChatResponse, error) {
	t := w.targets[r.idx]
	model := r.resp.Model // as the upstream named it, when it did
	if model == "" {
		model = t.spec.Model
		if r.idx == 0 && w.req.Model != "" {
			model = w.req.Model
		}
	}
	resp := llm.ChatResponse{Model: model, Provider: t.spec.Provider, Attempts: w.attempts, Failover: r.idx > 0}
	e := *r.err
	e.Attempts = w.attempts
	if r.outcome != llm.Neutral {
		e.Interrupted = true
		if h := w.c.hooks.OnStreamInterrupted; h != nil {
			h(w.c.name, t.spec.Provider)
		}
	}
	return resp, &e
}

// fits reports whether a wait of d ends before the call's deadline.
func (w *walk) fits(d time.Duration) bool {
	deadline, ok := w.ctx.Deadline()
	return !ok || time.Until(deadline) > d
}

func (w *walk) answer(r attemptResult) llm.ChatResponse {
	resp := r.resp
	resp.Provider = w.targets[r.idx].spec.Provider
	resp.Attempts = w.attempts
	resp.Failover = r.idx > 0
	return resp
}

// canceled is the error of a walk whose caller left, or whose deadline
// passed, between attempts.
func (w *walk) canceled(err error) *LLMError {
	return &LLMError{Circuit: w.c.name, Kind: llm.KindCanceled, State: w.c.State(),
		Message: "the request ended before the LLM answered", Err: err, Attempts: w.attempts}
}

// attemptOpts say what kind of request an attempt is.
type attemptOpts struct {
	// hedged is true for both requests of a hedge: the one a winner
	// cancels is neutral, and neither is a failover.
	hedged bool
	// retry is true for a retry on the same target.
	retry bool
}

// attempt sends one request to targets[i] under permit p.
func (w *walk) attempt(ctx context.Context, i int, t *target, p permit, o attemptOpts) attemptResult {
	c := w.c
	finished := false
	defer func() {
		if !finished {
			// The client (or a hook) panicked: the attempt ends as
			// neutral, so that neither its bulkhead slot nor its trial
			// slot is lost; the panic goes on up.
			c.finish(t, p, llm.Neutral, "", nil)
		}
	}()
	model, label := t.spec.Model, t.spec.Model
	if i == 0 && w.req.Model != "" && w.req.Model != model {
		model, label = w.req.Model, "other"
	}
	c.mu.Lock() // a hedge's two attempts share the walk
	w.attempts++
	from := -1
	if !o.hedged {
		// A hedge is not a failover (the first target has not failed),
		// and it does not move the walk either.
		if i > 0 && i != w.prev {
			from = max(w.prev, 0)
		}
		w.prev = i
	}
	up := t.spec.LLM // a reload may swap in a new client for the provider
	c.mu.Unlock()
	if from >= 0 {
		c.failover(w.targets[from].spec.Provider, t.spec.Provider)
	}
	if o.retry {
		c.retry(t)
	}
	limit := callTimeout(w.s.Timeout)
	start := time.Now()
	firstToken := time.Duration(-1)
	resp, err := limit.get(ctx, func(ctx context.Context) (llm.ChatResponse, error) {
		if w.onToken != nil {
			return w.stream(ctx, up, model, t, label, &firstToken)
		}
		return up.Chat(ctx, model, w.req)
	})
	took := time.Since(start)
	if firstToken < 0 {
		firstToken = took // no token came, or the reply came whole
	}
	outcome, kind := llm.Classify(w.ctx, err)
	if err != nil && o.hedged && errors.Is(context.Cause(ctx), errHedgeLost) {
		outcome, kind = llm.Neutral, llm.KindCanceled
	}
	c.emitCall(t.spec.Provider, label, callLabel(outcome, kind), took)
	c.emitUsage(w.ctx, t.spec.Provider, label, resp.Usage)
	finished = true
	// Only a streamed attempt is judged slow: its first token is what
	// the threshold measures, and a circuit serves both kinds of call.
	slow := w.onToken != nil && w.s.SlowCallThreshold > 0 && firstToken > w.s.SlowCallThreshold
	lerr := c.finishSlow(t, p, outcome, kind, err, slow)
	return attemptResult{idx: i, resp: resp, err: lerr, outcome: outcome, raw: err}
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

// backoff is the wait before attempt try+1 on one target: exponential from
// retry_backoff, capped at max_retry_backoff, with "equal jitter" (half
// fixed, half random) so that callers that failed together spread out.
func backoff(s Settings, try int) time.Duration {
	d := s.RetryBackoff
	for i := 1; i < try && d < s.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, s.MaxRetryBackoff)
	return d/2 + jitter(d/2)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admit asks target t to admit a call, counting a refusal as a rejected
// call in metrics.
func (c *Circuit) admit(t *target, probe bool) (permit, *refusal) {
	c.mu.Lock()
	if !c.has(t) {
		// A reload removed it while this call was walking: no new
		// request goes to a target that is no longer configured.
		c.mu.Unlock()
		return permit{}, &refusal{kind: llm.KindCircuitOpen, err: ErrCircuitOpen, state: StateDisabled,
			message: fmt.Sprintf("target %s was removed by a config reload; no request was sent", t.id())}
	}
	p, ref := t.admitLocked(c.now(), probe)
	c.mu.Unlock()
	c.deliver()
	if ref != nil {
		c.emitCall(t.spec.Provider, t.spec.Model, CallRejected, 0)
	}
	return p, ref
}

// finish records an attempt's outcome on its target and, for an error,
// returns the *LLMError that describes it.
func (c *Circuit) finish(t *target, p permit, outcome llm.Outcome, kind llm.Kind, err error) *LLMError {
	return c.finishSlow(t, p, outcome, kind, err, false)
}

// finishSlow is finish for an attempt that may have been slow (see
// Settings.SlowCallThreshold).
func (c *Circuit) finishSlow(t *target, p permit, outcome llm.Outcome, kind llm.Kind, err error, slow bool) *LLMError {
	var msg string
	if err != nil {
		// The one place an LLM error becomes the text that is stored
		// and reported: redacted and bounded, however long the
		// upstream's message was.
		msg = c.redact.Scrub(llm.Describe(kind, err, c.settings().Timeout))
	}
	c.mu.Lock()
	now := c.now()
	t.finishLocked(p, outcome, kind, err, msg, now, slow)
	var out *LLMError
	if err != nil {
		retry := llm.RetryAfter(err)
		if c.enabled {
			// Read the clock again: a transition this call caused set the
			// open delay from its own, later reading.
			retry = max(retry, t.remainingLocked(c.now()))
		}
		out = &LLMError{
			Circuit: c.name, Kind: kind, State: c.targets[0].stateLocked(now), Status: llm.HTTPStatus(err),
			RetryAfter: retry, Message: msg, Err: err,
			Provider: t.spec.Provider, Model: t.spec.Model,
		}
	}
	c.mu.Unlock()
	c.deliver()
	return out
}

func (c *Circuit) settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// State is the circuit's state: its first target's.
func (c *Circuit) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.targets[0].stateLocked(c.now())
}

// unavailable is the error of a walk that found no target to answer. With
// one target it is exactly that target's error. With more it lists them
// all, and its Retry-After is the soonest moment any target admits calls
// again.
func (c *Circuit) unavailable(w *walk) *LLMError {
	c.mu.Lock()
	now := c.now()
	reports := c.reportsLocked(now)
	soonest := time.Duration(-1)
	for _, t := range c.targets {
		if ok, d := t.admitsLocked(now); ok {
			soonest = 0
		} else if soonest < 0 || d < soonest {
			soonest = d
		}
	}
	state := c.targets[0].stateLocked(now)
	single := len(w.targets) == 1
	c.mu.Unlock()
	var out *LLMError
	switch {
	case w.last != nil && !(w.last.Kind == llm.KindRejected && w.lastRef != nil):
		e := *w.last
		out = &e
	case w.lastRef != nil:
		r := w.lastRef
		kind, cause := r.kind, r.err
		for _, x := range w.refused {
			if x.kind != llm.KindCircuitBusy {
				// Any target open or cooling makes it an open refusal;
				// only an all-busy walk is a busy one.
				kind, cause = x.kind, x.err
			}
		}
		out = &LLMError{Circuit: c.name, Kind: kind, State: r.state, RetryAfter: r.retry, Message: r.message, Err: cause}
	default:
		out = &LLMError{Circuit: c.name, Kind: llm.KindUnavailable, State: state, Message: "no target could answer", Err: ErrCircuitOpen}
	}
	out.Attempts = w.attempts
	if single {
		return out
	}
	out.State = state
	out.Targets = reports
	if soonest >= 0 {
		out.RetryAfter = soonest
	}
	switch {
	case w.last == nil:
		out.Message = fmt.Sprintf("circuit %s: none of its %d targets admits calls now; no request was sent", c.name, len(reports))
	case w.last.Kind == llm.KindRejected:
		out.Message = fmt.Sprintf("circuit %s: the prompt is too long for %s/%s and no other target admits calls now", c.name, w.last.Provider, w.last.Model)
	default:
		out.Message = fmt.Sprintf("circuit %s: no target could answer; last: %s", c.name, w.last.Message)
	}
	return out
}

// reportsLocked describes every target for an error body.
func (c *Circuit) reportsLocked(now time.Time) []TargetReport {
	out := make([]TargetReport, 0, len(c.targets))
	for _, t := range c.targets {
		r := TargetReport{Provider: t.spec.Provider, Model: t.spec.Model, State: t.stateLocked(now)}
		if d := t.coolingLocked(now); d > 0 {
			until := t.coolUntil.UTC()
			r.CoolingDownUntil = &until
		}
		if t.counts.lastError != "" {
			e := t.counts.lastError
			r.LastError = &e
		}
		out = append(out, r)
	}
	return out
}

func (c *Circuit) emitCall(provider, model, outcome string, d time.Duration) {
	if c.hooks.OnCall != nil {
		c.hooks.OnCall(CallEvent{Circuit: c.name, Provider: provider, Model: model, Outcome: outcome, Duration: d})
	}
}

// emitUsage reports an attempt's tokens, if the upstream reported any.
func (c *Circuit) emitUsage(ctx context.Context, provider, model string, u llm.Usage) {
	if c.hooks.OnUsage != nil && u.Total() > 0 {
		c.hooks.OnUsage(ctx, UsageEvent{Circuit: c.name, Provider: provider, Model: model,
			PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens})
	}
}

func (c *Circuit) retry(t *target) {
	if c.hooks.OnRetry != nil {
		c.hooks.OnRetry(c.name, t.spec.Provider, t.spec.Model)
	}
}

func (c *Circuit) failover(from, to string) {
	if c.hooks.OnFailover != nil {
		c.hooks.OnFailover(c.name, from, to)
	}
}

// noteTransitionLocked queues t for logging and observers, and keeps it.
func (c *Circuit) noteTransitionLocked(tg *target, t Transition) {
	if !c.has(tg) {
		return // a call in flight on a target a reload removed
	}
	t.Stats = tg.counts.snapshot()
	t.First = tg == c.targets[0]
	c.pending = append(c.pending, t)
	keep := func(list []Transition) []Transition {
		list = append(list, t)
		if len(list) > maxRecentTransitions {
			list = list[len(list)-maxRecentTransitions:]
		}
		return list
	}
	tg.recent = keep(tg.recent)
	c.recent = keep(c.recent)
	typ := EventTransition
	if t.Forced {
		typ = EventForced
	}
	c.events.add(Event{At: t.At, Type: typ, From: t.From, To: t.To, Reason: t.Reason, Provider: t.Provider, Model: t.Model})
}

// deliver hands queued transitions to the log and observers outside the
// lock, in the order they happened. One goroutine at a time drains: whoever
// finds the queue non-empty and nobody delivering takes the job, and keeps
// draining until the queue is empty, so that a transition queued while
// another is being delivered is delivered after it, never before. (With
// delivery by every caller for itself, a forced close racing a failure
// that opens could deliver closed→open, then open→closed, leaving the last
// alert saying "closed" while the circuit is open.)
func (c *Circuit) deliver() {
	c.mu.Lock()
	if c.delivering || len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	c.delivering = true
	for len(c.pending) > 0 {
		batch := c.pending
		c.pending = nil
		logChanges := c.logChanges
		c.mu.Unlock()
		for _, t := range batch {
			c.publish(t, logChanges)
		}
		c.mu.Lock()
	}
	c.delivering = false
	c.mu.Unlock()
}

func (c *Circuit) publish(t Transition, logChanges bool) {
	defer func() {
		// An observer's panic must not leave delivering set forever.
		if r := recover(); r != nil {
			c.log.Error("transition observer panicked", slog.Any("panic", r))
		}
	}()
	if logChanges {
		level := slog.LevelInfo
		if t.To == StateOpen {
			level = slog.LevelWarn
		}
		c.log.Log(context.Background(), level, "circuit state changed",
			slog.String("circuit", t.Circuit), slog.String("provider", t.Provider), slog.String("model", t.Model),
			slog.String("from", t.From), slog.String("to", t.To), slog.String("reason", t.Reason), slog.Bool("forced", t.Forced))
	}
	if c.hooks.OnTransition != nil {
		c.hooks.OnTransition(t)
	}
}

// Events returns the circuit's last events, oldest first.
func (c *Circuit) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events.list()
}
