package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/redact"
	"github.com/nexus/nexus/test/fakellm"
)

// TestMain checks that no test of the package leaves a goroutine behind:
// probe loops, probes in flight and keep-alive connections included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	probeTimeout = 10 * time.Second // generous: no test waits for it to pass
	waitFor      = 10 * time.Second // deadline of every poll
	msgDown      = "LLM provider unreachable"
	msgUp        = "LLM provider reachable again"
)

// logCapture is an slog JSON handler's output, safe for concurrent writes.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records returns the logged records whose message is msg.
func (l *logCapture) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// newProber returns a prober logging into the returned capture, closed at
// the end of the test.
func newProber(t *testing.T, interval, timeout time.Duration, secrets ...string) (*llm.Prober, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := llm.NewProber(interval, timeout, log, redact.New(secrets...))
	t.Cleanup(p.Close)
	return p, logs
}

func newClient(t *testing.T, baseURL, key string) *llm.Client {
	t.Helper()
	c := llm.NewClient(llm.Config{BaseURL: baseURL, APIKey: key, MaxIdleConnsPerHost: 2})
	t.Cleanup(c.Close)
	return c
}

// closedPortURL returns a base URL on a loopback port nobody listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// modelsUpstream answers GET /v1/models with status (200: an empty model
// list) and counts the requests.
type modelsUpstream struct {
	*httptest.Server
	status   atomic.Int32
	requests atomic.Int64
}

