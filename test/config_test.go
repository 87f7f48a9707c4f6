package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/cmd/server/app"
	"github.com/nexus/nexus/config"
)

// runWithConfig runs the server with this config file content and returns
// the start-up error; a valid config must not get this far in these tests.
func runWithConfig(t *testing.T, content string, env map[string]string) error {
	t.Helper()
	path := writeFile(t, content)
	vars := map[string]string{"NEXUS_CONFIG": path, "NEXUS_ADDR": "127.0.0.1:0", "NEXUS_DATA_DIR": t.TempDir()}
	for k, v := range env {
		vars[k] = v
	}
	// The context is already cancelled: a config that wrongly passes
	// starts and stops at once instead of hanging the test.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	return app.Run(ctx, nil, func(k string) string { return vars[k] }, &out, &out, nil, nil)
}

func shippedConfig(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func circuitOf(m map[string]any, name string) map[string]any {
	return m["circuit_breaker"].(map[string]any)["circuits"].(map[string]any)[name].(map[string]any)
}

// Each invalid config stops start-up with an error naming the JSON path
// and the bad value.
func TestInvalidConfigShouldFailStartUpNamingThePath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		raw    string
		want   []string
		not    []string // must not appear (secrets)
	}{
		{name: "typo in a circuit key", mutate: func(m map[string]any) {
			c := circuitOf(m, "code_generator")
			c["failure_treshold"] = c["failure_threshold"]
			delete(c, "failure_threshold")
		}, want: []string{"circuit_breaker.circuits.code_generator.failure_treshold: unknown key"}},
		{name: "failure_threshold 0", mutate: func(m map[string]any) { circuitOf(m, "code_generator")["failure_threshold"] = 0 },
			want: []string{"circuit_breaker.circuits.code_generator.failure_threshold: must be >= 1, got 0"}},
		{name: "success_threshold negative", mutate: func(m map[string]any) { circuitOf(m, "visualization")["success_threshold"] = -2 },
			want: []string{"circuit_breaker.circuits.visualization.success_threshold: must be >= 1, got -2"}},
		{name: "timeout 0", mutate: func(m map[string]any) { circuitOf(m, "data_analyst")["timeout"] = 0 },
			want: []string{"circuit_breaker.circuits.data_analyst.timeout: must be > 0 seconds, got 0"}},
		{name: "recovery_timeout negative", mutate: func(m map[string]any) { circuitOf(m, "cot_engine")["recovery_timeout"] = -0.5 },
			want: []string{"circuit_breaker.circuits.cot_engine.recovery_timeout: must be > 0 seconds, got -0.5"}},
		{name: "threshold as string", mutate: func(m map[string]any) { circuitOf(m, "data_analyst")["failure_threshold"] = "3" },
			want: []string{"circuit_breaker.circuits.data_analyst.failure_threshold: must be int, got string"}},
		{name: "unknown top-level key", mutate: func(m map[string]any) { m["circuit_breakers"] = map[string]any{} },
			want: []string{"circuit_breakers: unknown key"}},
		{name: "unknown flag", mutate: func(m map[string]any) { m["circuit_breaker"].(map[string]any)["expose_health"] = true },
			want: []string{"circuit_breaker.expose_health: unknown key"}},
		{name: "unknown circuit", mutate: func(m map[string]any) {
			cs := m["circuit_breaker"].(map[string]any)["circuits"].(map[string]any)
			cs["data_analyts"] = cs["data_analyst"]
		}, want: []string{"circuit_breaker.circuits.data_analyts: unknown circuit"}},
		{name: "circuits not an object", mutate: func(m map[string]any) { m["circuit_breaker"].(map[string]any)["circuits"] = []any{1} },
			want: []string{"circuit_breaker.circuits: must be an object"}},
		{name: "bad base_url", mutate: func(m map[string]any) { m["llm"].(map[string]any)["base_url"] = "localhost:11434" },
			want: []string{`llm.base_url: must start with http:// or https://, got "localhost:11434"`}},
		{name: "bad base_url with a password", mutate: func(m map[string]any) {
			m["llm"].(map[string]any)["base_url"] = "ftp://alice:s3cret@llm.example/v1?key=t0ken"
		}, want: []string{`llm.base_url: must start with http:// or https://, got "ftp://llm.example"`}, not: []string{"s3cret", "t0ken"}},
		{name: "several problems at once", mutate: func(m map[string]any) {
			circuitOf(m, "data_analyst")["failure_threshold"] = 0
			circuitOf(m, "code_generator")["timeout"] = -1
		}, want: []string{"data_analyst.failure_threshold: must be >= 1, got 0", "code_generator.timeout: must be > 0 seconds, got -1"}},
		{name: "first_token_timeout over the timeout", mutate: func(m map[string]any) { circuitOf(m, "visualization")["first_token_timeout"] = 21 },
			want: []string{"circuit_breaker.circuits.visualization.first_token_timeout: must be <= timeout (20 seconds), got 21"}},
		{name: "first_token_timeout negative", mutate: func(m map[string]any) { circuitOf(m, "cot_engine")["first_token_timeout"] = -1 },
			want: []string{"circuit_breaker.circuits.cot_engine.first_token_timeout: must be 0 (the circuit's timeout) or between 0.001 and 86400 seconds, got -1"}},
		{name: "slow_call_threshold negative", mutate: func(m map[string]any) { circuitOf(m, "code_generator")["slow_call_threshold"] = -3 },
			want: []string{"circuit_breaker.circuits.code_generator.slow_call_threshold: must be 0 (off) or between 0.001 and 86400 seconds, got -3"}},
		{name: "slow_call_rate_threshold without slow_call_threshold", mutate: func(m map[string]any) { circuitOf(m, "data_analyst")["slow_call_rate_threshold"] = 50 },
			want: []string{"circuit_breaker.circuits.data_analyst.slow_call_rate_threshold: must be 0 (off) while slow_call_threshold is 0"}},
		{name: "slow_call_rate_threshold over 100", mutate: func(m map[string]any) {
			circuitOf(m, "data_analyst")["slow_call_threshold"] = 2
			circuitOf(m, "data_analyst")["slow_call_rate_threshold"] = 101
		}, want: []string{"circuit_breaker.circuits.data_analyst.slow_call_rate_threshold: must be between 0 (off) and 100 percent, got 101"}},
		{name: "sse_heartbeat_seconds 0", mutate: func(m map[string]any) { m["server"].(map[string]any)["sse_heartbeat_seconds"] = 0 },
			want: []string{"server.sse_heartbeat_seconds: must be between 0.05 and 300 seconds, got 0"}},
		{name: "not JSON", raw: `{"circuit_breaker": `, want: []string{"invalid JSON: unexpected end of input"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			content := tc.raw
			if tc.mutate != nil {
				m := shippedConfig(t)
				tc.mutate(m)
				data, _ := json.Marshal(m)
				content = string(data)
			}
			err := runWithConfig(t, content, nil)
			if err == nil {
				t.Fatal("start-up succeeded with an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, secret := range tc.not {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q:\n%v", secret, err)
				}
			}
		})
	}
}

