package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/codegen"
	"github.com/nexus/nexus/internal/infra/logging"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Each kind of source error maps to one status and code, in the one error
// handler: the SQL's faults as a dataset's, a database out of reach as 503
// with Retry-After, never as an LLM failure; the message is redacted once
// more on the way out.
func TestSourceErrorsShouldMapToStatusAndCode(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://reader:hunter2-secret@db:5432/sales"
	cases := []struct {
		name   string
		err    error
		status int
		code   string
		msg    string
		retry  string
	}{
		{"unsafe_sql", &pgsource.Error{Source: "sales", Kind: pgsource.KindUnsafeSQL, Message: "SQL refused: only one statement is allowed"},
			422, "unsafe_sql", "SQL refused: only one statement is allowed", ""},
		{"sql_error", &pgsource.Error{Source: "sales", Kind: pgsource.KindSQL, Message: `column "nope" does not exist`},
			422, "sql_error", `column "nope" does not exist`, ""},
		{"timeout", &pgsource.Error{Source: "sales", Kind: pgsource.KindTimeout, Message: "the query was cancelled: it ran past the statement timeout of 5s"},
			422, "query_timeout", "the query was cancelled: it ran past the statement timeout of 5s", ""},
		{"unavailable", &pgsource.Error{Source: "sales", Kind: pgsource.KindUnavailable, Message: "the database is unavailable: " + dsn + " refused"},
			503, "source_unavailable", `source "sales": the database is unavailable: [REDACTED] refused`, "5"},
		{"unsafe_role", &pgsource.Error{Source: "sales", Kind: pgsource.KindUnsafeRole, Message: `role "app" holds INSERT on public.orders; use a read-only role (see README)`},
			503, "source_unsafe_role", `source "sales": role "app" holds INSERT on public.orders; use a read-only role (see README)`, ""},
		{"not_found", &pgsource.Error{Source: "sales", Kind: pgsource.KindNotFound, Message: `no table "x" among the source's tables (public.a)`},
			404, "table_not_found", `no table "x" among the source's tables (public.a)`, ""},
		{"invalid_config", &pgsource.Error{Source: "sales", Kind: pgsource.KindInvalidConfig, Message: "the DSN is not valid"},
			500, "internal_error", "internal server error", ""},
		{"unknown source", fmt.Errorf("%w: %q", pgsource.ErrUnknownSource, "nope"), 404, "source_not_found", "no source with that name", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := api.NewServer(api.Config{
				Logger:       logging.New(io.Discard, slog.LevelInfo),
				Redactor:     redact.New(dsn),
				MaxBodyBytes: 1 << 20,
				Generator: generatorFunc(func(context.Context, codegen.Request) (codegen.Result, error) {
					return codegen.Result{}, tc.err
				}),
			})
			req := httptest.NewRequest(http.MethodPost, "/generate", strings.NewReader(`{"prompt":"p","language":"sql","source":"sales"}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var body struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tc.status || body.Error.Code != tc.code || body.Error.Message != tc.msg || rec.Header().Get("Retry-After") != tc.retry {
				t.Fatalf("got %d %s (Retry-After %q), want %d %s %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"), tc.status, tc.code, tc.msg)
			}
		})
	}
}