func newModelsUpstream(t *testing.T) *modelsUpstream {
	t.Helper()
	u := &modelsUpstream{}
	u.status.Store(http.StatusOK)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		u.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		status := int(u.status.Load())
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
			return
		}
		_, _ = w.Write([]byte(`{"error":{"message":"the provider is down","type":"server_error"}}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *modelsUpstream) target(t *testing.T, name string) llm.ProbeTarget {
	return llm.ProbeTarget{Name: name, URL: u.URL, Client: newClient(t, u.URL+"/v1", "k")}
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func status(t *testing.T, p *llm.Prober, name string) llm.ProviderStatus {
	t.Helper()
	for _, s := range p.Statuses() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for provider %q in %+v", name, p.Statuses())
	return llm.ProviderStatus{}
}

func probed(p *llm.Prober, name string) func() bool {
	return func() bool {
		for _, s := range p.Statuses() {
			if s.Name == name {
				return s.Reachable != nil
			}
		}
		return false
	}
}

func probeNow(p *llm.Prober) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*probeTimeout)
	defer cancel()
	p.ProbeNow(ctx)
}

func TestClientProbeShouldListTheModels(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t, fakellm.WithAPIKey("sk-probe-right-key"))
	if err := newClient(t, s.URL(), "sk-probe-right-key").Probe(context.Background()); err != nil {
		t.Fatalf("Probe = %v, want nil", err)
	}
	err := newClient(t, s.URL(), "sk-probe-wrong-key").Probe(context.Background())
	if llm.HTTPStatus(err) != http.StatusUnauthorized {
		t.Fatalf("Probe with a wrong key = %v, want a 401", err)
	}
}

// A 200 whose body is no model list is no successful probe, and the body
// is capped as for chat calls.
func TestClientProbeShouldRejectAnUnusableBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		limit int64
		check func(error) bool
	}{
		{"not JSON", "<html>hello</html>", 0, func(err error) bool { return err != nil }},
		{"empty", "", 0, func(err error) bool { return err != nil }},
		{"over the cap", `{"object":"list","data":[]` + strings.Repeat(" ", 4096) + `}`, 1024, func(err error) bool {
			var tooLarge *llm.ResponseTooLargeError
			return errors.As(err, &tooLarge) && tooLarge.Limit == 1024
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c := llm.NewClient(llm.Config{BaseURL: srv.URL + "/v1", APIKey: "k", MaxIdleConnsPerHost: 2, MaxResponseBytes: tt.limit})
			t.Cleanup(c.Close)
			if err := c.Probe(context.Background()); !tt.check(err) {
				t.Fatalf("Probe = %v", err)
			}
		})
	}
}

func TestProberShouldReportAReachableProvider(t *testing.T) {
	t.Parallel()
	const key = "sk-probe-reachable-key"
	s := fakellm.New(t, fakellm.WithAPIKey(key))
	p, logs := newProber(t, 0, probeTimeout, key)
	shown := redact.URL(s.URL())
	p.Set([]llm.ProbeTarget{{Name: "main", URL: shown, Client: newClient(t, s.URL(), key)}})

	before := status(t, p, "main")
	if before.URL != shown || before.Reachable != nil || before.LastProbeAt != nil || before.LatencyMS != nil || before.LastError != nil {
		t.Fatalf("status before any probe = %+v, want only name and URL", before)
	}

	probeNow(p)
	got := status(t, p, "main")
	if got.Reachable == nil || !*got.Reachable {
		t.Fatalf("Reachable = %v, want true (error %v)", got.Reachable, deref(got.LastError))
	}
	if got.LastError != nil {
		t.Fatalf("LastError = %q, want nil", *got.LastError)
	}
	if got.LatencyMS == nil || *got.LatencyMS < 0 || math.Abs(*got.LatencyMS*100-math.Round(*got.LatencyMS*100)) > 1e-6 {
		t.Fatalf("LatencyMS = %v, want a non-negative value with two decimals", deref(got.LatencyMS))
	}
	if got.LastProbeAt == nil || got.LastProbeAt.Location() != time.UTC || got.LastProbeAt.IsZero() {
		t.Fatalf("LastProbeAt = %v, want a UTC time", got.LastProbeAt)
	}
	if n := len(logs.records(t, msgDown)) + len(logs.records(t, msgUp)); n != 0 {
		t.Fatalf("logged %d reachability changes for a healthy provider:\n%s", n, logs)
	}
}

// Given a provider on a closed port, its first probe (here Start's) finds
// it unreachable and logs one WARN; later failed probes log nothing more.
func TestProberShouldWarnOnceAboutAnUnreachableProvider(t *testing.T) {
	t.Parallel()
	base := closedPortURL(t)
	// Userinfo in the base URL must show nowhere.
	withUser := strings.Replace(base, "http://", "http://probe-user:probe-pass@", 1) + "/v1"
	p, logs := newProber(t, 0, probeTimeout)
	p.Set([]llm.ProbeTarget{{Name: "dead", URL: base, Client: newClient(t, withUser, "sk-probe-dead-key")}})
	p.Start()
	eventually(t, "the start-up probe finished", probed(p, "dead"))
	probeNow(p)
	probeNow(p)

	got := status(t, p, "dead")
	if got.Reachable == nil || *got.Reachable {
		t.Fatalf("Reachable = %v, want false", got.Reachable)
	}
	if got.LastError == nil || !strings.Contains(*got.LastError, "connection refused") {
		t.Fatalf("LastError = %v, want it to say the connection was refused", deref(got.LastError))
	}
	if got.LatencyMS == nil || got.LastProbeAt == nil {
		t.Fatalf("a failed probe still has a latency and a time: %+v", got)
	}
	warns := logs.records(t, msgDown)
	if len(warns) != 1 {
		t.Fatalf("%d WARNs after three failed probes, want 1:\n%s", len(warns), logs)
	}
	w := warns[0]
	if w["level"] != "WARN" || w["provider"] != "dead" || w["url"] != base || w["error"] != *got.LastError {
		t.Fatalf("WARN = %v, want provider dead, url %s and the error", w, base)
	}
	for _, secret := range []string{"probe-pass", "probe-user", "/v1", "sk-probe-dead-key"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(*got.LastError, secret) {
			t.Fatalf("%q leaked: error %q, logs:\n%s", secret, *got.LastError, logs)
		}
	}
}

// Given a wrong API key, the provider is unreachable with its 401, and the
// key shows neither in the error nor in the logs.
func TestProberShouldReportARejectedKeyWithoutTheKey(t *testing.T) {
	t.Parallel()
	const wrong = "sk-probe-wrong-key-0123456789"
	s := fakellm.New(t, fakellm.WithAPIKey("sk-probe-right-key-0123456789"))
	p, logs := newProber(t, 0, probeTimeout, wrong)
	p.Set([]llm.ProbeTarget{{Name: "keyed", URL: redact.URL(s.URL()), Client: newClient(t, s.URL(), wrong)}})
	probeNow(p)

	got := status(t, p, "keyed")
	if got.Reachable == nil || *got.Reachable {
		t.Fatalf("Reachable = %v, want false", got.Reachable)
	}
	if got.LastError == nil || !strings.Contains(*got.LastError, "401") {
		t.Fatalf("LastError = %v, want the 401", deref(got.LastError))
	}
	if len(logs.records(t, msgDown)) != 1 {
		t.Fatalf("want one WARN:\n%s", logs)
	}
	if strings.Contains(*got.LastError, wrong) || strings.Contains(logs.String(), wrong) {
		t.Fatalf("the key leaked: error %q, logs:\n%s", *got.LastError, logs)
	}
}

// Given a provider whose 401 echoes the key and the request URL, as some
// gateways do, both are redacted out of the error and the logs.
func TestProberShouldRedactWhatTheProviderEchoes(t *testing.T) {
	t.Parallel()
	const key = "nexus-probe-echoed-key-0123456789" // no sk- prefix: only the Redactor knows it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		msg := "key " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + " refused for http://" + r.Host + r.URL.Path + "?token=t0ken-probe"
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}})
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	p, logs := newProber(t, 0, probeTimeout, key)
	p.Set([]llm.ProbeTarget{{Name: "echo", URL: srv.URL, Client: newClient(t, srv.URL+"/v1", key)}})
	probeNow(p)

	got := status(t, p, "echo")
	if got.LastError == nil || !strings.Contains(*got.LastError, "401") || !strings.Contains(*got.LastError, redact.Placeholder) {
		t.Fatalf("LastError = %v, want the 401 with the key redacted", deref(got.LastError))
	}
	for _, secret := range []string{key, "t0ken-probe", "/v1/models"} {
		if strings.Contains(*got.LastError, secret) || strings.Contains(logs.String(), secret) {
			t.Fatalf("%q leaked: error %q, logs:\n%s", secret, *got.LastError, logs)
		}
	}
}

// A provider that stops answering within the timeout is unreachable.
func TestProberShouldBoundAProbeByItsTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p, logs := newProber(t, 0, 100*time.Millisecond)
	p.Set([]llm.ProbeTarget{{Name: "slow", URL: srv.URL, Client: newClient(t, srv.URL+"/v1", "k")}})
	probeNow(p)

	got := status(t, p, "slow")
	if got.Reachable == nil || *got.Reachable {
		t.Fatalf("Reachable = %v, want false", got.Reachable)
	}
	if got.LastError == nil || !strings.Contains(*got.LastError, "timeout") {
		t.Fatalf("LastError = %v, want a timeout", deref(got.LastError))
	}
	if len(logs.records(t, msgDown)) != 1 {
		t.Fatalf("want one WARN:\n%s", logs)
	}
}

// Given a provider that goes down and comes back, each change is logged
// once: WARN when it goes down, INFO when it is back.
func TestProberShouldLogOnlyReachabilityChanges(t *testing.T) {
	t.Parallel()
	u := newModelsUpstream(t)
	p, logs := newProber(t, 0, probeTimeout)
	p.Set([]llm.ProbeTarget{u.target(t, "flaky")})
	for _, st := range []int{200, 503, 503, 200, 200, 503} {
		u.status.Store(int32(st))
		probeNow(p)
		got := status(t, p, "flaky")
		if got.Reachable == nil || *got.Reachable != (st == 200) {
			t.Fatalf("after a %d: Reachable = %v", st, got.Reachable)
		}
		if (got.LastError == nil) != (st == 200) {
			t.Fatalf("after a %d: LastError = %v", st, deref(got.LastError))
		}
	}
	warns, infos := logs.records(t, msgDown), logs.records(t, msgUp)
	if len(warns) != 2 || len(infos) != 1 {
		t.Fatalf("%d WARNs and %d INFOs, want 2 and 1:\n%s", len(warns), len(infos), logs)
	}
	if !strings.Contains(warns[0]["error"].(string), "503") || infos[0]["level"] != "INFO" || infos[0]["provider"] != "flaky" {
		t.Fatalf("records:\n%s", logs)
	}
}

// Given a running prober, Set keeps the results of the providers whose name
// and URL did not change without probing them again, starts the others from
// nothing and probes them at once, drops the missing ones, and reports in
// the new order.
func TestProberSetShouldKeepUnchangedProviders(t *testing.T) {
	t.Parallel()
	kept, moved, added := newModelsUpstream(t), newModelsUpstream(t), newModelsUpstream(t)
	dropped := closedPortURL(t)
	p, _ := newProber(t, 0, probeTimeout)
	p.Set([]llm.ProbeTarget{
		kept.target(t, "kept"),
		{Name: "moved", URL: dropped, Client: newClient(t, dropped+"/v1", "k")},
		{Name: "dropped", URL: dropped, Client: newClient(t, dropped+"/v1", "k")},
	})
	p.Start()
	for _, name := range []string{"kept", "moved", "dropped"} {
		eventually(t, name+" probed", probed(p, name))
	}
	before := status(t, p, "kept")

	// A new client for an unchanged provider, as a reload builds.
	p.Set([]llm.ProbeTarget{added.target(t, "added"), kept.target(t, "kept"), moved.target(t, "moved")})
	statuses := p.Statuses()
	if len(statuses) != 3 || statuses[0].Name != "added" || statuses[1].Name != "kept" || statuses[2].Name != "moved" {
		t.Fatalf("statuses = %+v, want added, kept, moved", statuses)
	}
	if got := statuses[1]; got.Reachable == nil || !*got.Reachable || !got.LastProbeAt.Equal(*before.LastProbeAt) || *got.LatencyMS != *before.LatencyMS {
		t.Fatalf("kept provider's status went from %+v to %+v", before, got)
	}
	if statuses[2].URL != moved.URL {
		t.Fatalf("moved provider's URL = %q, want %q", statuses[2].URL, moved.URL)
	}

	eventually(t, "added probed", probed(p, "added"))
	eventually(t, "moved probed at its new URL", func() bool {
		s := status(t, p, "moved")
		return s.Reachable != nil && *s.Reachable
	})
	if got := status(t, p, "kept"); !got.LastProbeAt.Equal(*before.LastProbeAt) {
		t.Fatalf("kept provider was probed again: %v, then %v", before.LastProbeAt, got.LastProbeAt)
	}
	if n := kept.requests.Load(); n != 1 {
		t.Fatalf("kept provider got %d probes, want 1", n)
	}
}

// Given an interval of 50 ms, the provider is probed again and again; after
// Close, never again.
func TestProberShouldProbePeriodicallyUntilClosed(t *testing.T) {
	t.Parallel()
	u := newModelsUpstream(t)
	p, _ := newProber(t, 50*time.Millisecond, probeTimeout)
	p.Set([]llm.ProbeTarget{u.target(t, "periodic")})
	p.Start()
	eventually(t, "five probes", func() bool { return u.requests.Load() >= 5 })

	p.Close()
	after := u.requests.Load()
	time.Sleep(200 * time.Millisecond) // four intervals: room for a probe that should not come
	if n := u.requests.Load(); n != after {
		t.Fatalf("%d probes after Close", n-after)
	}
	if got := status(t, p, "periodic"); got.Reachable == nil || !*got.Reachable {
		t.Fatalf("results are gone after Close: %+v", got)
	}
	p.ProbeNow(context.Background())
	p.Start()
	if n := u.requests.Load(); n != after {
		t.Fatalf("ProbeNow or Start probed after Close")
	}
}

// With interval 0 only the start-up probe runs.
func TestProberShouldProbeOnceWithoutAnInterval(t *testing.T) {
	t.Parallel()
	u := newModelsUpstream(t)
	p, _ := newProber(t, 0, probeTimeout)
	p.Set([]llm.ProbeTarget{u.target(t, "once")})
	p.Start()
	p.Start()
	eventually(t, "the start-up probe", probed(p, "once"))
	time.Sleep(100 * time.Millisecond) // room for a probe that should not come
	if n := u.requests.Load(); n != 1 {
		t.Fatalf("%d probes, want 1", n)
	}
}

// Given a probe in flight against a provider that never answers, Close
// cancels it and returns, and the probe records nothing.
func TestProberCloseShouldCancelProbesInFlight(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	p, logs := newProber(t, time.Hour, time.Hour)
	p.Set([]llm.ProbeTarget{{Name: "hung", URL: srv.URL, Client: newClient(t, srv.URL+"/v1", "k")}})
	p.Start()
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("the probe never arrived")
	}

	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return with a probe in flight")
	}
	if got := status(t, p, "hung"); got.Reachable != nil || got.LastError != nil {
		t.Fatalf("a canceled probe recorded %+v", got)
	}
	if strings.Contains(logs.String(), msgDown) {
		t.Fatalf("a canceled probe was logged:\n%s", logs)
	}
}

// A probe that the caller of ProbeNow cancels records nothing: the caller
// hung up, the provider is not to blame.
func TestProbeNowShouldRecordNothingWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	p, _ := newProber(t, 0, time.Hour)
	p.Set([]llm.ProbeTarget{{Name: "hung", URL: srv.URL, Client: newClient(t, srv.URL+"/v1", "k")}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.ProbeNow(ctx)
	if got := status(t, p, "hung"); got.Reachable != nil {
		t.Fatalf("a canceled probe recorded %+v", got)
	}
}

func deref[T any](v *T) any {
	if v == nil {
		return nil
	}
	return *v
}
