package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// Streaming (server-sent events) through the public API, read with a real
// HTTP client, against a fake upstream that streams OpenAI's chunks.

// sseItem is one thing a stream sent: an event, or a comment line.
type sseItem struct {
	Event   string
	Data    map[string]any
	Raw     string
	Comment string
}

// sseStream is an open streamed response.
type sseStream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openStream posts body to path and returns once the response's headers
// are in. accept sends Accept: text/event-stream; otherwise the body
// should ask with "stream": true.
func (n *nexus) openStream(t testing.TB, path string, body any, accept bool) *sseStream {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if accept {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := n.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("POST %s: %v", path, err)
	}
	s := &sseStream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next event or comment; ok is false at the end.
func (s *sseStream) next(t testing.TB) (sseItem, bool) {
	t.Helper()
	var it sseItem
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && it.Event == "" {
				return sseItem{}, false
			}
			t.Fatalf("reading the stream: %v (partial line %q)", err, line)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if it.Event != "" {
				return it, true
			}
		case strings.HasPrefix(line, ":"):
			return sseItem{Comment: strings.TrimSpace(line[1:])}, true
		case strings.HasPrefix(line, "event: "):
			it.Event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			it.Raw = line[len("data: "):]
			if err := json.Unmarshal([]byte(it.Raw), &it.Data); err != nil {
				t.Fatalf("event %s: data is not one JSON object: %v: %q", it.Event, err, it.Raw)
			}
		default:
			t.Fatalf("unexpected line in the stream: %q", line)
		}
	}
}

// events reads the stream to its end and returns its events (comments
// left out).
func (s *sseStream) events(t testing.TB) []sseItem {
	t.Helper()
	var out []sseItem
	for {
		it, ok := s.next(t)
		if !ok {
			return out
		}
		if it.Comment == "" {
			out = append(out, it)
		}
	}
}

// expectSSE checks a stream's status and content type.
func expectSSE(t testing.TB, s *sseStream) {
	t.Helper()
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(s.resp.Body)
		t.Fatalf("status %d, content type %q: %s", s.resp.StatusCode, s.resp.Header.Get("Content-Type"), body)
	}
}

// names lists the events' names, runs of tokens as one "token*".
func names(evs []sseItem) string {
	var out []string
	for _, e := range evs {
		name := e.Event
		if e.Event == "step" {
			name = "step:" + e.Data["step"].(string) + ":" + e.Data["status"].(string)
		}
		if e.Event == "token" {
			name = "token*"
			if len(out) > 0 && out[len(out)-1] == name {
				continue
			}
		}
		out = append(out, name)
	}
	return strings.Join(out, " ")
}

// joined joins the token events' texts of step.
func joined(evs []sseItem, step string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Event == "token" && e.Data["step"] == step {
			b.WriteString(e.Data["text"].(string))
		}
	}
	return b.String()
}

// last returns the last event named name.
func last(t testing.TB, evs []sseItem, name string) sseItem {
	t.Helper()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == name {
			return evs[i]
		}
	}
	t.Fatalf("no %s event in %s", name, names(evs))
	return sseItem{}
}

// withoutDurations drops every duration_ms, which differ between two runs.
func withoutDurations(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k != "duration_ms" {
				out[k] = withoutDurations(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutDurations(e)
		}
		return out
	}
	return v
}

const streamAnswer = "North leads with 160, then East."

var streamChunks = []string{"North", " leads", " with", " 160,", " then", " East."}

