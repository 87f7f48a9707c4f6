// Package agent is the data-analyst agent behind POST /analyze. With data it
// runs a pipeline, each LLM step behind its own circuit: plan (the
// code_generator writes one SELECT in the data's dialect: DuckDB for a
// dataset, PostgreSQL for a live source), run (the sandbox, or the
// source's guard, executes it),
// answer (the data_analyst explains the result), review (the cot_engine
// critic checks it) and chart (the visualization circuit proposes a
// Vega-Lite spec). Each step that cannot use its LLM degrades to something
// useful instead of failing the request. It knows nothing of HTTP.
package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/progress"
)

// Completer is a guarded LLM call; *circuit.Circuit provides it.
type Completer interface {
	Complete(ctx context.Context, req llm.ChatRequest) (llm.ChatResponse, error)
	Name() string
}

// Streamer is a guarded LLM call whose reply can be streamed;
// *circuit.Circuit provides it. An answerer that is not one answers a
// streamed request in one piece.
type Streamer interface {
	Stream(ctx context.Context, req llm.ChatRequest, onToken func(string)) (llm.ChatResponse, error)
}

// Config holds the analyst's dependencies: one circuit per step.
type Config struct {
	Answerer Completer // data_analyst
	Planner  Completer // code_generator
	Critic   Completer // cot_engine
	Charter  Completer // visualization
	// Data opens the request's data; StoreTables(store) is the real one.
	Data Tables
	// Sources opens a live source named by the request;
	// SourceTables(set) is the real one. Nil: no sources.
	Sources SourceOpener
	// ReviewByDefault reviews every answer (cot_review.enabled).
	ReviewByDefault bool
	// MaxIterations counts regenerations after an INVALID verdict.
	MaxIterations int
	// MaxSQLAttempts is the first query plus retries after an error.
	MaxSQLAttempts int
}

// Analyst answers questions about the user's data.
type Analyst struct {
	cfg Config
}

// NewAnalyst returns an analyst wired to its circuits and data.
func NewAnalyst(cfg Config) *Analyst {
	if cfg.MaxSQLAttempts < 1 {
		cfg.MaxSQLAttempts = 1
	}
	return &Analyst{cfg: cfg}
}

// Request is one question. At most one of Data, DatasetID and Source is
// set; with none, the question is answered directly.
type Request struct {
	Query     string
	Data      *InlineData
	DatasetID string
	// Source names a configured live source.
	Source    string
	Model     string
	Review    bool
	Visualize bool
	// Progress, when set, is told of each step as it starts and ends and
	// gets the answer as the LLM writes it: the data_analyst's reply is
	// streamed. Without it nothing is streamed.
	Progress progress.Sink
}

// InlineData is data sent with the request rather than stored.
type InlineData struct {
	Format  string // "csv" or "json"
	Content string
}

// Step outcomes: the statuses a step ends with in Progress too.
const (
	OutcomeOK       = progress.StatusOK
	OutcomeFallback = progress.StatusFallback
	OutcomeSkipped  = progress.StatusSkipped
)

// Step names, in pipeline order.
const (
	StepPlan   = "plan"
	StepRun    = "run"
	StepAnswer = "answer"
	StepReview = "review"
	StepChart  = "chart"
)

// Step reports what one pipeline step did.
type Step struct {
	Step string
	// Circuit is the step's circuit; empty for run, which calls no LLM.
	Circuit  string
	Outcome  string
	Attempts int
	Duration time.Duration
	// Detail says why the step fell back or was skipped.
	Detail string
	// Provider and Model name the target that answered the step's last
	// LLM call (or, when it failed, the last target that was tried).
	Provider, Model string
	// LLMRequests is how many LLM requests the step's calls made, retries,
	// failovers and hedges included; Attempts counts the calls.
	LLMRequests int
	// Failover is true when a call of the step was answered by a target
	// other than its circuit's first.
	Failover bool
}

// Review is the critic's last verdict.
type Review struct {
	Iterations int
	Verdict    string // valid, invalid or skipped
	Critique   string
}

