package agent_test

// In-package fakes of the analyst's own dependencies: the circuits it
// calls (agent.Completer) and the data it reads (agent.Tables and
// agent.Table). Each fake answers from a script and records what it was
// asked, so that tests assert exact call counts and prompts. A call past
// the end of a script fails the test.

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/pgsource"
)

// llmStep is one scripted reply of a fakeLLM.
type llmStep func(ctx context.Context) (content string, err error)

// says replies with content.
func says(content string) llmStep {
	return func(context.Context) (string, error) { return content, nil }
}

// fails replies with err.
func fails(err error) llmStep {
	return func(context.Context) (string, error) { return "", err }
}

// saysSQL replies with query in a fenced sql block, as the planner does.
func saysSQL(query string) llmStep { return says("Here you go:\n```sql\n" + query + "\n```") }

// fakeLLM is a Completer that answers from a script, one step per call.
// The analyst calls its circuits one at a time, so it needs no lock.
type fakeLLM struct {
	tb     testing.TB
	name   string
	script []llmStep
	calls  []llm.ChatRequest
}

func newLLM(tb testing.TB, name string) *fakeLLM { return &fakeLLM{tb: tb, name: name} }

// model is the model the fake reports having answered with.
func (f *fakeLLM) model() string { return f.name + "-model" }

// then appends steps to the script.
func (f *fakeLLM) then(steps ...llmStep) *fakeLLM {
	f.script = append(f.script, steps...)
	return f
}

func (f *fakeLLM) Name() string { return f.name }

func (f *fakeLLM) Complete(ctx context.Context, req llm.ChatRequest) (llm.ChatResponse, error) {
	req.Messages = slices.Clone(req.Messages) // as sent, whatever the caller does next
	f.calls = append(f.calls, req)
	n := len(f.calls)
	if n > len(f.script) {
		f.tb.Errorf("%s: unscripted call %d", f.name, n)
		return llm.ChatResponse{}, &circuit.LLMError{Circuit: f.name, Kind: llm.KindUnavailable, Message: "unscripted call"}
	}
	content, err := f.script[n-1](ctx)
	if err != nil {
		return llm.ChatResponse{}, err
	}
	return llm.ChatResponse{Content: content, Model: f.model()}, nil
}

// lastMessage is the last message of the i-th request (from 0).
func (f *fakeLLM) lastMessage(t *testing.T, i int) string {
	t.Helper()
	if i >= len(f.calls) {
		t.Fatalf("%s: no request %d (%d made)", f.name, i, len(f.calls))
	}
	msgs := f.calls[i].Messages
	return msgs[len(msgs)-1].Content
}

// circuitOpen is what a circuit returns when it refuses a call.
func circuitOpen(name string) *circuit.LLMError {
	return &circuit.LLMError{Circuit: name, Kind: llm.KindCircuitOpen, State: "open",
		Message: "circuit " + name + " is open after repeated LLM failures; no request was sent", Err: circuit.ErrCircuitOpen}
}

// query is one scripted reply of a fakeTable's Query.
type query struct {
	res dataset.Result
	err error
}

// fakeTable is a Table with a fixed schema, profile and sample whose
// queries answer from a script.
type fakeTable struct {
	tb         testing.TB
	schema     []dataset.Column
	profile    dataset.Profile
	profileErr error
	sample     dataset.Result
	script     []query
	// multi, when set, are the tables of a dataset of several, sampled
	// from samples by name.
	multi   []dataset.Table
	samples map[string]dataset.Result
	// dialect is agent.DialectDuckDB when empty.
	dialect string

	queries []string
	opens   int
	closes  int
}

func (f *fakeTable) Schema() []dataset.Column { return f.schema }

func (f *fakeTable) Dialect() string {
	if f.dialect == "" {
		return agent.DialectDuckDB
	}
	return f.dialect
}

// Tables lists multi, or the fake's one table, named data.
func (f *fakeTable) Tables() []dataset.Table {
	if f.multi != nil {
		return f.multi
	}
	return []dataset.Table{{Name: "data", Rows: f.profile.RowCount, Columns: f.schema, Profile: f.profile}}
}

