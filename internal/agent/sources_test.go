package agent_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/pgsource"
)

// salesSource is a live source of one table, orders, whose statistics are
// the catalog's estimates.
func salesSource(r *rig) *fakeTable {
	cols := []dataset.Column{{Name: "region", Type: "text"}, {Name: "amount", Type: "numeric(10,2)"}}
	src := &fakeTable{
		tb:      r.table.tb,
		dialect: agent.DialectPostgres,
		multi: []dataset.Table{{Name: "orders", Rows: 1200, Columns: cols, Profile: dataset.Profile{RowCount: 1200,
			Columns: []dataset.ColumnProfile{{Name: "region", Type: "text", Distinct: 3, TopValues: []dataset.TopValue{{Value: "North", Count: 600}}}}}}},
		samples: map[string]dataset.Result{"orders": {Columns: cols, Rows: [][]any{{"North", "12.50"}}, RowCount: 1}},
	}
	r.cfg.Sources = &fakeSources{byName: map[string]*fakeTable{"sales": src}}
	return src
}

func pgError(kind pgsource.Kind, msg string) *pgsource.Error {
	return &pgsource.Error{Source: "sales", Kind: kind, Message: msg}
}

// The planner of a source is told the dialect and sees its one table by
// name (no data alias) with the catalog's estimates; a refusal by the
// source's guard goes back to it like a dataset's error.
func TestAnalyzeOfASourceShouldNameTheDialectAndSendRefusalsBack(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := salesSource(r)
	r.planner.then(saysSQL("SELECT pg_read_file('/etc/passwd')"), saysSQL("SELECT region FROM orders"))
	src.script = []query{
		{err: pgError(pgsource.KindUnsafeSQL, "SQL refused: calls pg_read_file, which is not allowed")},
		{res: dataset.Result{Columns: []dataset.Column{{Name: "region", Type: "text"}}, Rows: [][]any{{"North"}}, RowCount: 1}},
	}
	r.answerer.then(says("North."))

	ans := r.mustAnalyze(t, agent.Request{Query: "Which region?", Source: "sales"})

	if ans.Answer != "North." || ans.SQL != "SELECT region FROM orders" {
		t.Fatalf("answer: %+v", ans)
	}
	first := r.planner.calls[0].Messages
	if sys := first[0].Content; !strings.Contains(sys, "You write exactly one read-only PostgreSQL SQL query") ||
		!strings.Contains(sys, "use PostgreSQL's syntax and functions") || strings.Contains(sys, "DuckDB") || strings.Contains(sys, "table named data") {
		t.Errorf("system prompt:\n%s", sys)
	}
	want := "The data has 1 table: orders.\n\n" +
		"Table `orders`: about 1200 rows (the catalog's estimate), 2 columns.\nColumns:\n" +
		"- \"region\" text (nulls 0, distinct 3, top: North×600)\n- \"amount\" numeric(10,2)\n" +
		"Sample rows:\nregion | amount\nNorth | 12.50\n\n" +
		"Likely join keys: none (no column name appears in two tables with a compatible type).\n" +
		"\nQuestion: Which region?"
	if got := first[1].Content; got != want {
		t.Errorf("plan prompt:\n%s\nwant:\n%s", got, want)
	}
	if retry := r.planner.lastMessage(t, 1); retry != "That query failed: SQL refused: calls pg_read_file, which is not allowed\n"+
		"Write one corrected PostgreSQL SELECT over the tables listed, in a ```sql block." {
		t.Errorf("retry prompt: %q", retry)
	}
}

// A source that cannot be reached at the run step fails the request with
// its own error: not sent back to the planner, not answered from the
// profile, no further LLM call.
func TestAnalyzeShouldFailWhenTheSourceIsUnreachableAtTheRunStep(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := salesSource(r)
	down := pgError(pgsource.KindUnavailable, "the database is unavailable: connection refused")
	r.planner.then(saysSQL("SELECT region FROM orders"))
	src.script = []query{{err: down}}

	_, err := r.analyze(t.Context(), agent.Request{Query: "Which region?", Source: "sales"})

	if !errors.Is(err, down) {
		t.Fatalf("err = %v, want the source's", err)
	}
	if len(r.planner.calls) != 1 || len(r.answerer.calls) != 0 || len(r.critic.calls) != 0 || len(r.charter.calls) != 0 {
		t.Fatalf("LLM calls after the source failed: planner %d, answerer %d", len(r.planner.calls), len(r.answerer.calls))
	}
	if src.closes != src.opens || src.opens != 1 {
		t.Fatalf("opened %d, closed %d", src.opens, src.closes)
	}
}

// A source that cannot be reached when the request starts fails it before
// any LLM call; an unknown or unconfigured source is ErrUnknownSource.
func TestAnalyzeShouldFailBeforeTheLLMWhenTheSourceCannotBeOpened(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	salesSource(r)
	_, err := r.analyze(t.Context(), agent.Request{Query: "q", Source: "nope"})
	if !errors.Is(err, pgsource.ErrUnknownSource) {
		t.Fatalf("unknown source: %v", err)
	}
	down := pgError(pgsource.KindUnavailable, "the database is unavailable: connection refused")
	r.cfg.Sources = &fakeSources{err: down}
	if _, err := r.analyze(t.Context(), agent.Request{Query: "q", Source: "sales"}); !errors.Is(err, down) {
		t.Fatalf("unreachable: %v", err)
	}
	r.cfg.Sources = nil
	if _, err := r.analyze(t.Context(), agent.Request{Query: "q", Source: "sales"}); !errors.Is(err, pgsource.ErrUnknownSource) {
		t.Fatalf("no sources: %v", err)
	}
	r.expectCalls(t, 0, 0, 0, 0, 0)
}

// With no LLM at all, the error names the source, which can still be read
// without it.
func TestAnalyzeOfASourceShouldBeUnavailableWithTheSourceName(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	salesSource(r)
	r.planner.then(fails(circuitOpen("code_generator")))
	r.answerer.then(fails(circuitOpen("data_analyst")))

	_, err := r.analyze(t.Context(), agent.Request{Query: "q", Source: "sales"})

	var ue *agent.UnavailableError
	var le *circuit.LLMError
	if !errors.As(err, &ue) || !errors.As(err, &le) || ue.Source != "sales" || ue.DatasetID != "" || ue.Profile != nil {
		t.Fatalf("err = %#v", err)
	}
}
