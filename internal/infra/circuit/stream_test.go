package circuit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
)

// streamFunc stands in for a provider's streaming client: it hands pieces
// to onDelta and returns as the upstream would.
type streamFunc func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error)

type streamer struct {
	n  atomic.Int64
	fn streamFunc
}

func (s *streamer) Chat(ctx context.Context, _ string, _ llm.ChatRequest) (llm.ChatResponse, error) {
	s.n.Add(1)
	return s.fn(ctx, func(string) {})
}

func (s *streamer) ChatStream(ctx context.Context, _ string, _ llm.ChatRequest, onDelta func(string)) (llm.ChatResponse, error) {
	s.n.Add(1)
	return s.fn(ctx, onDelta)
}

func streams(fn streamFunc) *streamer { return &streamer{fn: fn} }

// pieces streams parts, then answers whole.
func pieces(parts ...string) streamFunc {
	return func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		for _, p := range parts {
			onDelta(p)
		}
		return llm.ChatResponse{Content: strings.Join(parts, ""), Model: "m"}, nil
	}
}

// cutAfter streams parts, then breaks as a stream cut without [DONE].
func cutAfter(parts ...string) streamFunc {
	return func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		for _, p := range parts {
			onDelta(p)
		}
		return llm.ChatResponse{Content: strings.Join(parts, "")}, llm.ErrStreamCut
	}
}

// silent sends nothing until the call is cancelled.
func silent(ctx context.Context, _ func(string)) (llm.ChatResponse, error) {
	<-ctx.Done()
	return llm.ChatResponse{}, ctx.Err()
}

func streamSettings() circuit.Settings {
	return circuit.Settings{
		FailureThreshold: 5, SuccessThreshold: 1, RecoveryTimeout: time.Minute, MaxRecoveryTimeout: time.Minute,
		RecoveryBackoffMultiplier: 1, Timeout: 30 * time.Second, MaxAttempts: 1,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond, MaxRetryAfter: time.Second,
		FailureRateWindow: time.Minute, MinimumCalls: 10, HedgeBudgetPercent: 10,
	}
}

// streamCircuit builds one circuit over the given targets, named
// default, backup, third… in order.
func streamCircuit(t *testing.T, s circuit.Settings, hooks circuit.Hooks, ups ...circuit.Chatter) *circuit.Circuit {
	t.Helper()
	names := []string{"default", "backup", "third"}
	spec := circuit.Spec{Name: "data_analyst", Settings: s}
	for i, up := range ups {
		spec.Targets = append(spec.Targets, circuit.TargetSpec{Provider: names[i], Model: "m" + names[i], URL: "http://" + names[i] + ".test", Endpoint: "http://" + names[i] + ".test/v1", LLM: up})
	}
	r := circuit.NewRegistry(circuit.RegistryConfig{Enabled: true, Circuits: []circuit.Spec{spec}}, circuit.Options{Hooks: hooks})
	t.Cleanup(r.Close)
	return r.Circuit("data_analyst")
}

// collect gathers what Stream hands on.
type collect struct {
	mu    sync.Mutex
	parts []string
}

func (c *collect) add(p string) {
	c.mu.Lock()
	c.parts = append(c.parts, p)
	c.mu.Unlock()
}

func (c *collect) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.parts...)
}

func TestAStreamShouldHandOnEachPieceAndHoldBackLeadingWhitespace(t *testing.T) {
	t.Parallel()
	up := streams(pieces("\n", " ", "The", " answer", " is 42."))
	c := streamCircuit(t, streamSettings(), circuit.Hooks{}, up)
	var got collect
	resp, err := c.Stream(context.Background(), llm.ChatRequest{}, got.add)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"\n The", " answer", " is 42."}
	if p := got.got(); strings.Join(p, "|") != strings.Join(want, "|") {
		t.Fatalf("pieces %q, want %q", p, want)
	}
	if resp.Content != "\n The answer is 42." || resp.Provider != "default" || resp.Attempts != 1 || resp.Failover {
		t.Fatalf("response %+v", resp)
	}
	if p50, ok := c.TimeToFirstTokenP50(); !ok || p50 < 0 {
		t.Fatalf("ttft p50 %v %v", p50, ok)
	}
}

