package api

import (
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/dataset"
)

// Limits on request fields.
const (
	maxQueryChars  = 4000
	maxPromptChars = 8000
	maxModelChars  = 200
)

type analyzeRequest struct {
	Query     *string     `json:"query"`
	Data      *inlineData `json:"data"`
	DatasetID *string     `json:"dataset_id"`
	Source    *string     `json:"source"`
	Model     *string     `json:"model"`
	Review    *bool       `json:"review"`
	Visualize *bool       `json:"visualize"`
	// Stream asks for server-sent events, as Accept: text/event-stream
	// does; false answers plain JSON whatever Accept says.
	Stream *bool `json:"stream"`
}

type inlineData struct {
	Format  *string `json:"format"`
	Content *string `json:"content"`
}

// Validate implements validator.
func (r *analyzeRequest) Validate() error {
	if r.Query == nil {
		return invalid("query", "query is required")
	}
	if n := utf8.RuneCountInString(*r.Query); n < 1 || n > maxQueryChars {
		return invalid("query", fmt.Sprintf("query must be 1..%d characters, got %d", maxQueryChars, n))
	}
	if r.Data != nil && r.DatasetID != nil {
		return invalid("dataset_id", "give either data or dataset_id, not both")
	}
	if r.DatasetID != nil && *r.DatasetID == "" {
		return invalid("dataset_id", "dataset_id must not be empty")
	}
	if err := validSource(r.Source, r.Data != nil || r.DatasetID != nil); err != nil {
		return err
	}
	if r.Data != nil {
		if r.Data.Format == nil || (*r.Data.Format != "csv" && *r.Data.Format != "json") {
			return invalid("data.format", `data.format must be "csv" or "json"`)
		}
		if r.Data.Content == nil || *r.Data.Content == "" {
			return invalid("data.content", "data.content is required when data is given")
		}
	}
	return validModel(r.Model)
}

// validSource checks the source field: not empty, and not given with
// other data (other says whether data or dataset_id is).
func validSource(source *string, other bool) error {
	switch {
	case source == nil:
		return nil
	case *source == "":
		return invalid("source", "source must not be empty")
	case other:
		return invalid("source", "give only one of data, dataset_id and source")
	}
	return nil
}

func validModel(m *string) error {
	if m != nil && (len(*m) == 0 || len(*m) > maxModelChars) {
		return invalid("model", fmt.Sprintf("model must be 1..%d characters", maxModelChars))
	}
	return nil
}

type analyzeResponse struct {
	Answer       string           `json:"answer"`
	SQL          *string          `json:"sql"`
	Columns      []dataset.Column `json:"columns"`
	Rows         [][]any          `json:"rows"`
	RowCount     int64            `json:"row_count"`
	Truncated    bool             `json:"truncated"`
	Chart        map[string]any   `json:"chart"`
	Review       *reviewBody      `json:"review"`
	Steps        []stepBody       `json:"steps"`
	Model        *string          `json:"model"`
	Circuit      string           `json:"circuit"`
	FallbackUsed bool             `json:"fallback_used"`
	Degraded     []string         `json:"degraded"`
	DurationMS   float64          `json:"duration_ms"`
	// Interrupted is true (and Truncated too) when a streamed answer's
	// stream broke after part of it was sent: Answer is exactly that part.
	Interrupted bool `json:"interrupted,omitempty"`
}

type reviewBody struct {
	Iterations int    `json:"iterations"`
	Verdict    string `json:"verdict"`
	Critique   string `json:"critique"`
}

type stepBody struct {
	Step       string  `json:"step"`
	Circuit    *string `json:"circuit"`
	Outcome    string  `json:"outcome"`
	Attempts   int     `json:"attempts"`
	DurationMS float64 `json:"duration_ms"`
	Detail     string  `json:"detail,omitempty"`
	// Provider and Model name the target that answered the step's last LLM
	// call; LLMRequests counts the step's LLM requests, retries, failovers
	// and hedges included (attempts counts its calls). Steps that call no
	// LLM have none of them.
	Provider    *string `json:"provider,omitempty"`
	Model       *string `json:"model,omitempty"`
	LLMRequests *int    `json:"llm_requests,omitempty"`
	Failover    bool    `json:"failover,omitempty"`
}