// A config file that NEXUS_CONFIG (or -config) names and that is missing is
// an error, not a silent default.
func TestMissingConfigFileShouldFailStartUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var out bytes.Buffer
	vars := map[string]string{"NEXUS_CONFIG": filepath.Join(t.TempDir(), "nope.json")}
	err := app.Run(ctx, nil, func(k string) string { return vars[k] }, &out, &out, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("err = %v", err)
	}
}

// The shipped config parses and has the seed's four circuits.
func TestShippedConfigShouldHaveTheSeedCircuits(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Join("..", config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][4]float64{
		"data_analyst": {3, 60, 2, 30}, "code_generator": {2, 45, 2, 45},
		"cot_engine": {3, 60, 2, 40}, "visualization": {2, 30, 1, 20},
	}
	for name, w := range want {
		c := cfg.CircuitBreaker.Circuits[name]
		got := [4]float64{float64(c.FailureThreshold), float64(c.RecoveryTimeout), float64(c.SuccessThreshold), float64(c.Timeout)}
		if got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	if cfg.LLM.BaseURL != "http://localhost:11434/v1" || !cfg.CircuitBreaker.Enabled {
		t.Errorf("llm/enabled: %+v", cfg)
	}
}

// The start-up log states the configuration in force, overrides applied,
// with the API key reduced to whether one is set.
func TestStartUpShouldLogTheEffectiveConfig(t *testing.T) {
	t.Parallel()
	const key = "sk-effective-config-secret"
	n := startNexus(t, func(o *startOpts) {
		o.env["LLM_API_KEY"] = key
		o.cfg.Datasets.MemoryLimitMB = 256
		o.cfg.Datasets.MaxOpenDatasets = 3
	})
	lines := n.logs.lines("effective config")
	if len(lines) != 1 {
		t.Fatalf("%d effective config lines:\n%s", len(lines), n.logs.String())
	}
	l := lines[0]
	ds, _ := l["datasets"].(map[string]any)
	da, _ := l["data_analyst"].(map[string]any)
	srv, _ := l["server"].(map[string]any)
	if srv["sse_heartbeat_seconds"] != 15.0 {
		t.Errorf("effective config server.sse_heartbeat_seconds = %v, want 15", srv["sse_heartbeat_seconds"])
	}
	if l["path"] != n.ConfigPath || l["llm_api_key_set"] != true || ds["memory_limit_mb"] != 256.0 ||
		ds["max_open_datasets"] != 3.0 || da["failure_threshold"] == nil || l["addr"] == nil {
		t.Fatalf("effective config: %v", l)
	}
	if strings.Contains(n.logs.String(), key) {
		t.Fatal("the API key is in the log")
	}
}

// Every environment variable the server reads is listed by -h: the server
// is run with a getenv that records what it is asked for.
func TestHelpShouldListEveryVariableTheServerReads(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	if err := app.Run(context.Background(), []string{"-h"}, func(string) string { return "" }, &help, io.Discard, nil, nil); err != nil {
		t.Fatalf("-h: %v", err)
	}

	// Given a config whose API key is read from a variable of its own
	cfg := testConfig()
	cfg.LLM.APIKeyEnv = "MY_LLM_KEY"
	env := map[string]string{"NEXUS_CONFIG": writeConfig(t, cfg), "NEXUS_ADDR": "127.0.0.1:0", "NEXUS_DATA_DIR": t.TempDir()}
	var (
		mu   sync.Mutex
		read = map[string]bool{}
	)
	getenv := func(k string) string {
		mu.Lock()
		defer mu.Unlock()
		read[k] = true
		return env[k]
	}

	// When the server starts and stops (its context has already ended)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var logs syncBuffer
	if err := app.Run(ctx, nil, getenv, &logs, &logs, nil, nil); err != nil {
		t.Fatalf("Run: %v\n%s", err, logs.String())
	}

	// Then -h names each variable it read, and describes the one named by
	// llm.api_key_env by that key
	mu.Lock()
	defer mu.Unlock()
	for k := range read {
		if k == cfg.LLM.APIKeyEnv {
			k = "llm.api_key_env"
		}
		if !strings.Contains(help.String(), k) {
			t.Errorf("the server reads %s, which -h does not list:\n%s", k, help.String())
		}
	}
	for _, e := range config.EnvVars() {
		if !read[e.Name] {
			t.Errorf("-h lists %s, which the server never read", e.Name)
		}
	}
}

// Started where the default config file is absent, with no path given, the
// server runs on the built-in defaults and says so.
func TestWithoutTheDefaultConfigFileTheServerShouldRunOnBuiltInDefaults(t *testing.T) {
	t.Parallel()
	// Given a working directory (test/) without config/cot_review_config.json
	if _, err := os.Stat(config.DefaultPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("precondition: %s must be absent from the test's working directory (err %v)", config.DefaultPath, err)
	}
	env := map[string]string{"NEXUS_ADDR": "127.0.0.1:0", "NEXUS_DATA_DIR": t.TempDir()}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, nil, func(k string) string { return env[k] }, &logs, &logs, func(a net.Addr) { addrc <- a }, nil)
	}()

	// When it starts
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("start-up failed: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("not listening after 30 s:\n%s", logs.String())
	}

	// Then it serves with the built-in circuits and models, and logged why
	resp, err := http.Get("http://" + addr.String() + "/api/health/status")
	if err != nil {
		t.Fatal(err)
	}
	var health struct {
		CircuitBreakers struct {
			CircuitBreakers []struct {
				Name   string `json:"name"`
				Model  string `json:"model"`
				Config struct {
					FailureThreshold int `json:"failure_threshold"`
				} `json:"config"`
			} `json:"circuit_breakers"`
		} `json:"circuit_breakers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d, %v", resp.StatusCode, err)
	}
	def := config.Default()
	if got := len(health.CircuitBreakers.CircuitBreakers); got != len(config.CircuitNames()) {
		t.Fatalf("health lists %d circuits, want %d", got, len(config.CircuitNames()))
	}
	for _, c := range health.CircuitBreakers.CircuitBreakers {
		if c.Model != def.LLM.First(c.Name).Model || c.Config.FailureThreshold != def.CircuitBreaker.Circuits[c.Name].FailureThreshold {
			t.Errorf("%s runs model %q, failure_threshold %d: not the built-in defaults", c.Name, c.Model, c.Config.FailureThreshold)
		}
	}
	// The log is written asynchronously: wait for the line rather than
	// read a buffer the server may not have flushed yet.
	var said []map[string]any
	eventually(t, 10*time.Second, "the defaults line", func() bool {
		said = logs.lines("no config file; running on the built-in defaults")
		return len(said) > 0 && len(logs.lines("effective config")) > 0
	})
	abs, _ := filepath.Abs(config.DefaultPath)
	if len(said) != 1 || said[0]["path"] != abs || said[0]["level"] != "info" {
		t.Fatalf("defaults line = %v, want one at INFO naming %s:\n%s", said, abs, logs.String())
	}
	if eff := logs.lines("effective config"); len(eff) != 1 || eff[0]["source"] != "built-in defaults" {
		t.Fatalf("effective config does not name its source: %v", eff)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A reload that replaces the alert notifier does not wait for the old one
// to drain, and a shutdown that follows begins at once, although the old
// notifier is still stuck on a webhook that hangs and alerts.timeout is
// 30 s.
func TestReloadAndShutdownShouldNotWaitForAHangingAlertWebhook(t *testing.T) {
	t.Parallel()
	// Given a webhook that holds every request until released
	held := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(held) }) }
	arrived := make(chan struct{}, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-held:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hook.Close)
	n := startNexus(t, withAdmin, func(o *startOpts) {
		o.cfg.Alerts = config.Alerts{WebhookURL: hook.URL + "/alerts", QueueSize: 8, Attempts: 1, Timeout: 30}
	})
	// Cleanups run last-in first-out: this one, before the server stops.
	t.Cleanup(release)

	// And an alert in flight to it
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/visualization/open", adminToken), http.StatusOK)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the forced-open alert never reached the webhook")
	}

	// When SIGHUP reloads a file whose alerts section changed
	rewriteConfig(t, n.ConfigPath, func(c *config.Config) { c.Alerts.QueueSize = 16 })
	n.hup <- struct{}{}

	// Then the reload completes while the old notifier still waits
	eventually(t, 10*time.Second, "the reload to complete", func() bool { return len(n.logs.lines("config reloaded")) > 0 })

	// When the server is told to stop (as SIGTERM does)
	stopped := make(chan error, 1)
	go func() { stopped <- n.stop() }()

	// Then shutdown begins while the webhook is still held
	eventually(t, 10*time.Second, "shutdown to begin", func() bool { return len(n.logs.lines("shutting down")) == 1 })

	// And once the webhook answers, the server stops cleanly
	release()
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v\n%s", err, n.logs.String())
	}
}
