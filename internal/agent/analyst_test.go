package agent_test

// The analyst's pipeline (plan, run, answer, review, chart) and each of its
// degraded modes, with fakes of its circuits and data (fakes_test.go). The
// same pipeline is tested end to end through the HTTP API in test/.

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
)

const question = "Which region sells most?"

func TestAnalyzeShouldPlanQueryAndAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		req        agent.Request
		wantInline []inlineOpen
	}{
		{name: "stored dataset", req: agent.Request{Query: question, DatasetID: salesID, Model: "llama3.1"}},
		{name: "inline data",
			req:        agent.Request{Query: question, Data: &agent.InlineData{Format: "csv", Content: "region,sales\nNorth,100\n"}, Model: "llama3.1"},
			wantInline: []inlineOpen{{"csv", "region,sales\nNorth,100\n"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a planner that writes SQL, a table that runs it and an
			// analyst that explains the result
			r := newRig(t)
			r.planner.then(saysSQL(bySales))
			r.table.script = []query{{res: salesResult()}}
			r.answerer.then(says("  North leads with 160.\n"))

			// When the question is asked
			ans := r.mustAnalyze(t, tt.req)

			// Then the answer explains the computed result, and neither the
			// critic nor the charter was asked
			res := salesResult()
			expectAnswer(t, ans, agent.Answer{
				Answer: "North leads with 160.", SQL: bySales,
				Columns: res.Columns, Rows: res.Rows, RowCount: 3,
				Steps:    steps(ok(1), ok(1), ok(1), skipped("review not requested"), skipped("chart not requested")),
				Model:    "data_analyst-model",
				Degraded: []string{}, Circuit: "data_analyst",
			})
			r.expectCalls(t, 1, 1, 0, 0, 1)
			if !reflect.DeepEqual(r.table.queries, []string{bySales}) {
				t.Fatalf("queries: %q", r.table.queries)
			}
			if !reflect.DeepEqual(r.tables.inlines, tt.wantInline) {
				t.Fatalf("inline opens: %v, want %v", r.tables.inlines, tt.wantInline)
			}
			// The planner saw the schema, profile, sample and question; the
			// analyst saw the SQL and its result.
			plan := r.planner.lastMessage(t, 0)
			for _, want := range []string{"Table `data`: 4 rows, 2 columns.", `- "region" VARCHAR (nulls 0, distinct 3, min East, max South, top: North×2, East×1, South×1)`,
				"North | 100", "Question: " + question} {
				if !strings.Contains(plan, want) {
					t.Errorf("plan prompt lacks %q:\n%s", want, plan)
				}
			}
			if got := r.answerer.lastMessage(t, 0); !strings.HasPrefix(got, "SQL:\n"+bySales+"\nResult: 3 rows\nregion | total\nNorth | 160\n") {
				t.Errorf("answer prompt:\n%s", got)
			}
			for _, c := range [][]llm.ChatRequest{r.planner.calls, r.answerer.calls} {
				if c[0].Model != "llama3.1" {
					t.Errorf("request model %q, want the caller's", c[0].Model)
				}
			}
		})
	}
}

func TestAnalyzeShouldSendTheSQLErrorBackAndUseTheCorrectedQuery(t *testing.T) {
	t.Parallel()
	// Given a first query that fails to bind and a corrected second one
	const bad = "SELECT regoin, sum(sales) FROM data GROUP BY regoin"
	r := newRig(t)
	r.planner.then(saysSQL(bad), saysSQL(bySales))
	r.table.script = []query{{err: sqlError(`Binder Error: Referenced column "regoin" not found`)}, {res: salesResult()}}
	r.answerer.then(says("North leads with 160."))

	// When the question is asked
	ans := r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID})

	// Then the planner is told the error after its own reply, and the
	// second query's result is the one answered from
	r.expectCalls(t, 2, 1, 0, 0, 2)
	if !reflect.DeepEqual(r.table.queries, []string{bad, bySales}) {
		t.Fatalf("queries: %q", r.table.queries)
	}
	retry := append(r.planner.calls[0].Messages,
		llm.Message{Role: "assistant", Content: "Here you go:\n```sql\n" + bad + "\n```"},
		llm.Message{Role: "user", Content: "That query failed: Binder Error: Referenced column \"regoin\" not found\n" +
			"Write one corrected DuckDB SELECT over the table data, in a ```sql block."})
	if !reflect.DeepEqual(r.planner.calls[1].Messages, retry) {
		t.Fatalf("retry prompt:\n got  %q\n want %q", r.planner.calls[1].Messages, retry)
	}
	res := salesResult()
	expectAnswer(t, ans, agent.Answer{
		Answer: "North leads with 160.", SQL: bySales,
		Columns: res.Columns, Rows: res.Rows, RowCount: 3,
		Steps:    steps(ok(2), ok(2), ok(1), skipped("review not requested"), skipped("chart not requested")),
		Model:    "data_analyst-model",
		Degraded: []string{}, Circuit: "data_analyst",
	})
}

