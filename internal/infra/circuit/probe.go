package circuit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/nexus/nexus/internal/infra/llm"
)

// background runs the registry's recovery probes and stops them on Close.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// enter registers a probe about to run; false once the registry closed.
func (b *background) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

// stop refuses new probes from now on.
func (b *background) stop() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// stopped reports whether stop was called.
func (b *background) stopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// close cancels the probes in flight and waits for them.
func (b *background) close() {
	b.stop()
	b.cancel()
	b.wg.Wait()
}

// probeRequest is the recovery probe sent through a client that cannot
// Ping: the smallest completion there is.
var probeRequest = llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: "ping"}}, MaxTokens: 1}

// Pinger is a client that sends recovery probes itself (*llm.Client does:
// it knows which models take max_tokens and which max_completion_tokens).
type Pinger interface {
	Ping(ctx context.Context, model string) error
}

// ping sends one recovery probe to the target's model through up.
func ping(ctx context.Context, up Chatter, model string) error {
	if p, ok := up.(Pinger); ok {
		return p.Ping(ctx, model)
	}
	_, err := up.Chat(ctx, model, probeRequest)
	return err
}

// scheduleProbeLocked arms t's recovery probe to run when its open delay
// ends, if recovery_probe is on.
func (c *Circuit) scheduleProbeLocked(t *target, d time.Duration) {
	if !c.s.RecoveryProbe || !c.enabled || c.background == nil || c.background.stopped() {
		return
	}
	t.stopProbe()
	t.probe = time.AfterFunc(d, func() { c.runProbe(t) })
}

// runProbe spends half-open trials on 1-token requests that Nexus sends
// itself, one after another, until the target closes or reopens. Each
// counts like a user's trial. A neutral answer (the upstream refused the
// request itself) hands the slot back and tries again after the open
// delay. Probes never run for a target an operator holds open.
func (c *Circuit) runProbe(t *target) {
	if !c.background.enter() {
		return
	}
	defer c.background.wg.Done()
	for {
		c.mu.Lock()
		now := c.now()
		t.syncLocked(now)
		if !c.enabled || t.forced || t.cb.State() != circuitbreaker.HalfOpenState || !c.has(t) {
			c.mu.Unlock()
			c.deliver()
			return
		}
		if t.busyLocked() || t.trials >= c.s.SuccessThreshold {
			// The bulkhead is full (an operator may have lowered
			// max_concurrent), or trials are in flight: try again soon
			// rather than never. Not a refusal of anyone's call.
			c.scheduleProbeLocked(t, busyRetryAfter)
			c.mu.Unlock()
			c.deliver()
			return
		}
		p, ref := t.admitLocked(now, true)
		s, up := c.s, t.spec.LLM
		c.mu.Unlock()
		c.deliver()
		if ref != nil {
			return
		}
		outcome := c.probeOnce(t, p, up, s)
		if outcome != llm.Success {
			return
		}
	}
}

// probeOnce sends one probe under permit p and records it. A 400 or 422
// counts as a success: the upstream answered, so it is up (a provider may
// refuse a 1-token request and serve real ones). A panicking client ends
// the probe as neutral, logged, and reschedules it.
func (c *Circuit) probeOnce(t *target, p permit, up Chatter, s Settings) (outcome llm.Outcome) {
	recorded := false
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("recovery probe panicked", slog.String("circuit", c.name),
				slog.String("provider", t.spec.Provider), slog.String("model", t.spec.Model), slog.Any("panic", r))
			if !recorded {
				c.finish(t, p, llm.Neutral, "", nil)
			}
			c.mu.Lock()
			c.scheduleProbeLocked(t, t.delay)
			c.mu.Unlock()
			outcome = llm.Neutral
		}
	}()
	ctx, cancel := context.WithTimeout(c.background.ctx, s.Timeout)
	start := time.Now()
	err := ping(ctx, up, t.spec.Model)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	took := time.Since(start)
	outcome, kind := llm.Classify(c.background.ctx, err)
	switch {
	case outcome == llm.Neutral && kind == llm.KindRejected:
		outcome, kind, err = llm.Success, "", nil
	case outcome == llm.Failure && timedOut:
		kind = llm.KindTimeout
	}
	c.emitCall(t.spec.Provider, t.spec.Model, callLabel(outcome, kind), took)
	recorded = true
	c.finish(t, p, outcome, kind, err)
	c.mu.Lock()
	result := outcome.String()
	if err != nil {
		result += ": " + t.counts.lastError
	}
	c.events.add(Event{At: c.now(), Type: EventProbe, Provider: t.spec.Provider, Model: t.spec.Model,
		Reason: fmt.Sprintf("recovery probe (1-token request) %s", result)})
	if outcome == llm.Neutral && c.background.ctx.Err() == nil {
		c.scheduleProbeLocked(t, t.delay)
	}
	c.mu.Unlock()
	return outcome
}

// has reports whether t is still one of the circuit's targets (a reload
// may have dropped it). Requires mu.
func (c *Circuit) has(t *target) bool {
	for _, x := range c.targets {
		if x == t {
			return true
		}
	}
	return false
}