// Answer is the analyst's reply.
type Answer struct {
	Answer    string
	SQL       string // empty when no query succeeded
	Columns   []dataset.Column
	Rows      [][]any
	RowCount  int64
	Truncated bool
	Chart     map[string]any
	Review    *Review
	Steps     []Step
	// Model answered the question; empty when the answer is deterministic.
	Model        string
	FallbackUsed bool
	Degraded     []string
	Duration     time.Duration
	Circuit      string
	// StreamErr is set when the answer's stream broke after part of it had
	// reached Progress: Answer then holds exactly the part sent, and the
	// steps after the answer were skipped. It is the error that broke it
	// (a *circuit.LLMError with Interrupted set, or the context's error).
	StreamErr error
}

// InputError is a problem with the caller's input, naming the field.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// UnavailableError is returned when every path to an answer failed. It
// wraps the last LLM error and carries what is still useful to the
// caller: the profile of data of one table, and the dataset's id or the
// source's name, which can still be read without the LLM.
type UnavailableError struct {
	Err error
	// Profile is nil for a dataset of several tables and for a source.
	Profile *dataset.Profile
	// DatasetID is the stored dataset asked about, or "".
	DatasetID string
	// Source is the live source asked about, or "".
	Source string
}

func (e *UnavailableError) Error() string { return "no answer could be produced: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// run is the state of one request through the pipeline.
type run struct {
	a     *Analyst
	req   Request
	steps []Step
	out   Answer
	// use tallies each circuit's LLM calls since its last step was added,
	// so that a step is credited only with its own circuit's calls (the
	// review step also calls the data_analyst to revise).
	use map[string]*llmUse
	// sink is the request's Progress (nil: not streamed); started holds
	// the steps whose start it was told.
	sink    progress.Sink
	started map[string]bool
}

// llmUse tallies the LLM calls of the step in progress.
type llmUse struct {
	provider, model string
	requests        int
	failover        bool
}

// complete makes one LLM call of the step in progress through c, and
// tallies which target answered and how many requests it took.
func (r *run) complete(ctx context.Context, c Completer, req llm.ChatRequest) (llm.ChatResponse, error) {
	return r.tally(c, func() (llm.ChatResponse, error) { return c.Complete(ctx, req) })
}

// tally makes one LLM call of the step in progress through c (call) and
// tallies which target answered and how many requests it took.
func (r *run) tally(c Completer, call func() (llm.ChatResponse, error)) (llm.ChatResponse, error) {
	if r.use == nil {
		r.use = map[string]*llmUse{}
	}
	u := r.use[c.Name()]
	if u == nil {
		u = &llmUse{}
		r.use[c.Name()] = u
	}
	resp, err := call()
	if err != nil {
		var le *circuit.LLMError
		if errors.As(err, &le) {
			u.requests += le.Attempts
			if le.Provider != "" {
				u.provider, u.model = le.Provider, le.Model
			}
		}
		return resp, err
	}
	if resp.Attempts > 0 { // a circuit answered (unit tests' fakes do not say)
		u.provider, u.model = resp.Provider, resp.Model
		u.requests += resp.Attempts
		u.failover = u.failover || resp.Failover
	}
	return resp, nil
}

func (r *run) step(name, circuit, outcome string, attempts int, started time.Time, detail string) {
	r.add(Step{Step: name, Circuit: circuit, Outcome: outcome, Attempts: attempts, Duration: time.Since(started), Detail: detail})
}

// add appends st with what its LLM calls came to, and starts the next
// step's tally.
func (r *run) add(st Step) {
	if u := r.use[st.Circuit]; st.Circuit != "" && u != nil {
		st.Provider, st.Model, st.LLMRequests, st.Failover = u.provider, u.model, u.requests, u.failover
		delete(r.use, st.Circuit)
	}
	r.steps = append(r.steps, st)
	outcome, name := st.Outcome, st.Step
	if outcome == OutcomeFallback {
		r.out.Degraded = append(r.out.Degraded, name)
		r.out.FallbackUsed = true
	}
	if r.sink != nil {
		ev := progress.Step{Step: st.Step, Status: st.Outcome, Circuit: st.Circuit, Attempts: st.Attempts, Duration: st.Duration, Detail: st.Detail}
		if st.LLMRequests > 0 {
			ev.Provider, ev.Model, ev.LLMRequests = st.Provider, st.Model, st.LLMRequests
		}
		r.sink.Step(ev)
	}
}

// begin tells the sink that step starts, once per step: the plan and run
// steps alternate while the planner corrects its SQL.
func (r *run) begin(step, circuit string) {
	if r.sink == nil || r.started[step] {
		return
	}
	if r.started == nil {
		r.started = map[string]bool{}
	}
	r.started[step] = true
	r.sink.Step(progress.Step{Step: step, Status: progress.StatusStarted, Circuit: circuit})
}

// interruptedError is an answer whose stream broke after part of it had
// reached the sink.
type interruptedError struct {
	err  error
	sent string
}

func (e *interruptedError) Error() string { return "the answer's stream broke: " + e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// askAnswerer makes the data_analyst's answer call. With a sink it streams
// the answer to it, trimmed as the answer is (see trimmer); without one,
// or with an answerer that cannot stream, it is one call. A stream that
// breaks after text was sent is an *interruptedError holding that text.
func (r *run) askAnswerer(ctx context.Context, msgs []llm.Message) (llm.ChatResponse, error) {
	req := llm.ChatRequest{Model: r.req.Model, Messages: msgs}
	answerer := r.a.cfg.Answerer
	s, ok := answerer.(Streamer)
	if r.sink == nil || !ok {
		resp, err := r.complete(ctx, answerer, req)
		if err == nil && r.sink != nil {
			r.sink.Token(StepAnswer, strings.TrimSpace(resp.Content))
		}
		return resp, err
	}
	tr := &trimmer{emit: func(text string) { r.sink.Token(StepAnswer, text) }}
	resp, err := r.tally(answerer, func() (llm.ChatResponse, error) { return s.Stream(ctx, req, tr.write) })
	if err != nil && tr.sent.Len() > 0 {
		return resp, &interruptedError{err: err, sent: tr.sent.String()}
	}
	return resp, err
}

// interrupted ends the pipeline after the answer's stream broke: the
// answer is what was sent, and the steps after it are skipped.
func (r *run) interrupted(ie *interruptedError, resp llm.ChatResponse, started time.Time) {
	r.out.Answer, r.out.Model, r.out.StreamErr = ie.sent, resp.Model, ie.err
	r.step(StepAnswer, r.a.cfg.Answerer.Name(), OutcomeFallback, 1, started, "the answer's stream broke after part of it was sent: "+llmReason(ie.err))
	const why = "the answer's stream broke"
	if r.req.Review || r.a.cfg.ReviewByDefault {
		r.out.Review = &Review{Verdict: verdictSkipped}
	}
	r.step(StepReview, r.a.cfg.Critic.Name(), OutcomeSkipped, 0, time.Now(), why)
	r.step(StepChart, r.a.cfg.Charter.Name(), OutcomeSkipped, 0, time.Now(), why)
}

// tell sends a whole answer that was not streamed (a deterministic
// summary) to the sink as one piece, so that the pieces a client joins
// always make the answer.
func (r *run) tell(answer string) {
	if r.sink != nil {
		r.sink.Token(StepAnswer, answer)
	}
}

// Analyze answers req. A malformed inline dataset is an *InputError; an
// unknown dataset wraps dataset.ErrNotFound, an unknown source
// pgsource.ErrUnknownSource; a source that cannot be reached (at the
// start or at the run step) is its *pgsource.Error, never a fallback:
// no answer is better than one that hides it. When no answer can be had
// at all the error is the last *circuit.LLMError, wrapped in
// *UnavailableError when there was data.
func (a *Analyst) Analyze(ctx context.Context, req Request) (Answer, error) {
	start := time.Now()
	r := &run{a: a, req: req, out: Answer{Circuit: a.cfg.Answerer.Name(), Degraded: []string{}}, sink: req.Progress}
	var err error
	if req.Data == nil && req.DatasetID == "" && req.Source == "" {
		err = r.direct(ctx)
	} else {
		err = r.withData(ctx)
	}
	if err != nil {
		return Answer{}, err
	}
	r.out.Steps = r.steps
	r.out.Duration = time.Since(start)
	return r.out, nil
}

// direct answers a question without data through data_analyst alone.
func (r *run) direct(ctx context.Context) error {
	r.step(StepPlan, r.a.cfg.Planner.Name(), OutcomeSkipped, 0, time.Now(), "no data to query")
	r.step(StepRun, "", OutcomeSkipped, 0, time.Now(), "no data to query")
	t := time.Now()
	r.begin(StepAnswer, r.a.cfg.Answerer.Name())
	resp, err := r.askAnswerer(ctx, directPrompt(r.req.Query))
	if ie, ok := errors.AsType[*interruptedError](err); ok {
		r.interrupted(ie, resp, t)
		return nil
	}
	if err != nil {
		return err
	}
	r.out.Answer, r.out.Model = strings.TrimSpace(resp.Content), resp.Model
	r.step(StepAnswer, r.a.cfg.Answerer.Name(), OutcomeOK, 1, t, "")
	r.review(ctx, "", nil)
	r.step(StepChart, r.a.cfg.Charter.Name(), OutcomeSkipped, 0, time.Now(), "no data to chart")
	return nil
}

func (r *run) withData(ctx context.Context) error {
	table, profile, err := r.open(ctx)
	if err != nil {
		return err
	}
	defer table.Close()
	facts, multi, err := r.facts(ctx, table, profile)
	if err != nil {
		return err
	}

	res, ok, err := r.planAndRun(ctx, table, facts, multi)
	if err != nil {
		return err
	}
	t := time.Now()
	r.begin(StepAnswer, r.a.cfg.Answerer.Name())
	if ok {
		r.out.Columns, r.out.Rows, r.out.RowCount, r.out.Truncated = res.Columns, res.Rows, res.RowCount, res.Truncated
		resp, err := r.askAnswerer(ctx, answerPrompt(r.req.Query, r.out.SQL, res))
		if ie, isIE := errors.AsType[*interruptedError](err); isIE {
			r.interrupted(ie, resp, t)
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.out.Answer = summarize(res)
			r.tell(r.out.Answer)
			r.step(StepAnswer, r.a.cfg.Answerer.Name(), OutcomeFallback, 1, t, "deterministic summary of the result: "+llmReason(err))
		} else {
			r.out.Answer, r.out.Model = strings.TrimSpace(resp.Content), resp.Model
			r.step(StepAnswer, r.a.cfg.Answerer.Name(), OutcomeOK, 1, t, "")
		}
	} else {
		// The seed's direct_llm_fallback: answer from the profile and
		// sample alone.
		r.out.Columns, r.out.Rows = []dataset.Column{}, [][]any{}
		resp, err := r.askAnswerer(ctx, profilePrompt(r.req.Query, facts))
		if ie, isIE := errors.AsType[*interruptedError](err); isIE {
			r.interrupted(ie, resp, t)
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ue := &UnavailableError{Err: err, DatasetID: r.req.DatasetID, Source: r.req.Source}
			if !multi {
				ue.Profile = &profile
			}
			return ue
		}
		r.out.Answer, r.out.Model = strings.TrimSpace(resp.Content), resp.Model
		r.step(StepAnswer, r.a.cfg.Answerer.Name(), OutcomeOK, 1, t, "answered from the profile and sample: no query result")
	}
	if ok && r.out.Model == "" {
		if r.req.Review || r.a.cfg.ReviewByDefault {
			r.out.Review = &Review{Verdict: verdictSkipped}
		}
		r.step(StepReview, r.a.cfg.Critic.Name(), OutcomeSkipped, 0, time.Now(), "the answer is a deterministic summary")
	} else {
		r.review(ctx, facts, resultIf(ok, res))
	}
	r.chart(ctx, resultIf(ok, res))
	return nil
}

func resultIf(ok bool, res dataset.Result) *dataset.Result {
	if !ok {
		return nil
	}
	return &res
}

// open returns a sandboxed table on the request's data and its profile.
func (r *run) open(ctx context.Context) (Table, dataset.Profile, error) {
	var table Table
	var err error
	switch {
	case r.req.Source != "":
		if r.a.cfg.Sources == nil {
			return nil, dataset.Profile{}, fmt.Errorf("%w: %q", pgsource.ErrUnknownSource, r.req.Source)
		}
		table, err = r.a.cfg.Sources.OpenSource(ctx, r.req.Source)
	case r.req.DatasetID != "":
		table, err = r.a.cfg.Data.Open(ctx, r.req.DatasetID)
	default:
		table, err = r.a.cfg.Data.OpenInline(ctx, r.req.Data.Format, r.req.Data.Content)
		var de *dataset.Error
		if errors.As(err, &de) && de.Kind == dataset.KindInvalid {
			return nil, dataset.Profile{}, &InputError{Field: "data.content", Message: de.Message}
		}
	}
	if err != nil {
		return nil, dataset.Profile{}, err
	}
	p, err := table.Profile(ctx)
	if err != nil {
		table.Close()
		return nil, dataset.Profile{}, err
	}
	return table, p, nil
}

// facts describes the data for the prompts: for DuckDB data of one table,
// its schema, profile and sample as the table data; otherwise (several
// tables, or a source, whose tables have no data alias) every table by
// its name with its own, and the likely join keys. multi reports the
// latter.
func (r *run) facts(ctx context.Context, table Table, profile dataset.Profile) (facts string, multi bool, err error) {
	tables := table.Tables()
	if len(tables) <= 1 && table.Dialect() == DialectDuckDB {
		sample, err := table.Sample(ctx, sampleRows)
		if err != nil {
			return "", false, err
		}
		return describeData(table.Schema(), profile, sample), false, nil
	}
	samples := make([]dataset.Result, len(tables))
	for i, t := range tables {
		if samples[i], err = table.SampleTable(ctx, t.Name, tableSampleRows); err != nil {
			return "", true, err
		}
	}
	return describeTables(tables, samples, table.Dialect()), true, nil
}

// planAndRun asks the planner for SQL and runs it, sending each error back
// for a corrected query, up to MaxSQLAttempts queries. A fault of the
// source itself (see sourceFault) ends it with that error.
func (r *run) planAndRun(ctx context.Context, table Table, facts string, multi bool) (dataset.Result, bool, error) {
	planner := r.a.cfg.Planner
	dialect := table.Dialect()
	msgs := planPrompt(r.req.Query, facts, multi, dialect)
	over := "the table data"
	if multi {
		over = "the tables listed"
	}
	planStart := time.Now()
	r.begin(StepPlan, planner.Name())
	var runTook time.Duration
	var lastErr string
	for attempt := 1; attempt <= r.a.cfg.MaxSQLAttempts; attempt++ {
		resp, err := r.complete(ctx, planner, llm.ChatRequest{Model: r.req.Model, Messages: msgs})
		if err != nil {
			// Any LLM failure here, a 400 included, degrades like an
			// open circuit: the question can still be answered.
			if attempt == 1 {
				r.step(StepPlan, planner.Name(), OutcomeFallback, attempt, planStart, llmReason(err))
				r.step(StepRun, "", OutcomeSkipped, 0, time.Now(), "no query was written")
			} else {
				// attempt planner calls were made, the last one failed;
				// attempt-1 queries ran, and all failed.
				r.step(StepPlan, planner.Name(), OutcomeFallback, attempt, planStart.Add(runTook), "no corrected query: "+llmReason(err))
				r.step(StepRun, "", OutcomeFallback, attempt-1, time.Now().Add(-runTook), "no query succeeded: "+lastErr)
			}
			return dataset.Result{}, false, nil
		}
		sql := llm.ExtractFenced(resp.Content, sqlFenceTags)
		r.begin(StepRun, "")
		t := time.Now()
		res, qerr := table.Query(ctx, sql)
		runTook += time.Since(t)
		if qerr == nil {
			r.out.SQL = sql
			r.add(Step{Step: StepPlan, Circuit: planner.Name(), Outcome: OutcomeOK, Attempts: attempt, Duration: time.Since(planStart) - runTook})
			r.add(Step{Step: StepRun, Outcome: OutcomeOK, Attempts: attempt, Duration: runTook})
			return res, true, nil
		}
		if pgsource.IsFault(qerr) {
			return dataset.Result{}, false, qerr
		}
		if ctx.Err() != nil {
			break
		}
		lastErr = queryError(qerr)
		msgs = append(msgs,
			llm.Message{Role: "assistant", Content: resp.Content},
			llm.Message{Role: "user", Content: fmt.Sprintf("That query failed: %s\nWrite one corrected %s SELECT over %s, in a ```sql block.", lastErr, dialectName(dialect), over)})
	}
	r.add(Step{Step: StepPlan, Circuit: planner.Name(), Outcome: OutcomeOK,
		Attempts: r.a.cfg.MaxSQLAttempts, Duration: time.Since(planStart) - runTook})
	r.step(StepRun, "", OutcomeFallback, r.a.cfg.MaxSQLAttempts, time.Now().Add(-runTook),
		fmt.Sprintf("no query succeeded in %d attempts; last error: %s", r.a.cfg.MaxSQLAttempts, lastErr))
	return dataset.Result{}, false, nil
}

// sqlFenceTags are the fence tags of the planner's SQL block.
var sqlFenceTags = []string{"sql", "duckdb", "postgresql", "postgres", "psql"}

// queryError is what the LLM and the caller may see of a failed query:
// the dataset and pgsource packages scrub server paths (and a source's
// DSN) from it.
func queryError(err error) string {
	var de *dataset.Error
	if errors.As(err, &de) {
		return de.Message
	}
	var pe *pgsource.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return "the query failed"
}

// llmReason describes an LLM failure for a step's detail.
func llmReason(err error) string {
	var le *circuit.LLMError
	if errors.As(err, &le) {
		return string(le.Kind) + ": " + le.Message
	}
	return err.Error()
}

// review runs the critic when asked: VALID ends it; INVALID regenerates the
// answer with the critique, up to MaxIterations times, each new answer
// reviewed again.
func (r *run) review(ctx context.Context, facts string, res *dataset.Result) {
	critic := r.a.cfg.Critic
	if !r.req.Review && !r.a.cfg.ReviewByDefault {
		r.step(StepReview, critic.Name(), OutcomeSkipped, 0, time.Now(), "review not requested")
		return
	}
	t := time.Now()
	r.begin(StepReview, critic.Name())
	rv := &Review{}
	r.out.Review = rv
	attempts := 0
	for {
		attempts++
		resp, err := r.complete(ctx, critic, llm.ChatRequest{Model: r.req.Model, Messages: criticPrompt(r.req.Query, r.out.SQL, res, facts, r.out.Answer)})
		if err != nil {
			rv.Verdict, rv.Critique = verdictSkipped, ""
			r.step(StepReview, critic.Name(), OutcomeFallback, attempts, t, "unreviewed answer: "+llmReason(err))
			return
		}
		verdict, critique := parseVerdict(resp.Content)
		rv.Verdict, rv.Critique = verdict, critique
		if verdict != verdictInvalid || rv.Iterations >= r.a.cfg.MaxIterations {
			r.step(StepReview, critic.Name(), OutcomeOK, attempts, t, "")
			return
		}
		again, err := r.complete(ctx, r.a.cfg.Answerer, llm.ChatRequest{Model: r.req.Model, Messages: revisePrompt(r.req.Query, r.out.SQL, res, facts, r.out.Answer, critique)})
		if err != nil {
			// The critic's verdict stands, but the answer it judged
			// invalid could not be fixed: the review degraded.
			r.step(StepReview, critic.Name(), OutcomeFallback, attempts, t, "the answer judged invalid could not be regenerated: "+llmReason(err))
			return
		}
		rv.Iterations++
		r.out.Answer, r.out.Model = strings.TrimSpace(again.Content), again.Model
		if r.sink != nil {
			// The revision replaces the answer the client holds.
			r.sink.Replace(StepAnswer, r.out.Answer)
		}
	}
}