// Only a *dataset.Error's message, which the dataset package scrubs, may
// reach the LLM.
func TestAnalyzeShouldNotShowThePlannerAnErrorOfUnknownOrigin(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.planner.then(saysSQL("SELECT 1"), saysSQL(bySales))
	r.table.script = []query{{err: errors.New("open /srv/nexus/data/ds_sales.duckdb: permission denied")}, {res: salesResult()}}
	r.answerer.then(says("North leads with 160."))

	r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID})

	if got := r.planner.lastMessage(t, 1); !strings.HasPrefix(got, "That query failed: the query failed\n") {
		t.Fatalf("retry prompt: %q", got)
	}
}

func TestAnalyzeShouldAnswerFromTheProfileWhenNoQuerySucceeds(t *testing.T) {
	t.Parallel()
	// Given three queries (datasets.max_sql_attempts) that all fail
	r := newRig(t)
	r.planner.then(saysSQL("SELECT a FROM data"), saysSQL("SELECT b FROM data"), saysSQL("SELECT c FROM data"))
	r.table.script = []query{{err: sqlError("no a")}, {err: sqlError("no b")}, {err: sqlError("no c")}}
	r.answerer.then(says("From the profile, North likely leads."))

	// When the question is asked, with a chart
	ans := r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID, Visualize: true})

	// Then the planner is not asked a fourth time, the analyst answers
	// from the profile and sample, and there is nothing to chart
	r.expectCalls(t, 3, 1, 0, 0, 3)
	expectAnswer(t, ans, agent.Answer{
		Answer: "From the profile, North likely leads.", SQL: "",
		Columns: []dataset.Column{}, Rows: [][]any{},
		Steps: steps(ok(3), fellBack(3, "no query succeeded in 3 attempts; last error: no c"),
			okBecause(1, "answered from the profile and sample: no query result"),
			skipped("review not requested"), skipped("no query result to chart")),
		Model:        "data_analyst-model",
		FallbackUsed: true, Degraded: []string{agent.StepRun}, Circuit: "data_analyst",
	})
	// The third attempt sees the whole conversation, both errors included.
	var told []string
	for _, m := range r.planner.calls[2].Messages[2:] {
		told = append(told, m.Role+": "+strings.SplitN(m.Content, "\n", 2)[0])
	}
	if want := []string{"assistant: Here you go:", "user: That query failed: no a", "assistant: Here you go:", "user: That query failed: no b"}; !reflect.DeepEqual(told, want) {
		t.Errorf("third plan request after the prompt: %q, want %q", told, want)
	}
	if got := r.answerer.lastMessage(t, 0); !strings.HasPrefix(got, "Table `data`: 4 rows, 2 columns.") || !strings.HasSuffix(got, "Question: "+question) {
		t.Fatalf("profile prompt:\n%s", got)
	}
}