func TestAFailureBeforeAnyTextShouldFailOverUnseen(t *testing.T) {
	t.Parallel()
	// Given a primary that says only whitespace, then fails, and a backup
	primary := streams(func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		onDelta("  \n")
		return llm.ChatResponse{}, &openai.APIError{HTTPStatusCode: 502, Message: "bad gateway"}
	})
	backup := streams(pieces("from", " backup"))
	c := streamCircuit(t, streamSettings(), circuit.Hooks{}, primary, backup)
	var got collect
	resp, err := c.Stream(context.Background(), llm.ChatRequest{}, got.add)
	// Then the caller sees only the backup's text
	if err != nil || !resp.Failover || resp.Provider != "backup" || resp.Attempts != 2 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if p := strings.Join(got.got(), ""); p != "from backup" {
		t.Fatalf("pieces joined %q", p)
	}
	st := c.Status()
	if st.Targets[0].Stats.FailureCount != 1 || st.Targets[1].Stats.SuccessCount != 1 {
		t.Fatalf("stats %+v / %+v", st.Targets[0].Stats, st.Targets[1].Stats)
	}
}

func TestAMissedFirstTokenShouldBeACountedTimeoutThatFailsOver(t *testing.T) {
	t.Parallel()
	s := streamSettings()
	s.FirstTokenTimeout = 50 * time.Millisecond
	primary, backup := streams(silent), streams(pieces("ok"))
	c := streamCircuit(t, s, circuit.Hooks{}, primary, backup)
	var got collect
	resp, err := c.Stream(context.Background(), llm.ChatRequest{}, got.add)
	if err != nil || resp.Provider != "backup" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	st := c.Status().Targets[0].Stats
	if st.FailureCount != 1 || st.TimeoutCount != 1 {
		t.Fatalf("primary stats %+v", st)
	}
	if st.LastError == nil || !strings.Contains(*st.LastError, "first_token_timeout") {
		t.Fatalf("last error %v", st.LastError)
	}
}

func TestAMissedFirstTokenShouldBeRetriedOnTheSameTarget(t *testing.T) {
	t.Parallel()
	s := streamSettings()
	s.FirstTokenTimeout = 50 * time.Millisecond
	s.MaxAttempts = 2
	var n atomic.Int64
	up := streams(func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		if n.Add(1) == 1 {
			return silent(ctx, onDelta)
		}
		return pieces("second")(ctx, onDelta)
	})
	c := streamCircuit(t, s, circuit.Hooks{}, up)
	resp, err := c.Stream(context.Background(), llm.ChatRequest{}, func(string) {})
	if err != nil || resp.Content != "second" || resp.Attempts != 2 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
}

func TestABreakAfterTextShouldEndTheCallAsInterruptedCountedOnce(t *testing.T) {
	t.Parallel()
	var interrupted atomic.Int64
	hooks := circuit.Hooks{OnStreamInterrupted: func(circuit, provider string) {
		if provider == "default" {
			interrupted.Add(1)
		}
	}}
	primary, backup := streams(cutAfter("one", " two", " three")), streams(pieces("backup"))
	c := streamCircuit(t, streamSettings(), hooks, primary, backup)
	var got collect
	resp, err := c.Stream(context.Background(), llm.ChatRequest{}, got.add)
	var le *circuit.LLMError
	if !errors.As(err, &le) || !le.Interrupted || le.Kind != llm.KindUnavailable {
		t.Fatalf("err %#v", err)
	}
	if resp.Provider != "default" || le.Attempts != 1 {
		t.Fatalf("resp %+v attempts %d", resp, le.Attempts)
	}
	// No failover: the caller already holds the primary's text
	if backup.n.Load() != 0 || strings.Join(got.got(), "") != "one two three" {
		t.Fatalf("backup requests %d, pieces %q", backup.n.Load(), got.got())
	}
	if st := c.Status().Targets[0].Stats; st.FailureCount != 1 || st.SuccessCount != 0 {
		t.Fatalf("stats %+v", st)
	}
	if interrupted.Load() != 1 {
		t.Fatalf("interruptions %d", interrupted.Load())
	}
}

func TestACallerThatLeavesMidStreamShouldCountNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	up := streams(func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		onDelta("first")
		cancel()
		return silent(ctx, onDelta)
	})
	var interrupted atomic.Int64
	c := streamCircuit(t, streamSettings(), circuit.Hooks{OnStreamInterrupted: func(string, string) { interrupted.Add(1) }}, up)
	_, err := c.Stream(ctx, llm.ChatRequest{}, func(string) {})
	var le *circuit.LLMError
	if !errors.As(err, &le) || le.Kind != llm.KindCanceled || le.Interrupted {
		t.Fatalf("err %#v", err)
	}
	st := c.Status().Targets[0].Stats
	if st.SuccessCount != 0 || st.FailureCount != 0 || st.TotalCalls != 0 || interrupted.Load() != 0 {
		t.Fatalf("stats %+v, interruptions %d", st, interrupted.Load())
	}
}