func TestAStreamedAnalyzeShouldSendStepsTokensAndTheSameResultAsJSON(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	query := map[string]any{"query": "Which region sells most?", "dataset_id": id}

	// Given the same script answered once as JSON
	n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
	n.LLM.EnqueueFor(analystModel, fakellm.Stream(streamChunks...))
	plain := n.post(t, "/analyze", query)
	expectStatus(t, plain, http.StatusOK)
	if plain.Body["answer"] != streamAnswer {
		t.Fatalf("plain answer: %s", plain.Raw)
	}

	for _, accept := range []bool{true, false} {
		// When it is asked for as a stream (by Accept, or by "stream": true)
		n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
		n.LLM.EnqueueFor(analystModel, fakellm.Stream(streamChunks...))
		body := map[string]any{"query": query["query"], "dataset_id": id}
		if !accept {
			body["stream"] = true
		}
		s := n.openStream(t, "/analyze", body, accept)
		expectSSE(t, s)
		evs := s.events(t)

		// Then the events come in order, done last
		want := "step:plan:started step:run:started step:plan:ok step:run:ok step:answer:started token* step:answer:ok step:review:skipped step:chart:skipped result done"
		if got := names(evs); got != want {
			t.Fatalf("events:\n got %s\nwant %s", got, want)
		}
		// And the tokens join to exactly the answer, one per chunk
		result := last(t, evs, "result")
		if j := joined(evs, "answer"); j != streamAnswer || result.Data["answer"] != streamAnswer {
			t.Fatalf("tokens joined %q, result answer %v", j, result.Data["answer"])
		}
		tokens := 0
		for _, e := range evs {
			if e.Event == "token" {
				tokens++
			}
		}
		if tokens != len(streamChunks) {
			t.Fatalf("%d token events, want %d", tokens, len(streamChunks))
		}
		// And the result is the JSON answer's body, field for field
		if !reflect.DeepEqual(withoutDurations(result.Data), withoutDurations(plain.Body)) {
			t.Fatalf("streamed result differs from the JSON answer:\n%s\n%s", result.Raw, plain.Raw)
		}
		// And step events name what answered
		for _, e := range evs {
			if e.Event == "step" && e.Data["step"] == "answer" && e.Data["status"] == "ok" {
				if e.Data["circuit"] != config.CircuitDataAnalyst || e.Data["provider"] != "default" || e.Data["model"] != analystModel || e.Data["llm_requests"] != 1.0 {
					t.Fatalf("answer step: %s", e.Raw)
				}
			}
		}
		if d := last(t, evs, "done"); d.Raw != "{}" {
			t.Fatalf("done: %q", d.Raw)
		}
	}
	// And the upstream was asked to stream the streamed answers only,
	// with their usage
	streamed := 0
	for _, r := range n.LLM.Received() {
		if r.Stream {
			streamed++
			if r.Model != analystModel || !r.IncludeUsage {
				t.Fatalf("streamed request for %s, include_usage %v", r.Model, r.IncludeUsage)
			}
		}
	}
	if streamed != 2 {
		t.Fatalf("%d streamed upstream requests, want 2", streamed)
	}
	if m := n.scrape(t); !strings.Contains(m, "nexus_llm_time_to_first_token_seconds_count{circuit=\"data_analyst\",model=\""+analystModel+"\",provider=\"default\"} 2") {
		t.Fatalf("no first-token histogram with 2 samples in /metrics")
	}
}

func TestAnAnswerThatCameWholeShouldStillStreamAsTokens(t *testing.T) {
	t.Parallel()
	// A dataset answer whose data_analyst is open: the deterministic
	// summary is the answer, sent as one token.
	n := startNexus(t, withAdmin)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	expectStatus(t, n.admin(t, http.MethodPost, "/api/circuits/data_analyst/open", adminToken), http.StatusOK)
	n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
	s := n.openStream(t, "/analyze", map[string]any{"query": "q", "dataset_id": id, "stream": true}, false)
	expectSSE(t, s)
	evs := s.events(t)
	result := last(t, evs, "result")
	if result.Data["fallback_used"] != true || joined(evs, "answer") != result.Data["answer"] || result.Data["answer"] == "" {
		t.Fatalf("events %s: tokens %q, result %s", names(evs), joined(evs, "answer"), result.Raw)
	}
}

func TestAFirstTokenPastFirstTokenTimeoutShouldFailOverUnseen(t *testing.T) {
	t.Parallel()
	backup := fakellm.New(t)
	n := startNexus(t, func(o *startOpts) {
		o.cfg.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: backup.URL(), APIKeyEnv: "BACKUP_KEY"}}
		o.cfg.LLM.Models[config.CircuitDataAnalyst] = config.Targets{
			{Provider: config.DefaultProvider, Model: analystModel},
			{Provider: "backup", Model: "backup-model"},
		}
		c := o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
		c.Timeout, c.FirstTokenTimeout = 30, 0.3
		o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	})
	// Given a primary that holds its first token for a minute
	n.LLM.EnqueueFor(analystModel, fakellm.SlowFirstToken(time.Minute, "too", " late"))
	backup.EnqueueFor("backup-model", fakellm.Stream("from", " the", " backup"))
	s := n.openStream(t, "/analyze", map[string]any{"query": "q"}, true)
	expectSSE(t, s)
	evs := s.events(t)
	// Then the client sees the backup's answer and no error
	if got := names(evs); got != "step:plan:skipped step:run:skipped step:answer:started token* step:answer:ok step:review:skipped step:chart:skipped result done" {
		t.Fatalf("events: %s", got)
	}
	result := last(t, evs, "result")
	if joined(evs, "answer") != "from the backup" || result.Data["answer"] != "from the backup" {
		t.Fatalf("tokens %q, result %s", joined(evs, "answer"), result.Raw)
	}
	steps := result.Data["steps"].([]any)
	answer := steps[2].(map[string]any)
	if answer["provider"] != "backup" || answer["failover"] != true || answer["llm_requests"] != 2.0 {
		t.Fatalf("answer step: %v", answer)
	}
	// And the primary's attempt counted as a timeout, and was cancelled
	eventually(t, 10*time.Second, "the primary's request to be cancelled", func() bool { return n.LLM.Canceled() == 1 })
	primary := foTargets(t, n, config.CircuitDataAnalyst)[0]["statistics"].(map[string]any)
	if primary["timeout_count"] != 1.0 || primary["failure_count"] != 1.0 {
		t.Fatalf("primary statistics: %v", primary)
	}
}