func TestAnalyzeShouldAnswerFromTheProfileWhenThePlannerIsAway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		planner       []llmStep
		queries       []query
		plan, run     agent.Step
		wantQueries   int
		wantDegraded  []string
		wantPlanCalls int
	}{
		{name: "open before the first query", planner: []llmStep{fails(circuitOpen("code_generator"))},
			plan: fellBack(1, "circuit_open: circuit code_generator is open after repeated LLM failures; no request was sent"),
			run:  skipped("no query was written"), wantDegraded: []string{agent.StepPlan}, wantPlanCalls: 1},
		{name: "open while correcting a failed query",
			planner:     []llmStep{saysSQL("SELECT a FROM data"), fails(circuitOpen("code_generator"))},
			queries:     []query{{err: sqlError("no a")}},
			plan:        fellBack(2, "no corrected query: circuit_open: circuit code_generator is open after repeated LLM failures; no request was sent"),
			run:         fellBack(1, "no query succeeded: no a"),
			wantQueries: 1, wantDegraded: []string{agent.StepPlan, agent.StepRun}, wantPlanCalls: 2},
		{name: "a rejected request degrades like an open circuit",
			planner: []llmStep{fails(&circuit.LLMError{Circuit: "code_generator", Kind: llm.KindRejected, Status: 400, Message: "context length exceeded"})},
			plan:    fellBack(1, "llm_rejected_request: context length exceeded"),
			run:     skipped("no query was written"), wantDegraded: []string{agent.StepPlan}, wantPlanCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.planner.then(tt.planner...)
			r.table.script = tt.queries
			r.answerer.then(says("From the profile, North likely leads."))

			ans := r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID})

			r.expectCalls(t, tt.wantPlanCalls, 1, 0, 0, tt.wantQueries)
			expectAnswer(t, ans, agent.Answer{
				Answer:  "From the profile, North likely leads.",
				Columns: []dataset.Column{}, Rows: [][]any{},
				Steps: steps(tt.plan, tt.run, okBecause(1, "answered from the profile and sample: no query result"),
					skipped("review not requested"), skipped("chart not requested")),
				Model:        "data_analyst-model",
				FallbackUsed: true, Degraded: tt.wantDegraded, Circuit: "data_analyst",
			})
		})
	}
}

func TestAnalyzeShouldSummarizeTheResultWhenTheAnalystIsAway(t *testing.T) {
	t.Parallel()
	// Given a query that runs and an open data_analyst circuit
	r := newRig(t)
	r.planner.then(saysSQL(bySales))
	r.table.script = []query{{res: salesResult()}}
	r.answerer.then(fails(circuitOpen("data_analyst")))

	// When the question is asked with a review
	ans := r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID, Review: true})

	// Then the answer is a deterministic summary, which is not reviewed
	r.expectCalls(t, 1, 1, 0, 0, 1)
	res := salesResult()
	expectAnswer(t, ans, agent.Answer{
		Answer: "The query returned 3 rows with columns region, total; the first is region = North, total = 160.",
		SQL:    bySales, Columns: res.Columns, Rows: res.Rows, RowCount: 3,
		Review: &agent.Review{Verdict: "skipped"},
		Steps: steps(ok(1), ok(1),
			fellBack(1, "deterministic summary of the result: circuit_open: circuit data_analyst is open after repeated LLM failures; no request was sent"),
			skipped("the answer is a deterministic summary"), skipped("chart not requested")),
		Model:        "",
		FallbackUsed: true, Degraded: []string{agent.StepAnswer}, Circuit: "data_analyst",
	})
}

func TestAnalyzeShouldBeUnavailableWithTheProfileWhenNoPathIsLeft(t *testing.T) {
	t.Parallel()
	// Given open code_generator and data_analyst circuits
	r := newRig(t)
	r.planner.then(fails(circuitOpen("code_generator")))
	answererErr := circuitOpen("data_analyst")
	r.answerer.then(fails(answererErr))

	// When the question is asked
	ans, err := r.analyze(context.Background(), agent.Request{Query: question, DatasetID: salesID})

	// Then the error carries the analyst's error and the dataset's profile
	var ue *agent.UnavailableError
	if !errors.As(err, &ue) || ue.Err != answererErr || !errors.Is(err, circuit.ErrCircuitOpen) {
		t.Fatalf("err = %#v, want an *UnavailableError wrapping the data_analyst error", err)
	}
	if ue.Profile == nil || !reflect.DeepEqual(*ue.Profile, r.table.profile) {
		t.Fatalf("profile = %+v, want %+v", ue.Profile, r.table.profile)
	}
	if !reflect.DeepEqual(ans, agent.Answer{}) {
		t.Fatalf("answer with an error: %+v", ans)
	}
	r.expectCalls(t, 1, 1, 0, 0, 0)
}