func TestSlowFirstTokensShouldOpenATargetAtTheSlowCallRate(t *testing.T) {
	t.Parallel()
	s := streamSettings()
	s.SlowCallThreshold = 20 * time.Millisecond
	s.SlowCallRateThreshold = 100
	s.MinimumCalls = 3
	var firstTokens atomic.Int64
	slow := streams(func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		select {
		case <-time.After(40 * time.Millisecond):
		case <-ctx.Done():
			return llm.ChatResponse{}, ctx.Err()
		}
		return pieces("late")(ctx, onDelta)
	})
	c := streamCircuit(t, s, circuit.Hooks{OnFirstToken: func(_, _, _ string, d time.Duration) { firstTokens.Add(1) }}, slow)
	for i := 1; i <= 3; i++ {
		if _, err := c.Stream(context.Background(), llm.ChatRequest{}, func(string) {}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		want := circuit.StateClosed
		if i == 3 {
			want = circuit.StateOpen
		}
		if got := c.State(); got != want {
			t.Fatalf("after call %d state %s, want %s", i, got, want)
		}
	}
	st := c.Status().Targets[0]
	if st.Stats.SlowCallCount != 3 || st.Stats.SuccessCount != 3 || firstTokens.Load() != 3 {
		t.Fatalf("stats %+v, first tokens %d", st.Stats, firstTokens.Load())
	}
	if len(st.RecentTransitions) == 0 || !strings.Contains(st.RecentTransitions[len(st.RecentTransitions)-1].Reason, "slow-call rate 100%") {
		t.Fatalf("transitions %+v", st.RecentTransitions)
	}
	// A fourth call is refused without a request
	if _, err := c.Stream(context.Background(), llm.ChatRequest{}, func(string) {}); !errors.Is(err, circuit.ErrCircuitOpen) || slow.n.Load() != 3 {
		t.Fatalf("err %v, requests %d", err, slow.n.Load())
	}
}

func TestAClientThatCannotStreamShouldAnswerInOnePiece(t *testing.T) {
	t.Parallel()
	c := streamCircuit(t, streamSettings(), circuit.Hooks{}, chatFunc(ok))
	var got collect
	resp, err := c.Stream(context.Background(), llm.ChatRequest{}, got.add)
	if err != nil || resp.Content != "fine" || strings.Join(got.got(), "|") != "fine" {
		t.Fatalf("resp %+v err %v pieces %q", resp, err, got.got())
	}
}

func TestATokenThatComesAsTheFirstTokenLimitFiresShouldStillBeATimeout(t *testing.T) {
	t.Parallel()
	s := streamSettings()
	s.FirstTokenTimeout = 50 * time.Millisecond
	// An upstream whose whole short reply was already buffered: the call
	// sends its text only once the limit has fired, then ends cleanly.
	up := streams(func(ctx context.Context, onDelta func(string)) (llm.ChatResponse, error) {
		<-ctx.Done()
		onDelta("Hello")
		return llm.ChatResponse{Content: "Hello", Model: "m"}, nil
	})
	c := streamCircuit(t, s, circuit.Hooks{}, up)
	var got collect
	_, err := c.Stream(context.Background(), llm.ChatRequest{}, got.add)
	var le *circuit.LLMError
	if !errors.As(err, &le) || le.Kind != llm.KindTimeout || len(got.got()) != 0 {
		t.Fatalf("err %v, pieces %q", err, got.got())
	}
	if st := c.Status().Targets[0].Stats; st.TimeoutCount != 1 || st.SuccessCount != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestACallThatDoesNotStreamShouldNeverBeJudgedSlow(t *testing.T) {
	t.Parallel()
	s := streamSettings()
	s.SlowCallThreshold = time.Millisecond
	s.SlowCallRateThreshold = 50
	s.MinimumCalls = 2
	slowChat := chatFunc(func(ctx context.Context, m string, r llm.ChatRequest) (llm.ChatResponse, error) {
		time.Sleep(5 * time.Millisecond)
		return ok(ctx, m, r)
	})
	c := streamCircuit(t, s, circuit.Hooks{}, slowChat)
	for i := 0; i < 3; i++ {
		if _, err := c.Complete(context.Background(), llm.ChatRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Status().Targets[0]; st.State != circuit.StateClosed || st.Stats.SlowCallCount != 0 {
		t.Fatalf("state %s, stats %+v", st.State, st.Stats)
	}
}
