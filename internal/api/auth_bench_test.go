package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/logging"
	"github.com/nexus/nexus/internal/infra/ratelimit"
)

// BenchmarkGuard is what keys and limits add to POST /generate in the API
// layer (the generator answers at once): "open" has no Access at all;
// "keys-local" finds one of 20 keys by digest, checks its scope and
// counts it against both windows in this process. The Redis store's own
// cost is BenchmarkLimiter's (internal/infra/ratelimit).
func BenchmarkGuard(b *testing.B) {
	body := []byte(`{"prompt":"sum the sales column","language":"python"}`)
	gen := generatorFunc(func(_ context.Context, req codegen.Request) (codegen.Result, error) {
		return codegen.Result{Code: "result = 1", Language: req.Language, Review: codegen.Review{IsValid: true}}, nil
	})
	rl := config.Default().RateLimit
	rl.PerMinute, rl.Burst, rl.PerHour = 1<<30, 1<<30, 1<<30
	var keys []config.APIKey
	for i := range 20 {
		sum := sha256.Sum256([]byte{byte(i)})
		keys = append(keys, config.APIKey{Name: "k" + string(rune('a'+i)), SHA256: hex.EncodeToString(sum[:]), Scopes: []string{config.ScopeGenerate}})
	}
	access := api.NewAccess(api.AccessConfig{Limiter: ratelimit.NewLocal(nil, 0)})
	access.Apply(config.Auth{Keys: keys}, rl)
	for _, tc := range []struct {
		name   string
		access *api.Access
		key    string
	}{
		{"open", nil, ""},
		{"keys-local", access, string([]byte{19})},
	} {
		h := api.NewServer(api.Config{Logger: logging.New(io.Discard, slog.LevelInfo), Generator: gen,
			MaxBodyBytes: 10 << 20, RequestTimeout: 300 * time.Second, Access: tc.access})
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/generate", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if tc.key != "" {
					req.Header.Set("X-API-Key", tc.key)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