func TestAnalyzeShouldReturnTheAnalystErrorForADirectQuestion(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	answererErr := circuitOpen("data_analyst")
	r.answerer.then(fails(answererErr))

	ans, err := r.analyze(context.Background(), agent.Request{Query: "What is a median?"})

	var le *circuit.LLMError
	if !errors.As(err, &le) || le != answererErr {
		t.Fatalf("err = %#v, want the data_analyst error itself", err)
	}
	var ue *agent.UnavailableError
	if errors.As(err, &ue) || !reflect.DeepEqual(ans, agent.Answer{}) {
		t.Fatalf("err %v, answer %+v: want the bare LLM error and no answer", err, ans)
	}
	r.expectCalls(t, 0, 1, 0, 0, 0)
}

func TestAnalyzeShouldAnswerADirectQuestionWithoutData(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.answerer.then(says("The middle value of a sorted list."))
	r.critic.then(says("VALID"))

	ans := r.mustAnalyze(t, agent.Request{Query: "What is a median?", Review: true, Visualize: true})

	r.expectCalls(t, 0, 1, 1, 0, 0)
	expectAnswer(t, ans, agent.Answer{
		Answer: "The middle value of a sorted list.",
		Review: &agent.Review{Verdict: "valid"},
		Steps:  steps(skipped("no data to query"), skipped("no data to query"), ok(1), ok(1), skipped("no data to chart")),
		Model:  "data_analyst-model", Degraded: []string{}, Circuit: "data_analyst",
	})
	if got := r.critic.lastMessage(t, 0); !strings.HasPrefix(got, "No data was provided.\nQuestion: What is a median?\nAnswer to review:\nThe middle value of a sorted list.") {
		t.Fatalf("critic prompt:\n%s", got)
	}
	if r.table.opens != 0 || len(r.tables.inlines) != 0 {
		t.Fatal("data opened for a question without data")
	}
}

func TestAnalyzeShouldReturnTheContextErrorWhenTheCallerHangsUp(t *testing.T) {
	t.Parallel()
	// Given a caller that hangs up while the analyst is answering
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRig(t)
	r.planner.then(saysSQL(bySales))
	r.table.script = []query{{res: salesResult()}}
	r.answerer.then(func(context.Context) (string, error) {
		cancel()
		return "", &circuit.LLMError{Circuit: "data_analyst", Kind: llm.KindCanceled, Message: "the caller went away", Err: context.Canceled}
	})

	// When the question is asked
	ans, err := r.analyze(ctx, agent.Request{Query: question, DatasetID: salesID, Review: true, Visualize: true})

	// Then the error is the context's, with no fallback and no later step
	if err != context.Canceled || !reflect.DeepEqual(ans, agent.Answer{}) {
		t.Fatalf("err = %#v, answer %+v; want context.Canceled alone", err, ans)
	}
	r.expectCalls(t, 1, 1, 0, 0, 1)
}

