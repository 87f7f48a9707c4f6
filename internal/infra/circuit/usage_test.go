package circuit_test

import (
	"context"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

type tenantKey struct{}

// The tokens of every attempt reach OnUsage with the call's own context,
// the failed attempt's too, and the answer carries its own usage.
func TestUsageShouldReachTheHookWithTheCallersContextForEveryAttempt(t *testing.T) {
	t.Parallel()
	// Given a circuit that retries once, whose upstream fails first and
	// reports usage both times
	cfg := config.Default()
	c := cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
	c.MaxAttempts, c.RetryBackoff, c.MaxRetryBackoff = 2, 0.001, 0.001
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	up, _ := numbered(func(n int) chatFunc {
		return func(context.Context, string, llm.ChatRequest) (llm.ChatResponse, error) {
			if n == 1 {
				return llm.ChatResponse{Usage: llm.Usage{PromptTokens: 7}}, &openai.APIError{HTTPStatusCode: 500, Message: "boom"}
			}
			return llm.ChatResponse{Content: "fine", Model: "m", Usage: llm.Usage{PromptTokens: 10, CompletionTokens: 5}}, nil
		}
	})
	var mu sync.Mutex
	var seen []circuit.UsageEvent
	var tenants []any
	reg := circuit.NewRegistry(specs(cfg, up), circuit.Options{Hooks: circuit.Hooks{OnUsage: func(ctx context.Context, e circuit.UsageEvent) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e)
		tenants = append(tenants, ctx.Value(tenantKey{}))
	}}})
	defer reg.Close()

	// When a caller whose context names a tenant calls it
	ctx := context.WithValue(context.Background(), tenantKey{}, "team-a")
	resp, err := reg.Circuit(config.CircuitDataAnalyst).Complete(ctx, llm.ChatRequest{})

	// Then both attempts' tokens were reported, under the tenant
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage != (llm.Usage{PromptTokens: 10, CompletionTokens: 5}) {
		t.Fatalf("answer's usage = %+v", resp.Usage)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].PromptTokens != 7 || seen[1].PromptTokens+seen[1].CompletionTokens != 15 {
		t.Fatalf("usage events = %+v", seen)
	}
	for i, e := range seen {
		if e.Circuit != config.CircuitDataAnalyst || e.Provider != config.DefaultProvider || e.Model != "llama3.1" || tenants[i] != "team-a" {
			t.Errorf("event %d = %+v, tenant %v", i, e, tenants[i])
		}
	}
}
