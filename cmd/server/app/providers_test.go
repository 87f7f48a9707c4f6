package app

import (
	"testing"

	"github.com/nexus/nexus/config"
)

// A provider moved to another path of the same host is another upstream:
// its targets must not keep the old endpoint's breaker state, though both
// show the same scheme://host.
func TestATargetMovedToAnotherPathShouldBeANewTarget(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: "https://gw.example.com/openai/v1", APIKeyEnv: "K"}}
	cfg.LLM.Models[config.CircuitDataAnalyst] = config.Targets{{Provider: "default", Model: "m"}, {Provider: "backup", Model: "m"}}
	p := newProviders(func(string, config.Provider) string { return "k" })
	defer p.close()
	before := registryConfig(cfg, p.apply(cfg.LLM)).Circuits[0].Targets[1]
	cfg.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: "https://gw.example.com/groq/v1", APIKeyEnv: "K"}}
	after := registryConfig(cfg, p.apply(cfg.LLM)).Circuits[0].Targets[1]
	if before.URL != after.URL || before.URL != "https://gw.example.com" {
		t.Fatalf("shown URLs %q, %q: want scheme and host only", before.URL, after.URL)
	}
	if before.Endpoint == after.Endpoint {
		t.Fatalf("both endpoints are %q: the target would keep the old endpoint's state", before.Endpoint)
	}
}
