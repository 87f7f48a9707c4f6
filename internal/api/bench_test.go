package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/logging"
	"github.com/nexus/nexus/internal/infra/metrics"
)

// generatorFunc adapts a function to api.CodeGenerator.
type generatorFunc func(ctx context.Context, req codegen.Request) (codegen.Result, error)

func (f generatorFunc) Generate(ctx context.Context, req codegen.Request) (codegen.Result, error) {
	return f(ctx, req)
}

// BenchmarkGenerateHandler is POST /generate through the real middleware
// chain (request ID, access log, metrics, panic guard, deadline), decode,
// encode and error handler, with the generator answering at once: the
// API layer's own cost per request, in-process. "floor" is the same
// request and recorder through a handler that writes a fixed body, to
// subtract.
func BenchmarkGenerateHandler(b *testing.B) {
	body := []byte(`{"prompt":"sum the sales column","language":"python"}`)
	server := func(g api.CodeGenerator) http.Handler {
		return api.NewServer(api.Config{
			Logger:         logging.New(io.Discard, slog.LevelInfo),
			Generator:      g,
			Metrics:        metrics.New(config.CircuitNames(), func() []metrics.CircuitState { return nil }),
			MaxBodyBytes:   10 << 20,
			RequestTimeout: 300 * time.Second,
		})
	}
	valid := generatorFunc(func(_ context.Context, req codegen.Request) (codegen.Result, error) {
		return codegen.Result{Code: "result = df['sales'].sum()", Language: req.Language,
			Review: codegen.Review{IsValid: true}, Model: "llama3.1", Circuit: config.CircuitCodeGenerator}, nil
	})
	open := generatorFunc(func(context.Context, codegen.Request) (codegen.Result, error) {
		return codegen.Result{}, &circuit.LLMError{Circuit: config.CircuitCodeGenerator, Kind: llm.KindCircuitOpen,
			State: circuit.StateOpen, RetryAfter: 45 * time.Second, Err: circuit.ErrCircuitOpen,
			Message: "circuit code_generator is held open by an operator; no request was sent"}
	})
	floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	for _, tc := range []struct {
		name string
		h    http.Handler
		want int
	}{
		{"floor", floor, http.StatusOK},
		{"valid", server(valid), http.StatusOK},
		{"circuit-open", server(open), http.StatusServiceUnavailable},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/generate", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				tc.h.ServeHTTP(rec, req)
				if rec.Code != tc.want {
					b.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
				}
			}
		})
	}
}
