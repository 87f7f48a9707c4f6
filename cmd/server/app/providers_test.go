package app

import (
	"testing"
	"time"

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

// The streaming keys reach the circuit's settings: first_token_timeout 0
// means the circuit's timeout, slow calls are off by default.
func TestSettingsOfShouldMapTheStreamingKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		first      config.Seconds
		slow       config.Seconds
		rate       float64
		wantFirst  time.Duration
		wantSlow   time.Duration
		wantRateOf float64
	}{
		{"defaults", 0, 0, 0, 30 * time.Second, 0, 0},
		{"set", 2.5, 1.25, 40, 2500 * time.Millisecond, 1250 * time.Millisecond, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc := config.Default().CircuitBreaker.Circuits[config.CircuitDataAnalyst] // timeout 30
			cc.FirstTokenTimeout, cc.SlowCallThreshold, cc.SlowCallRateThreshold = tc.first, tc.slow, tc.rate
			s := settingsOf(cc)
			if s.FirstTokenTimeout != tc.wantFirst || s.SlowCallThreshold != tc.wantSlow || s.SlowCallRateThreshold != tc.wantRateOf {
				t.Fatalf("settings: first token %v, slow %v, rate %v; want %v, %v, %v",
					s.FirstTokenTimeout, s.SlowCallThreshold, s.SlowCallRateThreshold, tc.wantFirst, tc.wantSlow, tc.wantRateOf)
			}
		})
	}
}
