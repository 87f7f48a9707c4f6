package config_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
)

func TestParseShouldOverlayDefaultsAndAcceptFractionalSeconds(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"circuit_breaker":{"circuits":{"data_analyst":
		{"failure_threshold":1,"recovery_timeout":0.2,"success_threshold":1,"timeout":0.25}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	da := cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
	if da.RecoveryTimeout.Duration() != 200*time.Millisecond || da.Timeout.Duration() != 250*time.Millisecond {
		t.Fatalf("durations: %+v", da)
	}
	if cfg.CircuitBreaker.Circuits[config.CircuitVisualization].Timeout != 20 || cfg.LLM.BaseURL != "http://localhost:11434/v1" || cfg.Server.Addr != "127.0.0.1:8080" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestParseShouldReportEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte(`{"llm":{"base_url":"","modle":"x"},"server":{"max_body_bytes":0}}`))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"llm.modle: unknown key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	cfg := config.Default()
	cfg.LLM.BaseURL = ""
	cfg.Server.MaxBodyBytes = 0
	cfg.LLM.Models[config.CircuitCoTEngine] = config.Single(" ")
	cg := cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
	cg.MaxConcurrent = -1
	cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = cg
	cfg.Server.RequestTimeoutSeconds = -1
	cfg.Datasets.MemoryLimitMB = 8
	cfg.Datasets.MaxOpenDatasets = 0
	err = cfg.Validate()
	for _, want := range []string{"llm.base_url: must not be empty", "server.max_body_bytes: must be >= 1, got 0", "llm.models.cot_engine: a model is required",
		"datasets.memory_limit_mb: must be >= 64, got 8", "server.request_timeout_seconds: must be between 0 (no limit) and 86400 seconds, got -1", "circuit_breaker.circuits.code_generator.max_concurrent: must be >= 0 (0: no limit), got -1", "datasets.max_open_datasets: must be >= 1, got 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestParseShouldMergeAPartialCircuitOverItsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"circuit_breaker":{"circuits":{"code_generator":{"failure_threshold":5}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
	want := config.Circuit{FailureThreshold: 5, RecoveryTimeout: 45, SuccessThreshold: 2, Timeout: 45,
		MaxAttempts: 1, RetryBackoff: 0.5, MaxRetryBackoff: 8, MaxRetryAfter: 30, RecoveryBackoffMultiplier: 1,
		MaxRecoveryTimeout: 600, FailureRateWindow: 60, MinimumCalls: 10, HedgeBudgetPercent: 10}
	if got != want || len(cfg.CircuitBreaker.Circuits) != 4 {
		t.Fatalf("code_generator = %+v, want %+v (circuits: %d)", got, want, len(cfg.CircuitBreaker.Circuits))
	}
	if config.Default().CircuitBreaker.Circuits[config.CircuitCodeGenerator].FailureThreshold != 2 {
		t.Fatal("Parse mutated the defaults")
	}
}

func TestValidateShouldRequireEveryCircuit(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	delete(cfg.CircuitBreaker.Circuits, config.CircuitVisualization)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "circuit_breaker.circuits.visualization: required circuit is missing") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateShouldBoundDurations(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = config.Circuit{FailureThreshold: 1, SuccessThreshold: 1, RecoveryTimeout: 1e12, Timeout: 1e-12}
	err := cfg.Validate()
	for _, want := range []string{"data_analyst.timeout: must be between 0.001 and 86400 seconds", "data_analyst.recovery_timeout: must be between 0.001 and 86400 seconds"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestParseShouldBoundTheRetryRecoveryAndHedgingSettings(t *testing.T) {
	t.Parallel()
	const p = "circuit_breaker.circuits.data_analyst."
	cases := []struct {
		name, circuit string // circuit: the data_analyst object's keys
		want          string // "" when the file is valid
	}{
		{"defaults kept", `"max_concurrent":0`, ""},
		{"max_attempts -1", `"max_attempts":-1`, p + "max_attempts: must be between 1 (no retry) and 10, got -1"},
		{"max_attempts 11", `"max_attempts":11`, p + "max_attempts: must be between 1 (no retry) and 10, got 11"},
		{"max_attempts 10", `"max_attempts":10`, ""},
		{"retry_backoff negative", `"retry_backoff":-1`, p + "retry_backoff: must be between 0.001 and 86400 seconds, got -1"},
		{"max_retry_backoff too big", `"max_retry_backoff":86401`, p + "max_retry_backoff: must be between 0.001 and 86400 seconds, got 86401"},
		{"max_retry_backoff below retry_backoff", `"retry_backoff":2,"max_retry_backoff":1`, p + "max_retry_backoff: must be >= retry_backoff (2 seconds), got 1"},
		{"max_retry_backoff equal", `"retry_backoff":2,"max_retry_backoff":2`, ""},
		{"max_retry_after negative", `"max_retry_after":-1`, p + "max_retry_after: must be between 0 (never wait) and 86400 seconds, got -1"},
		{"max_retry_after 0", `"max_retry_after":0`, ""},
		{"multiplier below 1", `"recovery_backoff_multiplier":0.5`, p + "recovery_backoff_multiplier: must be between 1 and 10, got 0.5"},
		{"multiplier above 10", `"recovery_backoff_multiplier":10.5`, p + "recovery_backoff_multiplier: must be between 1 and 10, got 10.5"},
		{"multiplier 2", `"recovery_backoff_multiplier":2`, ""},
		{"max_recovery_timeout negative", `"max_recovery_timeout":-5`, p + "max_recovery_timeout: must be between 0.001 and 86400 seconds, got -5"},
		{"failure_rate_threshold negative", `"failure_rate_threshold":-1`, p + "failure_rate_threshold: must be between 0 (off) and 100 percent, got -1"},
		{"failure_rate_threshold over 100", `"failure_rate_threshold":100.5`, p + "failure_rate_threshold: must be between 0 (off) and 100 percent, got 100.5"},
		{"failure_rate_threshold 50", `"failure_rate_threshold":50`, ""},
		{"failure_rate_window 0.5", `"failure_rate_window":0.5`, p + "failure_rate_window: must be between 1 and 3600 seconds, got 0.5"},
		{"failure_rate_window 3601", `"failure_rate_window":3601`, p + "failure_rate_window: must be between 1 and 3600 seconds, got 3601"},
		{"minimum_calls negative", `"minimum_calls":-1`, p + "minimum_calls: must be >= 1, got -1"},
		{"hedge_after negative", `"hedge_after":-0.5`, p + "hedge_after: must be 0 (off) or between 0.001 and 86400 seconds, got -0.5"},
		{"hedge_after too small", `"hedge_after":0.0001`, p + "hedge_after: must be 0 (off) or between 0.001 and 86400 seconds, got 0.0001"},
		{"hedge_after 2", `"hedge_after":2`, ""},
		{"hedge_budget_percent over 100", `"hedge_budget_percent":101`, p + "hedge_budget_percent: must be between 0 and 100 percent, got 101"},
		{"recovery_probe true", `"recovery_probe":true`, ""},
		{"recovery_probe wrong type", `"recovery_probe":"yes"`, p + "recovery_probe: must be bool, got string"},
		// data_analyst's timeout is 30 s.
		{"first_token_timeout 0 (the timeout)", `"first_token_timeout":0`, ""},
		{"first_token_timeout 5", `"first_token_timeout":5`, ""},
		{"first_token_timeout equal to timeout", `"first_token_timeout":30`, ""},
		{"first_token_timeout over timeout", `"first_token_timeout":31`, p + "first_token_timeout: must be <= timeout (30 seconds), got 31"},
		{"first_token_timeout over a lowered timeout", `"timeout":2,"first_token_timeout":3`, p + "first_token_timeout: must be <= timeout (2 seconds), got 3"},
		{"first_token_timeout negative", `"first_token_timeout":-1`, p + "first_token_timeout: must be 0 (the circuit's timeout) or between 0.001 and 86400 seconds, got -1"},
		{"first_token_timeout too small", `"first_token_timeout":0.0001`, p + "first_token_timeout: must be 0 (the circuit's timeout) or between 0.001 and 86400 seconds, got 0.0001"},
		{"first_token_timeout wrong type", `"first_token_timeout":"5"`, p + "first_token_timeout: must be config.Seconds, got string"},
		{"slow_call_threshold 2", `"slow_call_threshold":2`, ""},
		{"slow_call_threshold negative", `"slow_call_threshold":-2`, p + "slow_call_threshold: must be 0 (off) or between 0.001 and 86400 seconds, got -2"},
		{"slow_call_threshold too big", `"slow_call_threshold":86401`, p + "slow_call_threshold: must be 0 (off) or between 0.001 and 86400 seconds, got 86401"},
		{"slow_call_rate_threshold with a threshold", `"slow_call_threshold":2,"slow_call_rate_threshold":50`, ""},
		{"slow_call_rate_threshold 100", `"slow_call_threshold":2,"slow_call_rate_threshold":100`, ""},
		{"slow_call_rate_threshold without a threshold", `"slow_call_rate_threshold":50`,
			p + "slow_call_rate_threshold: must be 0 (off) while slow_call_threshold is 0 (set slow_call_threshold to what counts as slow), got 50"},
		{"slow_call_rate_threshold negative", `"slow_call_threshold":2,"slow_call_rate_threshold":-1`, p + "slow_call_rate_threshold: must be between 0 (off) and 100 percent, got -1"},
		{"slow_call_rate_threshold over 100", `"slow_call_threshold":2,"slow_call_rate_threshold":100.5`, p + "slow_call_rate_threshold: must be between 0 (off) and 100 percent, got 100.5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(`{"circuit_breaker":{"circuits":{"data_analyst":{` + tc.circuit + `}}}}`))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error lacks %q: %v", tc.want, err)
			}
		})
	}
}

// JSON cannot carry NaN, but a Config built in code can: every float bound
// must reject it.
func TestValidateShouldRejectNaNInEveryFloatSetting(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	nan := math.NaN()
	cc := cfg.CircuitBreaker.Circuits[config.CircuitVisualization]
	cc.RetryBackoff = config.Seconds(nan)
	cc.MaxRetryBackoff = config.Seconds(nan)
	cc.MaxRetryAfter = config.Seconds(nan)
	cc.RecoveryBackoffMultiplier = nan
	cc.MaxRecoveryTimeout = config.Seconds(nan)
	cc.FailureRateThreshold = nan
	cc.FailureRateWindow = config.Seconds(nan)
	cc.HedgeAfter = config.Seconds(nan)
	cc.HedgeBudgetPercent = nan
	cc.FirstTokenTimeout = config.Seconds(nan)
	cc.SlowCallThreshold = config.Seconds(nan)
	cc.SlowCallRateThreshold = nan
	cfg.CircuitBreaker.Circuits[config.CircuitVisualization] = cc
	cfg.LLM.ProbeInterval = config.Seconds(nan)
	cfg.Server.SSEHeartbeatSeconds = config.Seconds(nan)
	err := cfg.Validate()
	for _, want := range []string{"llm.probe_interval: must be 0 (off) or between 0.05 and 86400 seconds, got NaN",
		"server.sse_heartbeat_seconds: must be between 0.05 and 300 seconds, got NaN"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	const p = "circuit_breaker.circuits.visualization."
	for _, key := range []string{"retry_backoff", "max_retry_backoff", "max_retry_after", "recovery_backoff_multiplier",
		"max_recovery_timeout", "failure_rate_threshold", "failure_rate_window", "hedge_after", "hedge_budget_percent",
		"first_token_timeout", "slow_call_threshold", "slow_call_rate_threshold"} {
		if want := p + key + ": must be"; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "got NaN") {
			t.Errorf("error lacks %q ... got NaN: %v", want, err)
		}
	}
}

// The shipped file spells out every default: it parses and equals Default().
func TestShippedConfigShouldEqualDefault(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Base(config.DefaultPath)) // tests run in config/
	if err != nil {
		t.Fatal(err)
	}
	if want := config.Default(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("shipped config differs from Default():\n got %+v\nwant %+v", cfg, want)
	}
	// And it spells out every key, no more: its JSON is Default()'s.
	data, err := os.ReadFile(filepath.Base(config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	var file, def any
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	data, err = json.Marshal(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &def); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(file, def) {
		t.Fatalf("shipped file's JSON differs from Default()'s:\n file %v\n def  %s", file, data)
	}
}

func TestParseShouldCheckProvidersAndProbeInterval(t *testing.T) {
	t.Parallel()
	const backup = `"backup":{"base_url":"https://backup.example/v1","api_key_env":"BACKUP_KEY"}`
	cases := []struct {
		name, llm string // llm: the llm object's keys
		want      []string
	}{
		{"one provider", `"providers":{` + backup + `}`, nil},
		{"probes off", `"probe_interval":0`, nil},
		{"probe_interval smallest", `"probe_interval":0.05`, nil},
		{"probe_interval too small", `"probe_interval":0.01`,
			[]string{"llm.probe_interval: must be 0 (off) or between 0.05 and 86400 seconds, got 0.01"}},
		{"probe_interval negative", `"probe_interval":-1`,
			[]string{"llm.probe_interval: must be 0 (off) or between 0.05 and 86400 seconds, got -1"}},
		{"probe_interval too big", `"probe_interval":86401`,
			[]string{"llm.probe_interval: must be 0 (off) or between 0.05 and 86400 seconds, got 86401"}},
		{"default declared", `"providers":{"default":{"base_url":"http://x/v1","api_key_env":"K"}}`,
			[]string{"llm.providers.default: not allowed: default is defined by llm.base_url and llm.api_key_env"}},
		{"bad names", `"providers":{"Backup":{"base_url":"http://x/v1","api_key_env":"K"},"9x":{"base_url":"http://x/v1","api_key_env":"K"},"a.b":{"base_url":"http://x/v1","api_key_env":"K"},"abcdefghijklmnopqrstuvwxyz0123456":{"base_url":"http://x/v1","api_key_env":"K"}}`,
			[]string{"llm.providers.Backup: a provider name must match ^[a-z][a-z0-9_-]{0,31}$",
				"llm.providers.9x: a provider name must match", "llm.providers.a.b: a provider name must match",
				"llm.providers.abcdefghijklmnopqrstuvwxyz0123456: a provider name must match"}},
		{"longest name", `"providers":{"abcdefghijklmnopqrstuvwxyz012345":{"base_url":"http://x/v1","api_key_env":"K"},"b_-9":{"base_url":"http://x/v1","api_key_env":"K"}}`, nil},
		{"missing fields", `"providers":{"backup":{}}`,
			[]string{"llm.providers.backup.base_url: must not be empty", "llm.providers.backup.api_key_env: must name an environment variable"}},
		{"bad fields", `"providers":{"backup":{"base_url":"ftp://x","api_key_env":"K","max_idle_conns_per_host":-1}}`,
			[]string{`llm.providers.backup.base_url: must start with http:// or https://, got "ftp://x"`,
				"llm.providers.backup.max_idle_conns_per_host: must be >= 0 (0: llm.max_idle_conns_per_host), got -1"}},
		{"unknown key", `"providers":{"backup":{"base_url":"http://x/v1","api_key_env":"K","api_key":"sk"}}`,
			[]string{"llm.providers.backup.api_key: unknown key (known keys: api_key_env, base_url, max_idle_conns_per_host)"}},
		{"wrong field type", `"providers":{"backup":{"base_url":"http://x/v1","api_key_env":"K","max_idle_conns_per_host":"8"}}`,
			[]string{"llm.providers.backup.max_idle_conns_per_host: must be int, got string"}},
		{"wrong provider type", `"providers":{"backup":"http://x/v1"}`,
			[]string{"llm.providers.backup: must be an object, got string"}},
		{"wrong providers type", `"providers":[]`, []string{"llm.providers: must be an object"}},
		{"wrong type beside providers", `"providers":{` + backup + `},"max_idle_conns_per_host":"x"`,
			[]string{"llm.max_idle_conns_per_host: must be int, got string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(`{"llm":{` + tc.llm + `}}`))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}
}

func TestParseShouldRejectAnLLMThatIsNotAnObject(t *testing.T) {
	t.Parallel()
	if _, err := config.Parse([]byte(`{"llm":5}`)); err == nil || !strings.Contains(err.Error(), "llm: must be an object") {
		t.Fatalf("err = %v", err)
	}
	cfg, err := config.Parse([]byte(`{"llm":null}`))
	if err != nil || !reflect.DeepEqual(cfg, config.Default()) {
		t.Fatalf("llm null: err = %v, cfg = %+v", err, cfg)
	}
}

func TestResolvedProvidersShouldIncludeDefaultAndFillConnections(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"llm":{"base_url":"http://primary/v1","max_idle_conns_per_host":16,"providers":{
		"zeta":{"base_url":"https://z/v1","api_key_env":"Z_KEY","max_idle_conns_per_host":4},
		"backup":{"base_url":"https://b/v1","api_key_env":"B_KEY"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]config.Provider{
		config.DefaultProvider: {BaseURL: "http://primary/v1", APIKeyEnv: "LLM_API_KEY", MaxIdleConnsPerHost: 16},
		"backup":               {BaseURL: "https://b/v1", APIKeyEnv: "B_KEY", MaxIdleConnsPerHost: 16},
		"zeta":                 {BaseURL: "https://z/v1", APIKeyEnv: "Z_KEY", MaxIdleConnsPerHost: 4},
	}
	if got := cfg.LLM.ResolvedProviders(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ResolvedProviders = %+v, want %+v", got, want)
	}
	if got := cfg.LLM.ProviderNames(); !reflect.DeepEqual(got, []string{"default", "backup", "zeta"}) {
		t.Fatalf("ProviderNames = %v", got)
	}
	if cfg.LLM.Providers["backup"].MaxIdleConnsPerHost != 0 {
		t.Fatal("ResolvedProviders changed the configuration")
	}
	def := config.Default().LLM
	if got := def.ResolvedProviders(); len(got) != 1 || got[config.DefaultProvider] != (config.Provider{BaseURL: def.BaseURL, APIKeyEnv: def.APIKeyEnv, MaxIdleConnsPerHost: 64}) {
		t.Fatalf("default ResolvedProviders = %+v", got)
	}
	if got := def.ProviderNames(); !reflect.DeepEqual(got, []string{"default"}) {
		t.Fatalf("default ProviderNames = %v", got)
	}
}

func TestParseShouldAcceptAModelNameOrAListOfTargets(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`{"llm":{
		"providers":{"backup":{"base_url":"https://b/v1","api_key_env":"B_KEY"}},
		"models":{
			"data_analyst":[{"provider":"default","model":"llama3.1"},{"provider":"backup","model":"gpt-4o-mini"},{"provider":"backup","model":"llama3.1"}],
			"cot_engine":"qwen2.5",
			"visualization":[{"provider":"backup","model":"gpt-4o"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]config.Targets{
		config.CircuitDataAnalyst: {{Provider: "default", Model: "llama3.1"}, {Provider: "backup", Model: "gpt-4o-mini"}, {Provider: "backup", Model: "llama3.1"}},
		// Not in the file: the default stays.
		config.CircuitCodeGenerator: config.Single("llama3.1"),
		config.CircuitCoTEngine:     {{Provider: config.DefaultProvider, Model: "qwen2.5"}},
		config.CircuitVisualization: {{Provider: "backup", Model: "gpt-4o"}},
	}
	if !reflect.DeepEqual(cfg.LLM.Models, want) {
		t.Fatalf("models = %+v, want %+v", cfg.LLM.Models, want)
	}
	if got := cfg.LLM.First(config.CircuitDataAnalyst); got.String() != "default/llama3.1" {
		t.Fatalf("First = %v", got)
	}
	if got := cfg.LLM.First("nope"); got != (config.Target{}) {
		t.Fatalf("First of an unknown circuit = %v", got)
	}
	if config.Default().LLM.Models[config.CircuitCoTEngine][0].Model != "llama3.1" {
		t.Fatal("Parse mutated the defaults")
	}
}

func TestTargetsShouldMarshalAsTheFileSpellsThem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		targets config.Targets
		want    string
	}{
		{config.Single("llama3.1"), `"llama3.1"`},
		{config.Targets{{Provider: "backup", Model: "m"}}, `[{"provider":"backup","model":"m"}]`},
		{config.Targets{{Provider: "default", Model: "a"}, {Provider: "backup", Model: "b"}}, `[{"provider":"default","model":"a"},{"provider":"backup","model":"b"}]`},
		{nil, `null`},
	}
	for _, tc := range cases {
		data, err := json.Marshal(tc.targets)
		if err != nil || string(data) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.targets, data, err, tc.want)
			continue
		}
		var back config.Targets
		if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, tc.targets) {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", data, back, err, tc.targets)
		}
	}
	var ts config.Targets
	if err := json.Unmarshal([]byte(`5`), &ts); err == nil || err.Error() != "must be a model name or an array of {provider, model} objects, got number" {
		t.Errorf("Unmarshal(5): %v", err)
	}
}

// A whole configuration survives Marshal then Parse, providers and lists of
// targets included.
func TestConfigShouldRoundTripThroughJSON(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.LLM.Providers["backup"] = config.Provider{BaseURL: "https://b/v1", APIKeyEnv: "B_KEY", MaxIdleConnsPerHost: 8}
	cfg.LLM.Models[config.CircuitDataAnalyst] = config.Targets{{Provider: "default", Model: "llama3.1"}, {Provider: "backup", Model: "gpt-4o-mini"}}
	cfg.LLM.Models[config.CircuitVisualization] = config.Targets{{Provider: "backup", Model: "gpt-4o"}}
	cc := cfg.CircuitBreaker.Circuits[config.CircuitCoTEngine]
	cc.MaxAttempts, cc.HedgeAfter, cc.FailureRateThreshold, cc.RecoveryProbe = 3, 1.5, 50, true
	cc.FirstTokenTimeout, cc.SlowCallThreshold, cc.SlowCallRateThreshold = 2.5, 1.25, 40
	cfg.CircuitBreaker.Circuits[config.CircuitCoTEngine] = cc
	cfg.Server.SSEHeartbeatSeconds = 0.5
	for _, c := range []config.Config{config.Default(), cfg} {
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := config.Parse(data)
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", back, c)
		}
	}
}

func TestParseShouldCheckEveryTarget(t *testing.T) {
	t.Parallel()
	const providers = `"providers":{"backup":{"base_url":"https://b/v1","api_key_env":"B_KEY"}}`
	cases := []struct {
		name, models string // models: the llm.models object's keys
		want         []string
	}{
		{"unknown provider", `"data_analyst":[{"provider":"default","model":"llama3.1"},{"provider":"bakup","model":"llama3.1"}]`,
			[]string{`llm.models.data_analyst[1].provider: unknown provider "bakup" (known: default, backup)`}},
		{"empty provider", `"code_generator":[{"model":"llama3.1"}]`,
			[]string{"llm.models.code_generator[0].provider: must name a provider (known: default, backup)"}},
		{"duplicate pair", `"data_analyst":[{"provider":"default","model":"llama3.1"},{"provider":"backup","model":"llama3.1"},{"provider":"default","model":"llama3.1"}]`,
			[]string{"llm.models.data_analyst[2]: duplicate target default/llama3.1"}},
		{"empty list", `"data_analyst":[]`, []string{"llm.models.data_analyst: must name at least one target"}},
		{"null list", `"data_analyst":null`, []string{"llm.models.data_analyst: must name at least one target"}},
		{"blank string", `"cot_engine":" "`, []string{"llm.models.cot_engine: a model is required for each circuit"}},
		{"blank model in a list", `"cot_engine":[{"provider":"backup","model":"m"},{"provider":"backup","model":"  "}]`,
			[]string{"llm.models.cot_engine[1].model: must not be blank"}},
		{"too many targets", `"visualization":[{"provider":"backup","model":"m1"},{"provider":"backup","model":"m2"},{"provider":"backup","model":"m3"},
			{"provider":"backup","model":"m4"},{"provider":"backup","model":"m5"},{"provider":"backup","model":"m6"},{"provider":"backup","model":"m7"},
			{"provider":"backup","model":"m8"},{"provider":"backup","model":"m9"}]`,
			[]string{"llm.models.visualization: at most 8 targets per circuit, got 9"}},
		{"unknown circuit", `"data_analyts":"llama3.1"`,
			[]string{"llm.models.data_analyts: unknown circuit (known: data_analyst, code_generator, cot_engine, visualization)"}},
		{"unknown keys in targets", `"data_analyst":[{"provider":"default","model":"llama3.1"},{"provider":"backup","modle":"x","weight":2}]`,
			[]string{"llm.models.data_analyst[1].modle: unknown key (known keys: model, provider)",
				"llm.models.data_analyst[1].weight: unknown key (known keys: model, provider)"}},
		{"wrong type of a model", `"data_analyst":[{"provider":"default","model":5}]`,
			[]string{"llm.models.data_analyst[0].model: must be string, got number"}},
		{"wrong type of a target", `"data_analyst":[{"provider":"default","model":"a"},"llama3.1"]`,
			[]string{"llm.models.data_analyst[1]: must be an object with provider and model, got string"}},
		{"wrong type of the targets", `"data_analyst":{"provider":"default","model":"a"}`,
			[]string{"llm.models.data_analyst: must be a model name or an array of {provider, model} objects, got object"}},
		{"wrong type of a string form", `"data_analyst":5`,
			[]string{"llm.models.data_analyst: must be a model name or an array of {provider, model} objects, got number"}},
		{"eight targets", `"visualization":[{"provider":"backup","model":"m1"},{"provider":"backup","model":"m2"},{"provider":"backup","model":"m3"},
			{"provider":"backup","model":"m4"},{"provider":"backup","model":"m5"},{"provider":"backup","model":"m6"},{"provider":"backup","model":"m7"},
			{"provider":"default","model":"m8"}]`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(`{"llm":{` + providers + `,"models":{` + tc.models + `}}}`))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}
	if _, err := config.Parse([]byte(`{"llm":{"models":[]}}`)); err == nil || !strings.Contains(err.Error(), "llm.models: must be an object") {
		t.Errorf("models as an array: %v", err)
	}
	if _, err := config.Parse([]byte(`{"llm":{"models":null}}`)); err == nil || !strings.Contains(err.Error(), "llm.models.visualization: a model is required for each circuit") {
		t.Errorf("models null: %v", err)
	}
}

func TestEffectiveShouldFillZerosWithDefaults(t *testing.T) {
	t.Parallel()
	// Given a circuit written with only the seed's four values
	cc := config.Circuit{FailureThreshold: 2, RecoveryTimeout: 900, SuccessThreshold: 1, Timeout: 5}
	// When its effective settings are taken
	got := cc.Effective()
	// Then the zeros are the documented defaults, and max_recovery_timeout
	// is raised to a longer recovery_timeout
	if got.MaxAttempts != 1 || got.RetryBackoff != 0.5 || got.MaxRetryBackoff != 8 || got.RecoveryBackoffMultiplier != 1 ||
		got.MaxRecoveryTimeout != 900 || got.FailureRateWindow != 60 || got.MinimumCalls != 10 || got.HedgeAfter != 0 ||
		got.FirstTokenTimeout != 5 || got.SlowCallThreshold != 0 || got.SlowCallRateThreshold != 0 {
		t.Fatalf("Effective() = %+v", got)
	}
	// And a first_token_timeout of its own is kept
	cc.FirstTokenTimeout = 1.5
	if got := cc.Effective().FirstTokenTimeout; got != 1.5 {
		t.Fatalf("Effective().FirstTokenTimeout = %v, want 1.5 as written", got)
	}
	if err := func() error {
		c := config.Default()
		c.CircuitBreaker.Circuits[config.CircuitCoTEngine] = cc
		return c.Validate()
	}(); err != nil {
		t.Fatalf("a circuit with zeros should validate: %v", err)
	}
}

func TestParseShouldBoundTheSSEHeartbeat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, server string // server: the server object's keys
		want         string // "" when the file is valid
	}{
		{"default", `"max_body_bytes":1024`, ""},
		{"smallest", `"sse_heartbeat_seconds":0.05`, ""},
		{"largest", `"sse_heartbeat_seconds":300`, ""},
		{"0 is not off", `"sse_heartbeat_seconds":0`, "server.sse_heartbeat_seconds: must be between 0.05 and 300 seconds, got 0"},
		{"too small", `"sse_heartbeat_seconds":0.01`, "server.sse_heartbeat_seconds: must be between 0.05 and 300 seconds, got 0.01"},
		{"too big", `"sse_heartbeat_seconds":301`, "server.sse_heartbeat_seconds: must be between 0.05 and 300 seconds, got 301"},
		{"negative", `"sse_heartbeat_seconds":-1`, "server.sse_heartbeat_seconds: must be between 0.05 and 300 seconds, got -1"},
		{"wrong type", `"sse_heartbeat_seconds":"15"`, "server.sse_heartbeat_seconds: must be config.Seconds, got string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse([]byte(`{"server":{` + tc.server + `}}`))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "default" && cfg.Server.SSEHeartbeatSeconds.Duration() != 15*time.Second {
					t.Fatalf("default sse_heartbeat_seconds = %v, want 15", cfg.Server.SSEHeartbeatSeconds)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error lacks %q: %v", tc.want, err)
			}
		})
	}
}