func TestAStreamCutAfterThreeChunksShouldEndWithAnErrorAndATruncatedResult(t *testing.T) {
	t.Parallel()
	for _, mode := range []fakellm.CutMode{fakellm.CutEOF, fakellm.CutReset} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			n := startNexus(t)
			// Given an upstream that breaks after three chunks
			n.LLM.EnqueueFor(analystModel, fakellm.CutStream(3, mode, "One", " two", " three", " four", " five"))
			s := n.openStream(t, "/analyze", map[string]any{"query": "q", "stream": true}, false)
			expectSSE(t, s)
			evs := s.events(t)
			// Then: the three chunks, an error, the truncated result, done
			want := "step:plan:skipped step:run:skipped step:answer:started token* step:answer:fallback step:review:skipped step:chart:skipped error result done"
			if got := names(evs); got != want {
				t.Fatalf("events:\n got %s\nwant %s", got, want)
			}
			errEv := last(t, evs, "error")
			if errEv.Data["code"] != "stream_interrupted" || !strings.Contains(errEv.Data["message"].(string), "stream broke") {
				t.Fatalf("error event: %s", errEv.Raw)
			}
			result := last(t, evs, "result")
			if result.Data["truncated"] != true || result.Data["interrupted"] != true || result.Data["answer"] != "One two three" ||
				joined(evs, "answer") != "One two three" {
				t.Fatalf("result %s, tokens %q", result.Raw, joined(evs, "answer"))
			}
			// And the target's failure count rose by exactly one, with no retry
			expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"failure_count": 1, "success_count": 0, "total_calls": 1})
			if n.LLM.RequestsFor(analystModel) != 1 {
				t.Fatalf("upstream requests: %d", n.LLM.RequestsFor(analystModel))
			}
			if m := n.scrape(t); !strings.Contains(m, `nexus_stream_interruptions_total{circuit="data_analyst",provider="default"} 1`) {
				t.Fatal("nexus_stream_interruptions_total is not 1")
			}
		})
	}
}

func TestAClientThatLeavesMidStreamShouldCancelTheUpstreamAndCountNothing(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	// Given an upstream that sends one chunk, then nothing
	n.LLM.EnqueueFor(analystModel, fakellm.HangStream(1, "first", " second"))
	s := n.openStream(t, "/analyze", map[string]any{"query": "q"}, true)
	expectSSE(t, s)
	for {
		it, ok := s.next(t)
		if !ok {
			t.Fatal("the stream ended before its first token")
		}
		if it.Event == "token" {
			break
		}
	}
	// When the client leaves after the first token
	left := time.Now()
	s.close()
	// Then the upstream sees its request cancelled within a second
	eventually(t, time.Second, "the upstream to see the cancellation", func() bool { return n.LLM.Canceled() == 1 })
	t.Logf("the upstream saw the cancellation %s after the client left", time.Since(left))
	// And no circuit counted anything, and the access log says 499
	eventually(t, 10*time.Second, "the access log line", func() bool {
		for _, l := range n.logs.lines("request") {
			if l["route"] == "/analyze" {
				return l["status"] == float64(499)
			}
		}
		return false
	})
	expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"failure_count": 0, "success_count": 0, "total_calls": 0})
}