func handleAnalyze(a Analyzer, limit int64, heartbeat func() time.Duration) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decode[analyzeRequest](c, limit)
		if err != nil {
			return err
		}
		if in.Source != nil && !keyAllowsSource(c, *in.Source) {
			return sourceNotFound(*in.Source)
		}
		req := agent.Request{
			Query: *in.Query, Model: deref(in.Model), DatasetID: deref(in.DatasetID), Source: deref(in.Source),
			Review: in.Review != nil && *in.Review, Visualize: in.Visualize != nil && *in.Visualize,
		}
		if in.Data != nil {
			req.Data = &agent.InlineData{Format: *in.Data.Format, Content: *in.Data.Content}
		}
		if wantsStream(c, in.Stream) {
			return streamAnalyze(c, a, req, heartbeat())
		}
		ans, err := a.Analyze(c.Request().Context(), req)
		if err != nil {
			return err
		}
		if err := stillWanted(c); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, analyzeBody(ans))
	}
}

// streamAnalyze answers req as server-sent events: steps and the answer's
// text as they come, then the result the JSON answer would have been, then
// done. A stream that broke after part of the answer was sent ends with
// an error event, then a result whose answer is exactly the part sent.
func streamAnalyze(c echo.Context, a Analyzer, req agent.Request, heartbeat time.Duration) error {
	es := newEventStream(c, heartbeat)
	defer es.close()
	defer es.failOnPanic()
	req.Progress = es
	ans, err := a.Analyze(es.ctx, req)
	if err == nil && ans.StreamErr == nil {
		err = stillWanted(c)
	}
	if err != nil {
		if !es.isStarted() {
			return err // nothing sent yet: plain JSON
		}
		es.fail(err)
		return nil
	}
	if ans.StreamErr != nil {
		es.interrupted(ans.StreamErr)
	}
	es.send(eventResult, analyzeBody(ans))
	es.send(eventDone, struct{}{})
	return nil
}

// analyzeBody is the JSON answer to /analyze, and a stream's result.
func analyzeBody(ans agent.Answer) analyzeResponse {
	out := analyzeResponse{
		Answer:       ans.Answer,
		Columns:      ans.Columns,
		Rows:         ans.Rows,
		RowCount:     ans.RowCount,
		Truncated:    ans.Truncated || ans.StreamErr != nil,
		Chart:        ans.Chart,
		Circuit:      ans.Circuit,
		FallbackUsed: ans.FallbackUsed,
		Degraded:     ans.Degraded,
		DurationMS:   millis(ans.Duration.Seconds()),
		Interrupted:  ans.StreamErr != nil,
	}
	if out.Columns == nil {
		out.Columns = []dataset.Column{}
	}
	if out.Rows == nil {
		out.Rows = [][]any{}
	}
	if ans.SQL != "" {
		out.SQL = &ans.SQL
	}
	if ans.Model != "" {
		out.Model = &ans.Model
	}
	if ans.Review != nil {
		out.Review = &reviewBody{Iterations: ans.Review.Iterations, Verdict: ans.Review.Verdict, Critique: ans.Review.Critique}
	}
	for _, st := range ans.Steps {
		sb := stepBody{Step: st.Step, Outcome: st.Outcome, Attempts: st.Attempts, DurationMS: millis(st.Duration.Seconds()), Detail: st.Detail}
		sb.Circuit, sb.Provider, sb.Model, sb.LLMRequests = llmFields(st.Circuit, st.Provider, st.Model, st.LLMRequests)
		sb.Failover = sb.LLMRequests != nil && st.Failover
		out.Steps = append(out.Steps, sb)
	}
	return out
}

// llmFields are a step's circuit (null for a step that calls no LLM) and,
// when its calls made LLM requests, the target that answered and how many
// requests they took (null otherwise), as the result's steps and the step
// events show them.
func llmFields(circuit, provider, model string, requests int) (c, p, m *string, n *int) {
	if circuit == "" {
		return nil, nil, nil, nil
	}
	c = &circuit
	if requests > 0 {
		p, m, n = &provider, &model, &requests
	}
	return c, p, m, n
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func millis(seconds float64) float64 {
	return float64(int64(seconds*1e6)) / 1000
}
