package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/redact"
)

// syncBuffer collects log lines written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mustReloader builds a reloader over the config that opts name, as Run
// does, logging as JSON into the returned buffer.
func mustReloader(tb testing.TB, opts options) (*reloader, *syncBuffer) {
	tb.Helper()
	l, err := loadConfig(opts)
	if err != nil {
		tb.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	alerts := newAlerter(l.cfg.Alerts, log, metrics.New(nil, func() []metrics.CircuitState { return nil }))
	tb.Cleanup(alerts.close)
	clients := newProviders(func(string, config.Provider) string { return "" })
	tb.Cleanup(clients.close)
	circuits := circuit.NewRegistry(registryConfig(l.cfg, clients.apply(l.cfg.LLM)), circuit.Options{Logger: log})
	tb.Cleanup(circuits.Close)
	return newReloader(reloader{
		live:      config.NewLive(opts.configPath, l.cfg, time.Now()),
		circuits:  circuits,
		providers: clients,
		alerts:    alerts,
		log:       log,
		opts:      opts,
		file:      l.file,
		redact:    redact.New(),
	}), logs
}

func TestReloadShouldLogThatAnOverrideWinsWithoutItsValue(t *testing.T) {
	t.Parallel()
	// Given a file, and NEXUS_DATA_DIR and -addr overriding two of its keys
	path := writeConfigFile(t, config.Default())
	opts, err := parseOptions([]string{"-addr", "127.0.0.1:0"},
		envOf(map[string]string{config.EnvConfig: path, config.EnvDataDir: "/from/env"}), &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	rl, logs := mustReloader(t, opts)

	// When a reload reads a file that changes both keys, and one that is
	// not overridden
	const secretDir, secretAddr = "/s3cret-dir", "10.9.8.7:6543"
	cfg := config.Default()
	cfg.Datasets.Dir, cfg.Server.Addr = secretDir, secretAddr
	cfg.CircuitBreaker.MetricsEnabled = false
	writeConfigAt(t, path, cfg)
	if err := rl.reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}

	// Then each overridden key is named once, with what overrides it, at
	// WARN; no value appears; the override stays in force and the other
	// change applies
	got := map[string]string{}
	for _, l := range jsonLines(t, logs.String(), "config file changed a key that is overridden; the override stays in force") {
		if l["level"] != "WARN" {
			t.Errorf("override line at %v, want WARN", l["level"])
		}
		got[l["key"].(string)] = l["overridden_by"].(string)
	}
	want := map[string]string{"datasets.dir": "NEXUS_DATA_DIR", "server.addr": "-addr"}
	if len(got) != len(want) || got["datasets.dir"] != want["datasets.dir"] || got["server.addr"] != want["server.addr"] {
		t.Fatalf("override lines = %v, want %v\n%s", got, want, logs.String())
	}
	for _, v := range []string{secretDir, secretAddr} {
		if strings.Contains(logs.String(), v) {
			t.Errorf("the log quotes the file's value %q:\n%s", v, logs.String())
		}
	}
	in := rl.live.Current()
	if in.Datasets.Dir != "/from/env" || in.Server.Addr != "127.0.0.1:0" || in.CircuitBreaker.MetricsEnabled {
		t.Fatalf("in force: dir %q, addr %q, metrics %v", in.Datasets.Dir, in.Server.Addr, in.CircuitBreaker.MetricsEnabled)
	}
	if n := len(jsonLines(t, logs.String(), "restart required: config change ignored until then")); n != 0 {
		t.Errorf("%d restart-required lines for keys the overrides keep as they are", n)
	}

	// When the same file is read again, nothing new is said about it
	before := strings.Count(logs.String(), "overridden_by")
	if err := rl.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := strings.Count(logs.String(), "overridden_by"); after != before {
		t.Fatalf("an unchanged file logged %d more override lines", after-before)
	}
}

func TestReloadShouldChangeNothingOnceItsContextHasEnded(t *testing.T) {
	t.Parallel()
	path := writeConfigFile(t, config.Default())
	rl, _ := mustReloader(t, options{configPath: path, configGiven: true, settings: map[string]setting{}})
	cfg := config.Default()
	cfg.CircuitBreaker.Enabled = false
	writeConfigAt(t, path, cfg)
	loadedAt := rl.live.Status().LoadedAt

	// Given a context that has ended
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rl.reload(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("reload = %v, want context.Canceled", err)
	}
	if !rl.live.Current().CircuitBreaker.Enabled || !rl.live.Status().LoadedAt.Equal(loadedAt) {
		t.Fatal("a cancelled reload applied the file")
	}

	// Given another reload holding the turn, a waiting one gives up when
	// its context ends
	rl.turn <- struct{}{}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.reload(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting reload = %v, want context.Canceled", err)
	}
	<-rl.turn
	if err := rl.reload(context.Background()); err != nil || rl.live.Current().CircuitBreaker.Enabled {
		t.Fatalf("a reload after the turn was handed back: err %v, enabled %v", err, rl.live.Current().CircuitBreaker.Enabled)
	}
}

// The streaming keys of a circuit apply live, in place, keeping the
// breakers' state; server.sse_heartbeat_seconds, like every server key, is
// restart-only.
func TestReloadShouldApplyTheStreamingKeysAndKeepTheHeartbeat(t *testing.T) {
	t.Parallel()
	// Given a server on the defaults
	path := writeConfigFile(t, config.Default())
	rl, logs := mustReloader(t, options{configPath: path, configGiven: true, settings: map[string]setting{}})

	// When a reload changes cot_engine's streaming keys and the heartbeat
	cfg := config.Default()
	cc := cfg.CircuitBreaker.Circuits[config.CircuitCoTEngine]
	cc.FirstTokenTimeout, cc.SlowCallThreshold, cc.SlowCallRateThreshold = 4, 2, 50
	cfg.CircuitBreaker.Circuits[config.CircuitCoTEngine] = cc
	cfg.Server.SSEHeartbeatSeconds = 5
	writeConfigAt(t, path, cfg)
	if err := rl.reload(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Then the circuit has them, without a rebuild
	c, err := rl.circuits.Lookup(config.CircuitCoTEngine)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Status().Settings
	if s.FirstTokenTimeout != 4*time.Second || s.SlowCallThreshold != 2*time.Second || s.SlowCallRateThreshold != 50 {
		t.Fatalf("cot_engine settings after the reload: %+v", s)
	}
	done := jsonLines(t, logs.String(), "config reloaded")
	if len(done) != 1 || done[0]["rebuilt_circuits"] != nil {
		t.Fatalf("config reloaded lines = %v, want one that rebuilt no circuit", done)
	}
	// And the heartbeat stays as it was, with a WARN naming the section
	if got := rl.live.Current().Server.SSEHeartbeatSeconds; got != 15 {
		t.Fatalf("sse_heartbeat_seconds in force = %v, want 15 until a restart", got)
	}
	restart := jsonLines(t, logs.String(), "restart required: config change ignored until then")
	if len(restart) != 1 || restart[0]["section"] != "server" || restart[0]["level"] != "WARN" {
		t.Fatalf("restart-required lines = %v, want one WARN for section server", restart)
	}
}

func writeConfigAt(tb testing.TB, path string, cfg config.Config) {
	tb.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}
