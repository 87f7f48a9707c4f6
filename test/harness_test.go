// Package e2e holds Nexus's end-to-end tests: each starts the real server
// (app.Run) on 127.0.0.1:0 against a fake OpenAI-compatible upstream, also
// on loopback, and drives it through the HTTP API alone.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/cmd/server/app"
	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/test/fakellm"
)

func TestMain(m *testing.M) {
	// Store workers are this test binary, started with dataset.WorkerArg.
	dataset.RunIfWorker()
	goleak.VerifyTestMain(m)
}

// Models per circuit, so that the fake can be scripted per circuit.
const (
	analystModel = "analyst-model"
	codegenModel = "codegen-model"
	cotModel     = "cot-model"
	vizModel     = "viz-model"
)

// testConfig is the shipped schema with short delays for fast tests.
func testConfig() config.Config {
	cfg := config.Default()
	for name, c := range cfg.CircuitBreaker.Circuits {
		c.RecoveryTimeout = 0.3
		c.Timeout = 2
		cfg.CircuitBreaker.Circuits[name] = c
	}
	cfg.LLM.Models = map[string]config.Targets{
		config.CircuitDataAnalyst:   config.Single(analystModel),
		config.CircuitCodeGenerator: config.Single(codegenModel),
		config.CircuitCoTEngine:     config.Single(cotModel),
		config.CircuitVisualization: config.Single(vizModel),
	}
	// The default rate limits (60 a minute, 10 at once, per client
	// address) would refuse the bursts other tests send from loopback;
	// auth_test.go and ratelimit_test.go set their own.
	cfg.RateLimit.PerMinute, cfg.RateLimit.PerHour = 0, 0
	return cfg
}

// nexus is a running server under test.
type nexus struct {
	URL    string
	LLM    *fakellm.Server
	logs   *syncBuffer
	client *http.Client
	// ConfigPath is the config file the server watches.
	ConfigPath string
	// hup sends a reload request, as SIGHUP does for the real process.
	hup chan struct{}
	// shutdown ends the server (as SIGTERM does) and returns Run's error.
	shutdown    func() error
	stoppedByMe atomic.Bool
	// returned is set once Run has returned; barriers counts logBarrier's
	// requests.
	returned *atomic.Bool
	barriers atomic.Int64
}

// stop ends the server as SIGTERM does and returns Run's error; the test
// then owns that error, and cleanup does not report it again.
func (n *nexus) stop() error {
	n.stoppedByMe.Store(true)
	return n.shutdown()
}

type startOpts struct {
	cfg      config.Config
	env      map[string]string
	fakeOpts []fakellm.Option
}

// startNexus runs app.Run on 127.0.0.1:0 with cfg written to a temp file
// and waits until it listens. It stops the server when the test ends.
func startNexus(t testing.TB, mutate ...func(*startOpts)) *nexus {
	t.Helper()
	o := startOpts{cfg: testConfig(), env: map[string]string{}}
	for _, m := range mutate {
		m(&o)
	}
	llm := fakellm.New(t, o.fakeOpts...)
	o.cfg.LLM.BaseURL = llm.URL()
	path := writeConfig(t, o.cfg)
	env := map[string]string{"NEXUS_CONFIG": path, "NEXUS_ADDR": "127.0.0.1:0", "NEXUS_DATA_DIR": t.TempDir()}
	for k, v := range o.env {
		env[k] = v
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	hup := make(chan struct{})
	var returned atomic.Bool
	go func() {
		err := app.Run(ctx, nil, func(k string) string { return env[k] }, logs, logs, func(a net.Addr) { addrc <- a }, hup)
		returned.Store(true)
		done <- err
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\nlogs:\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server did not start within 10s")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	var (
		stopOnce sync.Once
		stopErr  error
	)
	stop := func() error {
		stopOnce.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = fmt.Errorf("server did not stop within 15s")
			}
		})
		return stopErr
	}
	n := &nexus{
		URL: "http://" + addr.String(), LLM: llm, logs: logs,
		client:     &http.Client{Transport: tr, Timeout: 30 * time.Second},
		ConfigPath: path, hup: hup, shutdown: stop,
	}
	n.returned = &returned
	logs.barrier = n.logBarrier
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := stop(); err != nil && !n.stoppedByMe.Load() {
			t.Errorf("server stopped with error: %v", err)
		}
	})
	return n
}

