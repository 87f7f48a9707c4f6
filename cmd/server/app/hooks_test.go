package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/metrics"
	"github.com/nexus/nexus/internal/infra/metrics/metricstest"
)

// fakeStreamer answers every streamed request with pieces, then err.
type fakeStreamer struct {
	pieces []string
	err    error
}

func (f fakeStreamer) Chat(ctx context.Context, model string, req llm.ChatRequest) (llm.ChatResponse, error) {
	if f.err != nil {
		return llm.ChatResponse{}, f.err
	}
	return llm.ChatResponse{Content: strings.Join(f.pieces, ""), Model: model}, nil
}

func (f fakeStreamer) ChatStream(ctx context.Context, model string, req llm.ChatRequest, onDelta func(string)) (llm.ChatResponse, error) {
	for _, p := range f.pieces {
		onDelta(p)
	}
	if f.err != nil {
		return llm.ChatResponse{}, f.err
	}
	return llm.ChatResponse{Content: strings.Join(f.pieces, ""), Model: model}, nil
}

// mustStreamingCircuit builds the data_analyst circuit, with Run's hooks
// into m, over one target that streams through up.
func mustStreamingCircuit(tb testing.TB, m *metrics.Metrics, up circuit.Chatter) *circuit.Circuit {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	alerts := newAlerter(config.Default().Alerts, log, m)
	tb.Cleanup(alerts.close)
	cc := config.Default().CircuitBreaker.Circuits[config.CircuitDataAnalyst]
	reg := circuit.NewRegistry(circuit.RegistryConfig{Enabled: true, Circuits: []circuit.Spec{{
		Name: config.CircuitDataAnalyst, Settings: settingsOf(cc),
		Targets: []circuit.TargetSpec{{Provider: config.DefaultProvider, Model: "m", URL: "http://llm.test", Endpoint: "http://llm.test/v1", LLM: up}},
	}}}, circuit.Options{Logger: log, Hooks: circuitHooks(m, alerts, func(context.Context, circuit.UsageEvent) {})})
	tb.Cleanup(reg.Close)
	c, err := reg.Lookup(config.CircuitDataAnalyst)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Run's hooks feed the streaming series: every streamed attempt that got a
// first token is timed, and a stream cut after its first token reached the
// caller is counted as an interruption of its circuit and provider.
func TestStreamedCallsShouldReachTheFirstTokenAndInterruptionSeries(t *testing.T) {
	t.Parallel()
	m := metrics.New(config.CircuitNames(), func() []metrics.CircuitState { return nil })
	target := map[string]string{"circuit": config.CircuitDataAnalyst, "provider": config.DefaultProvider, "model": "m"}

	// Given a target that streams a whole answer
	ok := mustStreamingCircuit(t, m, fakeStreamer{pieces: []string{" ", "Hello", " world"}})
	// When it is streamed
	var got strings.Builder
	if _, err := ok.Stream(context.Background(), llm.ChatRequest{}, func(s string) { got.WriteString(s) }); err != nil {
		t.Fatal(err)
	}
	// Then its first token is timed, and nothing is interrupted
	if got.String() != " Hello world" {
		t.Fatalf("streamed %q", got.String())
	}
	if n, found := metricstest.HistogramCount(t, m, "nexus_llm_time_to_first_token_seconds", target); !found || n != 1 {
		t.Fatalf("first tokens = %d (present %v), want 1", n, found)
	}
	if _, found := ok.TimeToFirstTokenP50(); !found {
		t.Fatal("the circuit has no first-token median after a streamed call")
	}
	if v, found := metricstest.Value(t, m, "nexus_stream_interruptions_total", nil); found {
		t.Fatalf("interruptions = %v after a whole stream, want no series", v)
	}

	// Given a target whose stream breaks after its first words
	cut := mustStreamingCircuit(t, m, fakeStreamer{pieces: []string{"Hel"}, err: errors.New("connection reset by peer")})
	// When it is streamed
	_, err := cut.Stream(context.Background(), llm.ChatRequest{}, func(string) {})
	// Then the call is an interruption, counted once, and its first token
	// was timed too
	var le *circuit.LLMError
	if !errors.As(err, &le) || !le.Interrupted {
		t.Fatalf("err = %v, want an interrupted *circuit.LLMError", err)
	}
	if v, found := metricstest.Value(t, m, "nexus_stream_interruptions_total",
		map[string]string{"circuit": config.CircuitDataAnalyst, "provider": config.DefaultProvider}); !found || v != 1 {
		t.Fatalf("interruptions = %v (present %v), want 1", v, found)
	}
	if n, _ := metricstest.HistogramCount(t, m, "nexus_llm_time_to_first_token_seconds", target); n != 2 {
		t.Fatalf("first tokens = %d, want 2", n)
	}
}