func TestAStreamShouldSendHeartbeatsWhileTheFirstTokenIsHeld(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) { o.cfg.Server.SSEHeartbeatSeconds = 0.05 })
	gate := make(chan struct{})
	n.LLM.EnqueueFor(analystModel, fakellm.GatedStream(gate, "after", " pings"))
	s := n.openStream(t, "/analyze", map[string]any{"query": "q"}, true)
	expectSSE(t, s)
	pings := 0
	var evs []sseItem
	for {
		it, ok := s.next(t)
		if !ok {
			break
		}
		if it.Comment != "" {
			if it.Comment != "ping" {
				t.Fatalf("comment %q", it.Comment)
			}
			pings++
			if pings == 3 {
				close(gate) // the first token comes after three heartbeats
			}
			continue
		}
		if it.Event == "token" && pings < 3 {
			t.Fatal("a token came before the gate opened")
		}
		evs = append(evs, it)
	}
	if pings < 3 || last(t, evs, "result").Data["answer"] != "after pings" {
		t.Fatalf("pings %d, events %s", pings, names(evs))
	}
}

func TestSlowFirstTokensShouldOpenTheCircuitAtTheSlowCallRate(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) {
		c := o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
		c.Timeout, c.RecoveryTimeout = 30, 60
		c.SlowCallThreshold, c.SlowCallRateThreshold, c.MinimumCalls = 0.1, 100, 2
		o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	})
	n.LLM.SetDefaultFor(analystModel, fakellm.SlowFirstToken(300*time.Millisecond, "slow", " answer"))
	for i := 0; i < 2; i++ {
		s := n.openStream(t, "/analyze", map[string]any{"query": "q"}, true)
		expectSSE(t, s)
		if r := last(t, s.events(t), "result"); r.Data["answer"] != "slow answer" {
			t.Fatalf("call %d: %s", i, r.Raw)
		}
	}
	// Both calls succeeded, both were slow: the circuit opened
	if st := n.state(t, config.CircuitDataAnalyst); st != "open" {
		t.Fatalf("state %s", st)
	}
	expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"success_count": 2, "failure_count": 0, "slow_call_count": 2})
	// And the next streamed call is told so in an error event
	s := n.openStream(t, "/analyze", map[string]any{"query": "q"}, true)
	expectSSE(t, s)
	evs := s.events(t)
	errEv := last(t, evs, "error")
	if errEv.Data["code"] != "circuit_open" || errEv.Data["status"] != 503.0 || errEv.Data["retry_after"] == nil || !strings.HasSuffix(names(evs), "error done") {
		t.Fatalf("events %s, error %s", names(evs), errEv.Raw)
	}
	if n.LLM.RequestsFor(analystModel) != 2 {
		t.Fatalf("upstream requests %d", n.LLM.RequestsFor(analystModel))
	}
}

func TestValidationErrorsShouldBePlainJSONBeforeAStreamStarts(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	cases := []struct {
		name   string
		path   string
		body   map[string]any
		status int
		code   string
	}{
		{"missing query", "/analyze", map[string]any{"stream": true}, 400, "invalid_request"},
		{"unknown dataset", "/analyze", map[string]any{"query": "q", "dataset_id": "ds_0123456789abcdef"}, 404, "dataset_not_found"},
		{"bad inline data", "/analyze", map[string]any{"query": "q", "data": map[string]any{"format": "json", "content": "{"}}, 400, "invalid_request"},
		{"unknown source", "/generate", map[string]any{"prompt": "p", "source": "nope"}, 404, "source_not_found"},
		{"bad language", "/generate", map[string]any{"prompt": "p", "language": "cobol", "stream": true}, 400, "invalid_request"},
	}
	for _, tc := range cases {
		s := n.openStream(t, tc.path, tc.body, true)
		raw, _ := io.ReadAll(s.resp.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		if s.resp.StatusCode != tc.status || !strings.HasPrefix(s.resp.Header.Get("Content-Type"), "application/json") || errorCode(response{Body: body}) != tc.code {
			t.Errorf("%s: status %d, content type %q: %s", tc.name, s.resp.StatusCode, s.resp.Header.Get("Content-Type"), raw)
		}
	}
	if n.LLM.Requests() != 0 {
		t.Fatalf("upstream requests: %d", n.LLM.Requests())
	}
}

func TestAStreamedGenerateShouldSendTheCodeAsWrittenAndTheSameResult(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	reply := []string{"```python\n", "result = ", "df['sales']", ".sum()\n", "```"}
	n.LLM.EnqueueFor(codegenModel, fakellm.Stream(reply...))
	plain := n.post(t, "/generate", map[string]any{"prompt": "sum the sales"})
	expectStatus(t, plain, http.StatusOK)

	n.LLM.EnqueueFor(codegenModel, fakellm.Stream(reply...))
	s := n.openStream(t, "/generate", map[string]any{"prompt": "sum the sales", "stream": true}, false)
	expectSSE(t, s)
	evs := s.events(t)
	if got := names(evs); got != "step:code:started token* step:code:ok step:review:started step:review:ok result done" {
		t.Fatalf("events: %s", got)
	}
	result := last(t, evs, "result")
	if joined(evs, "code") != strings.Join(reply, "") || result.Data["code"] != "result = df['sales'].sum()" || result.Data["is_valid"] != true {
		t.Fatalf("tokens %q, result %s", joined(evs, "code"), result.Raw)
	}
	if !reflect.DeepEqual(result.Data, plain.Body) {
		t.Fatalf("streamed result differs from the JSON answer:\n%s\n%s", result.Raw, plain.Raw)
	}

	// A cut stream: the code sent so far, unreviewed, marked truncated
	n.LLM.EnqueueFor(codegenModel, fakellm.CutStream(2, fakellm.CutEOF, reply...))
	s = n.openStream(t, "/generate", map[string]any{"prompt": "sum the sales"}, true)
	expectSSE(t, s)
	evs = s.events(t)
	if got := names(evs); got != "step:code:started token* step:code:fallback error result done" {
		t.Fatalf("events: %s", got)
	}
	result = last(t, evs, "result")
	if result.Data["code"] != "```python\nresult = " || result.Data["truncated"] != true || result.Data["is_valid"] != false ||
		last(t, evs, "error").Data["code"] != "stream_interrupted" {
		t.Fatalf("result %s", result.Raw)
	}
}

// answerText applies the answer's token events as a client does: each
// appends, a replace starts over.
func answerText(evs []sseItem) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Event == "token" && e.Data["step"] == "answer" {
			if e.Data["replace"] == true {
				b.Reset()
			}
			b.WriteString(e.Data["text"].(string))
		}
	}
	return b.String()
}