func (f *fakeTable) SampleTable(ctx context.Context, table string, n int) (dataset.Result, error) {
	if f.multi != nil {
		res, ok := f.samples[table]
		if !ok || n < 1 {
			f.tb.Errorf("sample of %d rows of table %q", n, table)
		}
		return res, nil
	}
	if table != "data" {
		f.tb.Errorf("sample of table %q", table)
	}
	return f.Sample(ctx, n)
}

func (f *fakeTable) Profile(context.Context) (dataset.Profile, error) {
	return f.profile, f.profileErr
}

func (f *fakeTable) Sample(_ context.Context, n int) (dataset.Result, error) {
	if n < 1 {
		f.tb.Errorf("sample of %d rows", n)
	}
	return f.sample, nil
}

func (f *fakeTable) Query(_ context.Context, sql string) (dataset.Result, error) {
	f.queries = append(f.queries, sql)
	n := len(f.queries)
	if n > len(f.script) {
		f.tb.Errorf("unscripted query %d: %s", n, sql)
		return dataset.Result{}, &dataset.Error{Kind: dataset.KindSQL, Message: "unscripted query"}
	}
	return f.script[n-1].res, f.script[n-1].err
}

func (f *fakeTable) Close() error {
	f.closes++
	return nil
}

// inlineOpen records one OpenInline call.
type inlineOpen struct{ format, content string }

// fakeTables serves stored tables by id and one inline table (or
// inlineErr). Every table it opens must be closed once by the end of the
// test.
type fakeTables struct {
	stored    map[string]*fakeTable
	inline    *fakeTable
	inlineErr error
	inlines   []inlineOpen
}

func (f *fakeTables) Open(_ context.Context, id string) (agent.Table, error) {
	t, ok := f.stored[id]
	if !ok {
		return nil, fmt.Errorf("dataset %q: %w", id, dataset.ErrNotFound)
	}
	t.opens++
	return t, nil
}

func (f *fakeTables) OpenInline(_ context.Context, format, content string) (agent.Table, error) {
	f.inlines = append(f.inlines, inlineOpen{format, content})
	if f.inlineErr != nil {
		return nil, f.inlineErr
	}
	f.inline.opens++
	return f.inline, nil
}

// fakeSources serves live sources by name, as agent.SourceOpener.
type fakeSources struct {
	byName map[string]*fakeTable
	err    error // returned by every OpenSource when set
}

func (f *fakeSources) OpenSource(_ context.Context, name string) (agent.Table, error) {
	if f.err != nil {
		return nil, f.err
	}
	t, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", pgsource.ErrUnknownSource, name)
	}
	t.opens++
	return t, nil
}

// The sales data every test reads: a stored dataset ds_sales, or the same
// table sent inline.
const (
	salesID = "ds_sales"
	bySales = "SELECT region, sum(sales) AS total FROM data GROUP BY region ORDER BY total DESC"
)

func salesTable(tb testing.TB) *fakeTable {
	return &fakeTable{
		tb:     tb,
		schema: []dataset.Column{{Name: "region", Type: "VARCHAR"}, {Name: "sales", Type: "BIGINT"}},
		profile: dataset.Profile{RowCount: 4, Columns: []dataset.ColumnProfile{
			{Name: "region", Type: "VARCHAR", Distinct: 3, Min: "East", Max: "South",
				TopValues: []dataset.TopValue{{Value: "North", Count: 2}, {Value: "East", Count: 1}, {Value: "South", Count: 1}}},
			{Name: "sales", Type: "BIGINT", Distinct: 4, Min: int64(40), Max: int64(100), TopValues: []dataset.TopValue{}},
		}},
		sample: dataset.Result{
			Columns:  []dataset.Column{{Name: "region", Type: "VARCHAR"}, {Name: "sales", Type: "BIGINT"}},
			Rows:     [][]any{{"North", int64(100)}, {"North", int64(60)}, {"East", int64(60)}, {"South", int64(40)}},
			RowCount: 4,
		},
	}
}

// salesResult is bySales's result.
func salesResult() dataset.Result {
	return dataset.Result{
		Columns:  []dataset.Column{{Name: "region", Type: "VARCHAR"}, {Name: "total", Type: "HUGEINT"}},
		Rows:     [][]any{{"North", int64(160)}, {"East", int64(60)}, {"South", int64(40)}},
		RowCount: 3,
	}
}