func writeConfig(t testing.TB, cfg config.Config) string {
	t.Helper()
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, string(data))
}

func writeFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cot_review_config.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (n *nexus) post(t testing.TB, path string, body any) response {
	t.Helper()
	return n.postCtx(t, context.Background(), path, body)
}

func (n *nexus) postCtx(t testing.TB, ctx context.Context, path string, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return n.do(t, req)
}

func (n *nexus) get(t testing.TB, path string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n.do(t, req)
}

func (n *nexus) do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v\n%s", req.Method, req.URL.Path, err, raw)
		}
	}
	return out
}

// circuit returns the named circuit's entry from the health endpoint.
func (n *nexus) circuit(t testing.TB, name string) map[string]any {
	t.Helper()
	h := n.get(t, "/api/health/status")
	if h.Status != http.StatusOK {
		t.Fatalf("health: status %d: %s", h.Status, h.Raw)
	}
	for _, c := range h.Body["circuit_breakers"].(map[string]any)["circuit_breakers"].([]any) {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("health has no circuit %q: %s", name, h.Raw)
	return nil
}

func (n *nexus) state(t testing.TB, name string) string {
	t.Helper()
	return n.circuit(t, name)["state"].(string)
}

func (n *nexus) stats(t testing.TB, name string) map[string]any {
	t.Helper()
	return n.circuit(t, name)["statistics"].(map[string]any)
}

// analyze sends a minimal valid /analyze request.
func (n *nexus) analyze(t testing.TB) response {
	t.Helper()
	return n.post(t, "/analyze", map[string]any{"query": "How many rows are there?"})
}

func (n *nexus) generate(t testing.TB) response {
	t.Helper()
	return n.post(t, "/generate", map[string]any{"prompt": "sum the sales column"})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func expectStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, want, r.Raw)
	}
}

func errorCode(r response) string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func expectStats(t testing.TB, n *nexus, circuit string, want map[string]float64) {
	t.Helper()
	got := n.stats(t, circuit)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s statistics.%s = %v, want %v (all: %v)", circuit, k, got[k], v, got)
		}
	}
}

// syncBuffer collects log output from the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// barrier, if set, returns once every line logged before it was
	// called is in buf (see nexus.logBarrier).
	barrier func()
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns the output so far, after the barrier: the server writes
// its log asynchronously.
func (b *syncBuffer) String() string {
	if b.barrier != nil {
		b.barrier()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log lines whose msg is msg, leaving out the
// barrier's own access lines.
func (b *syncBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == msg && !isBarrierLine(m) {
			out = append(out, m)
		}
	}
	return out
}

// barrierIDPrefix marks the request IDs of logBarrier's requests.
const barrierIDPrefix = "log-barrier-"

func isBarrierLine(m map[string]any) bool {
	id, _ := m["request_id"].(string)
	return strings.HasPrefix(id, barrierIDPrefix)
}

// logBarrier returns once every line the server logged before the call is
// in the test's buffer. The server's log is asynchronous (a Sink in front
// of stdout) but first in, first out: a request whose own access line has
// arrived proves that every earlier line has too. Once Run has returned,
// its log is closed and complete, and there is nothing to wait for.
func (n *nexus) logBarrier() {
	if n.returned.Load() {
		return
	}
	id := fmt.Sprintf("%s%d", barrierIDPrefix, n.barriers.Add(1))
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/healthz", nil)
	req.Header.Set("X-Request-ID", id)
	resp, err := n.client.Do(req)
	if err != nil {
		return // shutting down: the lines are as complete as they will get
	}
	_, _ = drain(resp)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !n.returned.Load() {
		n.logs.mu.Lock()
		arrived := strings.Contains(n.logs.buf.String(), `"request_id":"`+id+`"`)
		n.logs.mu.Unlock()
		if arrived {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// drain drains and closes a response body so the connection is reused.
func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}