func TestARevisedAnswerShouldReplaceTheStreamedOne(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.EnqueueFor(codegenModel, sqlReply(bySales))
	n.LLM.EnqueueFor(analystModel, fakellm.Stream("South", " leads."), fakellm.Reply("North leads with 160."))
	n.LLM.EnqueueFor(cotModel, fakellm.Reply("INVALID: the result shows North with 160, not South."), fakellm.Reply("VALID"))
	s := n.openStream(t, "/analyze", map[string]any{"query": "Which region sells most?", "dataset_id": id, "review": true}, true)
	expectSSE(t, s)
	evs := s.events(t)
	want := "step:plan:started step:run:started step:plan:ok step:run:ok step:answer:started token* step:answer:ok step:review:started token* step:review:ok step:chart:skipped result done"
	if got := names(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	result := last(t, evs, "result")
	if result.Data["answer"] != "North leads with 160." || answerText(evs) != "North leads with 160." || joined(evs, "answer") != "South leads.North leads with 160." {
		t.Fatalf("answer %q after replace, joined %q, result %s", answerText(evs), joined(evs, "answer"), result.Raw)
	}
}

func TestAClientThatStopsReadingShouldNotCountAgainstTheLLM(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) {
		o.cfg.LLM.MaxResponseBytes = 64 << 20
		c := o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
		c.Timeout = 60
		o.cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	})
	// Given an upstream writing 30 MB of answer, a kilobyte a millisecond
	chunks := make([]string, 30000)
	for i := range chunks {
		chunks[i] = strings.Repeat("x", 1023) + " "
	}
	n.LLM.EnqueueFor(analystModel, fakellm.Step{Chunks: chunks, ChunkDelay: time.Millisecond})
	// When a client asks for it as a stream, then stops reading
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A small receive window, so that the stall shows soon
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	body := `{"query":"q","stream":true}`
	if _, err := io.WriteString(conn, "POST /analyze HTTP/1.1\r\nHost: nexus\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("status line %q, %v", line, err)
	}
	// Then Nexus cuts it off and cancels the upstream request, and the
	// stall counts as the client's doing, not the LLM's
	eventually(t, time.Minute, "the upstream request to be cancelled", func() bool { return n.LLM.Canceled() == 1 })
	eventually(t, 10*time.Second, "the request to end", func() bool {
		for _, l := range n.logs.lines("request") {
			if l["route"] == "/analyze" {
				return true
			}
		}
		return false
	})
	expectStats(t, n, config.CircuitDataAnalyst, map[string]float64{"failure_count": 0, "timeout_count": 0, "total_calls": 0})
}
