package circuit_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
)

// TestTransitionsShouldReachObserversInTheOrderTheyHappened races an
// operator's close against failures that open the circuit, many times. The
// observer is slow and uneven, as a webhook or a log under load is. Every
// delivered transition must start where the one before it ended, and the
// last one must name the state the circuit is in. Before transitions had a
// single drainer, each caller delivered its own after unlocking, so a
// closed→open could overtake the open→closed before it and leave the last
// alert saying "closed" while the circuit was open.
func TestTransitionsShouldReachObserversInTheOrderTheyHappened(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []circuit.Transition
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 3600, Timeout: 5}
	c := circuit.NewRegistry(specs(cfg, chatFunc(fail)), circuit.Options{Hooks: circuit.Hooks{OnTransition: func(tr circuit.Transition) {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		mu.Lock()
		seen = append(seen, tr)
		mu.Unlock()
	}}}).Circuit(config.CircuitDataAnalyst)

	for round := 0; round < 300; round++ {
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); _ = c.Close("race", circuit.All) }()
		go func() { defer wg.Done(); _ = call(c) }()
		go func() { defer wg.Done(); _ = c.Close("race", circuit.All) }()
		wg.Wait()
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no transition was delivered")
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].From != seen[i-1].To {
			t.Fatalf("transition %d went %s→%s right after %s→%s: delivered out of order", i, seen[i].From, seen[i].To, seen[i-1].From, seen[i-1].To)
		}
	}
	if last, now := seen[len(seen)-1].To, c.Status().State; last != now {
		t.Fatalf("last delivered transition ends in %s, but the circuit is %s", last, now)
	}
}
