package circuit

import (
	"context"
	"fmt"
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

// probeRequest is the recovery probe: the smallest completion there is.
var probeRequest = llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: "ping"}}, MaxTokens: 1}

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
		p, ref := t.admitLocked(now, true)
		s, up := c.s, t.spec.LLM
		c.mu.Unlock()
		c.deliver()
		if ref != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.background.ctx, s.Timeout)
		start := time.Now()
		_, err := up.Chat(ctx, t.spec.Model, probeRequest)
		cancel()
		took := time.Since(start)
		outcome, kind := llm.Classify(c.background.ctx, err)
		if err != nil && outcome == llm.Failure && ctx.Err() != nil && c.background.ctx.Err() == nil {
			kind = llm.KindTimeout
		}
		c.emitCall(t.spec.Provider, t.spec.Model, callLabel(outcome, kind), took)
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
		if outcome != llm.Success {
			return
		}
	}
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