func TestAnalyzeShouldReportWhyTheDataCouldNotBeOpened(t *testing.T) {
	t.Parallel()
	busy := &dataset.Error{Kind: dataset.KindBusy, Message: "too many inline loads are in progress"}
	profileErr := errors.New("profile failed")
	inline := &agent.InlineData{Format: "csv", Content: ""}
	tests := []struct {
		name  string
		req   agent.Request
		setup func(r *rig)
		check func(t *testing.T, err error)
	}{
		{name: "an unknown dataset wraps dataset.ErrNotFound", req: agent.Request{Query: question, DatasetID: "ds_missing"},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, dataset.ErrNotFound) {
					t.Fatalf("err = %v", err)
				}
			}},
		{name: "unreadable inline data is an input error naming data.content", req: agent.Request{Query: question, Data: inline},
			setup: func(r *rig) {
				r.tables.inlineErr = &dataset.Error{Kind: dataset.KindInvalid, Message: "the data is empty"}
			},
			check: func(t *testing.T, err error) {
				var ie *agent.InputError
				if !errors.As(err, &ie) || *ie != (agent.InputError{Field: "data.content", Message: "the data is empty"}) {
					t.Fatalf("err = %#v", err)
				}
			}},
		{name: "any other inline error is returned as is", req: agent.Request{Query: question, Data: inline},
			setup: func(r *rig) { r.tables.inlineErr = busy },
			check: func(t *testing.T, err error) {
				if err != busy {
					t.Fatalf("err = %#v", err)
				}
			}},
		{name: "a profile error closes the table", req: agent.Request{Query: question, DatasetID: salesID},
			setup: func(r *rig) { r.table.profileErr = profileErr },
			check: func(t *testing.T, err error) {
				if err != profileErr {
					t.Fatalf("err = %#v", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			if tt.setup != nil {
				tt.setup(r)
			}
			_, err := r.analyze(context.Background(), tt.req)
			tt.check(t, err)
			r.expectCalls(t, 0, 0, 0, 0, 0)
		})
	}
}

func TestReviewShouldRegenerateInvalidAnswersAFewTimesAtMost(t *testing.T) {
	t.Parallel()
	open := func(name string) string {
		return "circuit_open: circuit " + name + " is open after repeated LLM failures; no request was sent"
	}
	tests := []struct {
		name            string
		maxIterations   int
		reviewByDefault bool
		critic          []llmStep
		answerer        []llmStep
		answer          string
		review          agent.Review
		step            agent.Step
		degraded        []string
	}{
		{name: "VALID keeps the answer (issue 8: 'invalid' later in the reply is not the verdict)", maxIterations: 2,
			critic: []llmStep{says("VALID. No invalid numbers.")}, answerer: []llmStep{says("North leads with 160.")},
			answer: "North leads with 160.", review: agent.Review{Verdict: "valid", Critique: "No invalid numbers."}, step: ok(1)},
		{name: "INVALID regenerates once, then VALID", maxIterations: 2,
			critic:   []llmStep{says("INVALID: North has 160, not 200."), says("[VALID]")},
			answerer: []llmStep{says("North leads with 200."), says("North leads with 160.")},
			answer:   "North leads with 160.", review: agent.Review{Iterations: 1, Verdict: "valid"}, step: ok(2)},
		{name: "INVALID every time stops after max_iterations regenerations", maxIterations: 2,
			critic:   []llmStep{says("INVALID: one"), says("**INVALID**: two"), says("invalid - three")},
			answerer: []llmStep{says("first"), says("second"), says("third")},
			answer:   "third", review: agent.Review{Iterations: 2, Verdict: "invalid", Critique: "three"}, step: ok(3)},
		{name: "max_iterations 0 reports INVALID without regenerating", maxIterations: 0,
			critic: []llmStep{says("INVALID: one")}, answerer: []llmStep{says("first")},
			answer: "first", review: agent.Review{Verdict: "invalid", Critique: "one"}, step: ok(1)},
		{name: "cot_review.enabled reviews without the request asking", maxIterations: 2, reviewByDefault: true,
			critic: []llmStep{says("VALID")}, answerer: []llmStep{says("first")},
			answer: "first", review: agent.Review{Verdict: "valid"}, step: ok(1)},
		{name: "an open cot_engine leaves the answer unreviewed", maxIterations: 2,
			critic: []llmStep{fails(circuitOpen("cot_engine"))}, answerer: []llmStep{says("first")},
			answer: "first", review: agent.Review{Verdict: "skipped"},
			step: fellBack(1, "unreviewed answer: "+open("cot_engine")), degraded: []string{agent.StepReview}},
		{name: "cot_engine opening on the second review leaves the regenerated answer unreviewed", maxIterations: 2,
			critic:   []llmStep{says("INVALID: wrong"), fails(circuitOpen("cot_engine"))},
			answerer: []llmStep{says("first"), says("second")},
			answer:   "second", review: agent.Review{Iterations: 1, Verdict: "skipped"},
			step: fellBack(2, "unreviewed answer: "+open("cot_engine")), degraded: []string{agent.StepReview}},
		{name: "data_analyst opening during regeneration keeps the answer and the verdict, degraded", maxIterations: 2,
			critic:   []llmStep{says("INVALID: wrong")},
			answerer: []llmStep{says("first"), fails(circuitOpen("data_analyst"))},
			answer:   "first", review: agent.Review{Verdict: "invalid", Critique: "wrong"},
			step:     fellBack(1, "the answer judged invalid could not be regenerated: "+open("data_analyst")),
			degraded: []string{agent.StepReview}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a critic and an analyst that answer from their scripts
			r := newRig(t)
			r.cfg.MaxIterations, r.cfg.ReviewByDefault = tt.maxIterations, tt.reviewByDefault
			r.planner.then(saysSQL(bySales))
			r.table.script = []query{{res: salesResult()}}
			r.answerer.then(tt.answerer...)
			r.critic.then(tt.critic...)

			// When the question is asked for review (unless reviewed by default)
			ans := r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID, Review: !tt.reviewByDefault})

			// Then every scripted reply was used, and no more
			r.expectCalls(t, 1, len(tt.answerer), len(tt.critic), 0, 1)
			if ans.Answer != tt.answer || ans.Review == nil || *ans.Review != tt.review {
				t.Fatalf("answer %q, review %+v; want %q, %+v", ans.Answer, ans.Review, tt.answer, tt.review)
			}
			degraded := tt.degraded
			if degraded == nil {
				degraded = []string{}
			}
			if !reflect.DeepEqual(ans.Degraded, degraded) || ans.FallbackUsed != (len(degraded) > 0) {
				t.Fatalf("degraded %q (fallback_used %v), want %q", ans.Degraded, ans.FallbackUsed, degraded)
			}
			step := ans.Steps[3]
			step.Duration = 0
			want := steps(ok(0), ok(0), ok(0), tt.step, ok(0))[3]
			if step != want {
				t.Fatalf("review step %+v, want %+v", step, want)
			}
		})
	}
}

