package circuit

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nexus/nexus/internal/infra/llm"
)

// errHedgeLost is the cause given to the attempt that lost a hedge race.
var errHedgeLost = errors.New("another target answered first (hedge)")

// Hedge outcomes as metrics label them.
const (
	HedgeWon  = "won"
	HedgeLost = "lost"
)

// hedged sends the first request to the first target and, if it is still
// unanswered after hedge_after and the budget allows, one more to the next
// target that admits a call. The first success wins; the other request is
// cancelled and recorded as neutral. When both fail, the first target's
// result is returned, so that the walk retries or fails over as usual.
func (w *walk) hedged(t *target, p permit) attemptResult {
	results := make(chan attemptResult, 2)
	ctx0, cancel0 := context.WithCancelCause(w.ctx)
	defer cancel0(nil)
	// launch runs one attempt on its own goroutine. A panic there (a
	// client bug) is carried back and raised again on the caller's
	// goroutine, once both attempts are done, where the server's recovery
	// sees it instead of the process dying.
	launch := func(ctx context.Context, i int, tg *target, pm permit) {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					results <- attemptResult{idx: i, panicked: r, err: &LLMError{Circuit: w.c.name, Kind: llm.KindUnavailable}}
				}
			}()
			results <- w.attempt(ctx, i, tg, pm, attemptOpts{hedged: true})
		}()
	}
	launch(ctx0, 0, t, p)

	timer := time.NewTimer(w.s.HedgeAfter)
	select {
	case r := <-results:
		timer.Stop()
		return repanic(r)
	case <-timer.C:
	}
	j, pj, ok := w.hedgeTarget()
	if !ok {
		return repanic(<-results)
	}
	ctx1, cancel1 := context.WithCancelCause(w.ctx)
	defer cancel1(nil)
	launch(ctx1, j, w.targets[j], pj)

	first := <-results
	if first.panicked != nil {
		// Do not wait out the other request: cancel it, then raise.
		cancel0(errHedgeLost)
		cancel1(errHedgeLost)
		<-results
		repanic(first)
	}
	if first.err == nil {
		loser := cancel1
		if first.idx == j {
			loser = cancel0
		}
		loser(errHedgeLost)
		second := <-results // wait for the loser, so that nothing is left in flight
		repanic(second)
		w.c.hedged(first.idx == j)
		return first
	}
	second := <-results
	repanic(first)
	repanic(second)
	if second.err == nil {
		w.c.hedged(second.idx == j)
		return second
	}
	w.c.hedged(false)
	if first.idx == 0 {
		return first
	}
	return second
}

// repanic raises again, on the caller's goroutine, a panic an attempt's
// goroutine caught.
func repanic(r attemptResult) attemptResult {
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r
}

// hedgeTarget admits a call on the first target after the first that
// takes one, if the hedge budget allows.
func (w *walk) hedgeTarget() (int, permit, bool) {
	c := w.c
	// The budget is checked and spent in one step, so that calls reaching
	// hedge_after together cannot all pass the check; it is refunded when
	// no target takes the hedge.
	c.mu.Lock()
	now := c.now()
	allowed := c.hedging.allow(now, w.s.HedgeBudgetPercent)
	if allowed {
		c.hedging.spend(now, 1)
	}
	c.mu.Unlock()
	if !allowed {
		return 0, permit{}, false
	}
	for j := 1; j < len(w.targets); j++ {
		c.mu.Lock()
		if ok, _ := w.targets[j].admitsLocked(c.now()); !ok {
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if p, ref := c.admit(w.targets[j], false); ref == nil {
			return j, p, true
		}
	}
	c.mu.Lock()
	c.hedging.spend(now, -1)
	c.mu.Unlock()
	return 0, permit{}, false
}

func (c *Circuit) hedged(won bool) {
	if c.hooks.OnHedge != nil {
		outcome := HedgeLost
		if won {
			outcome = HedgeWon
		}
		c.hooks.OnHedge(c.name, outcome)
	}
}

// budget counts a circuit's calls and hedges over the last minute, in
// one-second buckets: hedges may be at most percent of the calls.
type budget struct {
	buckets [60]struct {
		sec           int64
		calls, hedges int64
	}
}

func (b *budget) bucket(now time.Time) *struct {
	sec           int64
	calls, hedges int64
} {
	sec := now.Unix()
	x := &b.buckets[sec%int64(len(b.buckets))]
	if x.sec != sec {
		x.sec, x.calls, x.hedges = sec, 0, 0
	}
	return x
}

func (b *budget) call(now time.Time)           { b.bucket(now).calls++ }
func (b *budget) spend(now time.Time, n int64) { b.bucket(now).hedges += n }

func (b *budget) allow(now time.Time, percent float64) bool {
	sec := now.Unix()
	var calls, hedges int64
	for _, x := range b.buckets {
		if sec-x.sec < int64(len(b.buckets)) && x.sec <= sec {
			calls += x.calls
			hedges += x.hedges
		}
	}
	return float64(hedges+1)*100 <= percent*float64(calls)
}

// jitter is a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}
