package config_test

import (
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
	if cfg.CircuitBreaker.Circuits[config.CircuitVisualization].Timeout != 20 || cfg.LLM.BaseURL != "http://localhost:11434/v1" || cfg.Server.Addr != ":8080" {
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
	cfg.LLM.Models[config.CircuitCoTEngine] = " "
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
	want := config.Circuit{FailureThreshold: 5, RecoveryTimeout: 45, SuccessThreshold: 2, Timeout: 45}
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