// Each regeneration carries the previous answer and the critique, and
// each review sees the answer it reviews.
func TestReviewShouldSendTheCritiqueToTheAnalyst(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.planner.then(saysSQL(bySales))
	r.table.script = []query{{res: salesResult()}}
	r.answerer.then(says("North leads with 200."), says("North leads with 160."))
	r.critic.then(says("INVALID: North has 160, not 200."), says("VALID"))

	r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID, Review: true})

	if got := r.answerer.lastMessage(t, 1); !strings.HasSuffix(got, "Question: "+question+
		"\nPrevious answer:\nNorth leads with 200.\nReviewer's critique:\nNorth has 160, not 200.") {
		t.Errorf("revise prompt:\n%s", got)
	}
	for i, answer := range []string{"North leads with 200.", "North leads with 160."} {
		got := r.critic.lastMessage(t, i)
		if !strings.HasPrefix(got, "SQL:\n"+bySales+"\nResult: 3 rows\n") || !strings.HasSuffix(got, "Answer to review:\n"+answer) {
			t.Errorf("critic prompt %d:\n%s", i, got)
		}
	}
}

func TestChartShouldUseAUsableSpecOrFallBackToTheResultShape(t *testing.T) {
	t.Parallel()
	const (
		schema  = `"$schema":"https://vega.github.io/schema/vega-lite/v5.json",`
		rows    = `"data":{"values":[{"region":"North","total":160},{"region":"East","total":60},{"region":"South","total":40}]},`
		byShape = `{` + schema + rows + `"encoding":{"x":{"field":"region","type":"nominal"},"y":{"field":"total","type":"quantitative"}},"mark":"bar"}`
		shape   = "; chart chosen from the result's shape"
	)
	textOnly := dataset.Result{Columns: []dataset.Column{{Name: "region", Type: "VARCHAR"}}, Rows: [][]any{{"North"}, {"East"}}, RowCount: 2}
	noRows := dataset.Result{Columns: salesResult().Columns, Rows: [][]any{}}
	tests := []struct {
		name     string
		result   *dataset.Result // salesResult when nil
		charter  []llmStep
		chart    string // JSON
		step     agent.Step
		degraded []string
	}{
		{name: "a usable spec is kept with the rows inlined and its data URL dropped",
			charter: []llmStep{says("```json\n" + `{"mark":"point","encoding":{"x":{"field":"region","type":"ordinal"},"y":{"field":"total"}},"data":{"url":"https://evil.example/x.csv"}}` + "\n```")},
			chart:   `{` + schema + rows + `"encoding":{"x":{"field":"region","type":"ordinal"},"y":{"field":"total"}},"mark":"point"}`,
			step:    ok(1)},
		{name: "a spec naming an unknown column",
			charter: []llmStep{says(`{"mark":"line","encoding":{"x":{"field":"revenue"}}}`)},
			chart:   byShape, step: fellBack(1, `unusable spec: encoding.x.field "revenue" is not a result column`+shape), degraded: []string{agent.StepChart}},
		{name: "prose instead of a spec",
			charter: []llmStep{says("A bar chart of total by region would work well.")},
			chart:   byShape, step: fellBack(1, "unusable spec: not valid JSON"+shape), degraded: []string{agent.StepChart}},
		{name: "a lookup that brings its own data",
			charter: []llmStep{says(`{"mark":"bar","encoding":{"x":{"field":"region"}},"transform":[{"lookup":"region","from":{"data":{"url":"x.csv"},"key":"region"}}]}`)},
			chart:   byShape, step: fellBack(1, "unusable spec: spec.transform[0]: a lookup transform may not bring its own data"+shape), degraded: []string{agent.StepChart}},
		{name: "an open visualization circuit",
			charter: []llmStep{fails(circuitOpen("visualization"))},
			chart:   byShape, step: fellBack(1, "circuit_open: circuit visualization is open after repeated LLM failures; no request was sent"+shape), degraded: []string{agent.StepChart}},
		{name: "no chart fits a text-only result", result: &textOnly,
			charter: []llmStep{says("not a spec")},
			chart:   "null", step: fellBack(1, "unusable spec: not valid JSON; no chart fits the result's shape"), degraded: []string{agent.StepChart}},
		{name: "an empty result is not charted", result: &noRows,
			chart: "null", step: skipped("no query result to chart")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Given a query result and a charter that answers from its script
			r := newRig(t)
			res := salesResult()
			if tt.result != nil {
				res = *tt.result
			}
			r.planner.then(saysSQL(bySales))
			r.table.script = []query{{res: res}}
			r.answerer.then(says("North leads with 160."))
			r.charter.then(tt.charter...)

			// When the question is asked with a chart
			ans := r.mustAnalyze(t, agent.Request{Query: question, DatasetID: salesID, Visualize: true})

			// Then the chart is the LLM's spec, or the one chosen from the
			// result's shape, or none
			r.expectCalls(t, 1, 1, 0, len(tt.charter), 1)
			chart, err := json.Marshal(ans.Chart)
			if err != nil {
				t.Fatal(err)
			}
			if string(chart) != tt.chart {
				t.Errorf("chart\n got  %s\n want %s", chart, tt.chart)
			}
			degraded := tt.degraded
			if degraded == nil {
				degraded = []string{}
			}
			if !reflect.DeepEqual(ans.Degraded, degraded) || ans.FallbackUsed != (len(degraded) > 0) {
				t.Fatalf("degraded %q (fallback_used %v), want %q", ans.Degraded, ans.FallbackUsed, degraded)
			}
			step := ans.Steps[4]
			step.Duration = 0
			if want := steps(ok(0), ok(0), ok(0), ok(0), tt.step)[4]; step != want {
				t.Fatalf("chart step %+v, want %+v", step, want)
			}
		})
	}
}