// sqlError is a query error as the dataset package reports it.
func sqlError(msg string) *dataset.Error { return &dataset.Error{Kind: dataset.KindSQL, Message: msg} }

// rig is an analyst's dependencies, all fakes.
type rig struct {
	planner, answerer, critic, charter *fakeLLM
	table                              *fakeTable
	tables                             *fakeTables
	cfg                                agent.Config
}

// newRig returns fakes for every dependency, with the sales table stored
// as ds_sales and also served inline, and checks when the test ends that
// each table opened was closed exactly once.
func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{
		planner:  newLLM(t, "code_generator"),
		answerer: newLLM(t, "data_analyst"),
		critic:   newLLM(t, "cot_engine"),
		charter:  newLLM(t, "visualization"),
		table:    salesTable(t),
	}
	r.tables = &fakeTables{stored: map[string]*fakeTable{salesID: r.table}, inline: r.table}
	r.cfg = agent.Config{
		Answerer: r.answerer, Planner: r.planner, Critic: r.critic, Charter: r.charter,
		Data: r.tables, MaxIterations: 2, MaxSQLAttempts: 3,
	}
	t.Cleanup(func() {
		if r.table.closes != r.table.opens {
			t.Errorf("table opened %d times, closed %d times", r.table.opens, r.table.closes)
		}
	})
	return r
}

func (r *rig) analyze(ctx context.Context, req agent.Request) (agent.Answer, error) {
	return agent.NewAnalyst(r.cfg).Analyze(ctx, req)
}

func (r *rig) mustAnalyze(t *testing.T, req agent.Request) agent.Answer {
	t.Helper()
	ans, err := r.analyze(context.Background(), req)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return ans
}

// expectCalls checks how many requests each circuit received, in the order
// planner, answerer, critic, charter, and how many queries ran.
func (r *rig) expectCalls(t *testing.T, planner, answerer, critic, charter, queries int) {
	t.Helper()
	got := []int{len(r.planner.calls), len(r.answerer.calls), len(r.critic.calls), len(r.charter.calls), len(r.table.queries)}
	want := []int{planner, answerer, critic, charter, queries}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls (planner, answerer, critic, charter, queries) = %v, want %v", got, want)
	}
}

// expectAnswer compares got with want, ignoring durations and the chart
// (see expectChart).
func expectAnswer(t *testing.T, got, want agent.Answer) {
	t.Helper()
	got.Duration, got.Chart, want.Chart = 0, nil, nil
	got.Steps = append([]agent.Step(nil), got.Steps...)
	for i := range got.Steps {
		if got.Steps[i].Duration < 0 {
			t.Errorf("step %s took %v", got.Steps[i].Step, got.Steps[i].Duration)
		}
		got.Steps[i].Duration = 0
	}
	if !reflect.DeepEqual(got.Steps, want.Steps) {
		t.Errorf("steps:\n got  %+v\n want %+v", got.Steps, want.Steps)
	}
	got.Steps, want.Steps = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("answer:\n got  %#v\n want %#v", got, want)
	}
}

// steps builds the expected steps in pipeline order.
func steps(plan, run, answer, review, chart agent.Step) []agent.Step {
	plan.Step, run.Step, answer.Step, review.Step, chart.Step = agent.StepPlan, agent.StepRun, agent.StepAnswer, agent.StepReview, agent.StepChart
	plan.Circuit, answer.Circuit, review.Circuit, chart.Circuit = "code_generator", "data_analyst", "cot_engine", "visualization"
	return []agent.Step{plan, run, answer, review, chart}
}

func ok(attempts int) agent.Step { return agent.Step{Outcome: agent.OutcomeOK, Attempts: attempts} }

func okBecause(attempts int, detail string) agent.Step {
	return agent.Step{Outcome: agent.OutcomeOK, Attempts: attempts, Detail: detail}
}

func fellBack(attempts int, detail string) agent.Step {
	return agent.Step{Outcome: agent.OutcomeFallback, Attempts: attempts, Detail: detail}
}

func skipped(detail string) agent.Step {
	return agent.Step{Outcome: agent.OutcomeSkipped, Detail: detail}
}
