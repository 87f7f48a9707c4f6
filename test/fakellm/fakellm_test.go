package fakellm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/nexus/nexus/test/fakellm"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newHTTPClient returns a client with its own transport so idle keep-alive
// goroutines are torn down per test (goleak).
func newHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func newOpenAI(t *testing.T, s *fakellm.Server, key string) *openai.Client {
	t.Helper()
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = s.URL()
	cfg.HTTPClient = newHTTPClient(t)
	return openai.NewClientWithConfig(cfg)
}

func chat(ctx context.Context, c *openai.Client, model, prompt string) (openai.ChatCompletionResponse, error) {
	return c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:    model,
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: prompt}},
	})
}

func content(t *testing.T, c *openai.Client, model string) string {
	t.Helper()
	resp, err := chat(t.Context(), c, model, "hi")
	if err != nil {
		t.Fatalf("chat(%q): %v", model, err)
	}
	if len(resp.Choices) != 1 {
		t.Fatalf("chat(%q): %d choices, want 1", model, len(resp.Choices))
	}
	return resp.Choices[0].Message.Content
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rawDo(t *testing.T, method, url, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := newHTTPClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

type errorEnvelope struct {
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeError(t *testing.T, body string) errorEnvelope {
	t.Helper()
	var e errorEnvelope
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
		t.Fatalf("body %q is not an OpenAI error envelope (err=%v)", body, err)
	}
	return e
}

func TestReplyRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
	}{
		{name: "plain", content: "hello world"},
		{name: "json escaping and unicode", content: "quote \" backslash \\ newline \n emoji 🚀 <tag>&"},
		{name: "empty", content: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			c := newOpenAI(t, s, "k")
			s.Enqueue(fakellm.Reply(tt.content))

			resp, err := c.CreateChatCompletion(t.Context(), openai.ChatCompletionRequest{
				Model:       "gpt-4o-mini",
				Temperature: 0.5,
				MaxTokens:   42,
				Messages: []openai.ChatCompletionMessage{
					{Role: openai.ChatMessageRoleSystem, Content: "be brief"},
					{Role: openai.ChatMessageRoleUser, Content: "say it"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "chat.completion" || resp.Model != "gpt-4o-mini" || !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Created == 0 {
				t.Errorf("unexpected envelope: %+v", resp)
			}
			if len(resp.Choices) != 1 {
				t.Fatalf("choices = %d, want 1", len(resp.Choices))
			}
			ch := resp.Choices[0]
			if ch.Message.Content != tt.content || ch.Message.Role != openai.ChatMessageRoleAssistant || ch.FinishReason != openai.FinishReasonStop || ch.Index != 0 {
				t.Errorf("choice = %+v, want assistant %q stop", ch, tt.content)
			}
			u := resp.Usage
			if u.PromptTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Errorf("usage = %+v", u)
			}

			got := s.Received()
			if len(got) != 1 {
				t.Fatalf("Received() = %d requests, want 1", len(got))
			}
			r := got[0]
			if r.Model != "gpt-4o-mini" || r.MaxTokens != 42 || r.Temperature == nil || *r.Temperature != 0.5 {
				t.Errorf("recorded request = %+v", r)
			}
			want := []fakellm.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "say it"}}
			if len(r.Messages) != len(want) || r.Messages[0] != want[0] || r.Messages[1] != want[1] {
				t.Errorf("messages = %+v, want %+v", r.Messages, want)
			}
			if r.Header.Get("Authorization") != "Bearer k" {
				t.Errorf("recorded Authorization = %q", r.Header.Get("Authorization"))
			}
		})
	}
}

func TestResolutionOrder(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	c := newOpenAI(t, s, "k")

	if got := content(t, c, "m"); got != "ok" {
		t.Fatalf("default default = %q, want ok", got)
	}

	s.Enqueue(fakellm.Reply("g1"), fakellm.Reply("g2"))
	s.EnqueueFor("a", fakellm.Reply("a1"))
	s.SetDefaultFor("a", fakellm.Reply("a-default"))
	s.SetDefault(fakellm.Reply("global-default"))

	steps := []struct {
		name  string
		model string
		want  string
	}{
		{name: "model queue beats global queue", model: "a", want: "a1"},
		{name: "other model uses global queue", model: "b", want: "g1"},
		{name: "model falls back to global queue", model: "a", want: "g2"},
		{name: "then model default", model: "a", want: "a-default"},
		{name: "model default is not consumed", model: "a", want: "a-default"},
		{name: "other model gets global default", model: "b", want: "global-default"},
	}
	for _, st := range steps {
		if got := content(t, c, st.model); got != st.want {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
	}
}

func TestWithDefaultAndReset(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t, fakellm.WithDefault(fakellm.Reply("configured")))
	c := newOpenAI(t, s, "k")

	s.SetDefault(fakellm.Reply("overridden"))
	s.Enqueue(fakellm.Reply("queued1"), fakellm.Reply("queued2"))
	s.EnqueueFor("x", fakellm.Reply("x1"))
	if got := content(t, c, "m"); got != "queued1" {
		t.Fatalf("got %q", got)
	}

	s.Reset()
	if s.Requests() != 0 || s.RequestsFor("m") != 0 || len(s.Received()) != 0 || s.Canceled() != 0 {
		t.Fatalf("Reset left counters: requests=%d received=%d", s.Requests(), len(s.Received()))
	}
	for _, model := range []string{"m", "x"} {
		if got := content(t, c, model); got != "configured" {
			t.Errorf("after Reset %s got %q, want WithDefault value", model, got)
		}
	}
}

func TestSetHandler(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	c := newOpenAI(t, s, "k")
	s.Enqueue(fakellm.Reply("queued"))

	s.SetHandler(func(req fakellm.Request) fakellm.Step {
		return fakellm.Reply("echo:" + req.Messages[len(req.Messages)-1].Content)
	})
	resp, err := chat(t.Context(), c, "m", "ping")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "echo:ping" {
		t.Errorf("hook reply = %q", got)
	}

	s.SetHandler(nil)
	if got := content(t, c, "m"); got != "queued" {
		t.Errorf("after removing hook got %q, want the untouched queued step", got)
	}
}

func TestStepOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		step  fakellm.Step
		check func(t *testing.T, resp openai.ChatCompletionResponse)
	}{
		{
			name: "model override",
			step: fakellm.Step{Content: "x", Model: "gpt-4o-2024-08-06"},
			check: func(t *testing.T, resp openai.ChatCompletionResponse) {
				if resp.Model != "gpt-4o-2024-08-06" {
					t.Errorf("model = %q", resp.Model)
				}
			},
		},
		{
			name: "no choices",
			step: fakellm.Step{NoChoices: true},
			check: func(t *testing.T, resp openai.ChatCompletionResponse) {
				if resp.Choices == nil || len(resp.Choices) != 0 {
					t.Errorf("choices = %#v, want empty non-nil", resp.Choices)
				}
				if resp.Object != "chat.completion" {
					t.Errorf("object = %q", resp.Object)
				}
			},
		},
		{
			name: "extra header",
			step: fakellm.Step{Content: "x", Header: map[string]string{"X-Request-Id": "req-123"}},
			check: func(t *testing.T, resp openai.ChatCompletionResponse) {
				if got := resp.Header().Get("X-Request-Id"); got != "req-123" {
					t.Errorf("X-Request-Id = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			s.Enqueue(tt.step)
			resp, err := chat(t.Context(), newOpenAI(t, s, "k"), "gpt-4o", "hi")
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, resp)
		})
	}
}

func TestErrorStatusIsAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		step     fakellm.Step
		wantCode int
		wantMsg  string
		wantType string
	}{
		{name: "400", step: fakellm.Status(400, "bad prompt"), wantCode: 400, wantMsg: "bad prompt", wantType: "invalid_request_error"},
		{name: "404 default message", step: fakellm.Status(404, ""), wantCode: 404, wantMsg: "Not Found", wantType: "invalid_request_error"},
		{name: "500", step: fakellm.Status(500, "boom"), wantCode: 500, wantMsg: "boom", wantType: "server_error"},
		{name: "503", step: fakellm.Status(503, "overloaded"), wantCode: 503, wantMsg: "overloaded", wantType: "server_error"},
		{name: "429", step: fakellm.RateLimited(3), wantCode: 429, wantMsg: "Rate limit reached for requests. Please try again later.", wantType: "requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			s.Enqueue(tt.step)
			_, err := chat(t.Context(), newOpenAI(t, s, "k"), "m", "hi")
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *openai.APIError", err, err)
			}
			if apiErr.HTTPStatusCode != tt.wantCode || apiErr.Message != tt.wantMsg || apiErr.Type != tt.wantType {
				t.Errorf("APIError = %+v, want code %d msg %q type %q", apiErr, tt.wantCode, tt.wantMsg, tt.wantType)
			}
		})
	}
}

func TestRawBodyNonJSONIsRequestError(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Step{Status: 502, RawBody: "upstream connect error", ContentType: "text/plain"})
	_, err := chat(t.Context(), newOpenAI(t, s, "k"), "m", "hi")
	var reqErr *openai.RequestError
	if !errors.As(err, &reqErr) {
		t.Fatalf("err = %T %v, want *openai.RequestError", err, err)
	}
	if reqErr.HTTPStatusCode != 502 || string(reqErr.Body) != "upstream connect error" {
		t.Errorf("RequestError = %+v", reqErr)
	}
}

func TestMalformed200(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Malformed())
	_, err := chat(t.Context(), newOpenAI(t, s, "k"), "m", "hi")
	if err == nil {
		t.Fatal("want decode error for malformed body")
	}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	if errors.As(err, &apiErr) || errors.As(err, &reqErr) {
		t.Errorf("err = %T %v, want a JSON decode error", err, err)
	}
}

func TestRateLimitedRetryAfter(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.RateLimited(7))
	code, hdr, body := rawDo(t, http.MethodPost, s.URL()+"/chat/completions", `{"model":"m","messages":[]}`, nil)
	if code != http.StatusTooManyRequests {
		t.Fatalf("status = %d", code)
	}
	if got := hdr.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After = %q, want 7", got)
	}
	e := decodeError(t, body)
	if e.Error.Code == nil || *e.Error.Code != "rate_limit_exceeded" {
		t.Errorf("error = %+v", e.Error)
	}
}

func TestHangCanceledByClientTimeout(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Hang())
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := chat(ctx, newOpenAI(t, s, "k"), "m", "hi")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	eventually(t, "Canceled() == 1", func() bool { return s.Canceled() == 1 })
	eventually(t, "InFlight() == 0", func() bool { return s.InFlight() == 0 })
	if s.Requests() != 1 {
		t.Errorf("Requests() = %d", s.Requests())
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	t.Run("answers after delay", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.Delay(50*time.Millisecond, "late"))
		start := time.Now()
		if got := content(t, newOpenAI(t, s, "k"), "m"); got != "late" {
			t.Errorf("got %q", got)
		}
		if el := time.Since(start); el < 50*time.Millisecond {
			t.Errorf("answered after %v, want >= 50ms", el)
		}
		if s.Canceled() != 0 {
			t.Errorf("Canceled() = %d", s.Canceled())
		}
	})
	t.Run("client gives up during delay", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.Delay(time.Minute, "never"))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := chat(ctx, newOpenAI(t, s, "k"), "m", "hi"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		eventually(t, "Canceled() == 1", func() bool { return s.Canceled() == 1 })
	})
}

// Held answers only once the test releases it, however long that takes.
func TestHeld(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	release := make(chan struct{})
	s.Enqueue(fakellm.Held(release, "released"))
	got := make(chan string, 1)
	go func() { got <- content(t, newOpenAI(t, s, "k"), "m") }()
	eventually(t, "InFlight() == 1", func() bool { return s.InFlight() == 1 })
	select {
	case c := <-got:
		t.Fatalf("answered %q before the release", c)
	default:
	}
	close(release)
	if c := <-got; c != "released" {
		t.Fatalf("got %q, want released", c)
	}
	if s.Canceled() != 0 || s.Requests() != 1 {
		t.Errorf("Canceled() = %d, Requests() = %d", s.Canceled(), s.Requests())
	}
}

func TestCloseUnblocksHang(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.SetDefault(fakellm.Hang())
	c := newOpenAI(t, s, "k")

	const n = 3
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := chat(context.Background(), c, "m", "hi")
			errs <- err
		}()
	}
	eventually(t, "all requests in flight", func() bool { return s.InFlight() == n })

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while handlers were hanging")
	}
	for range n {
		if err := <-errs; err == nil {
			t.Error("hanging request succeeded after Close, want connection error")
		}
	}
	if s.InFlight() != 0 || s.Canceled() != 0 {
		t.Errorf("InFlight=%d Canceled=%d after Close, want 0/0", s.InFlight(), s.Canceled())
	}
}

func TestResetConn(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.ResetConn())
	c := newOpenAI(t, s, "k")
	_, err := chat(t.Context(), c, "m", "hi")
	if err == nil {
		t.Fatal("want connection error")
	}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	if errors.As(err, &apiErr) || errors.As(err, &reqErr) {
		t.Fatalf("err = %T %v, want transport-level error", err, err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want connection reset / EOF", err)
	}
	// The server keeps working for subsequent requests.
	if got := content(t, c, "m"); got != "ok" {
		t.Errorf("after reset got %q", got)
	}
	if s.Requests() != 2 {
		t.Errorf("Requests() = %d, want 2", s.Requests())
	}
}

func TestCounts(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	c := newOpenAI(t, s, "k")
	s.EnqueueFor("a", fakellm.Repeat(5, fakellm.Reply("a"))...)

	var wg sync.WaitGroup
	for i := range 15 {
		model := "b"
		if i%3 == 0 {
			model = "a"
		}
		wg.Go(func() {
			if _, err := chat(t.Context(), c, model, "hi"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	if got := s.Requests(); got != 15 {
		t.Errorf("Requests() = %d, want 15", got)
	}
	if a, b, z := s.RequestsFor("a"), s.RequestsFor("b"), s.RequestsFor("z"); a != 5 || b != 10 || z != 0 {
		t.Errorf("RequestsFor a=%d b=%d z=%d, want 5/10/0", a, b, z)
	}
	if got := len(s.Received()); got != 15 {
		t.Errorf("len(Received()) = %d", got)
	}
	if s.InFlight() != 0 {
		t.Errorf("InFlight() = %d", s.InFlight())
	}

	code, _, body := rawDo(t, http.MethodGet, s.URL()+"/models", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `"id":"a"`) || !strings.Contains(body, `"id":"b"`) {
		t.Errorf("GET /v1/models = %d %s", code, body)
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	const key = "sk-super-secret-123"
	s := fakellm.New(t, fakellm.WithAPIKey(key))
	s.Enqueue(fakellm.Reply("authorized"))

	tests := []struct {
		name string
		hdr  map[string]string
	}{
		{name: "missing header"},
		{name: "wrong key", hdr: map[string]string{"Authorization": "Bearer sk-wrong"}},
		{name: "key without bearer", hdr: map[string]string{"Authorization": key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := rawDo(t, http.MethodPost, s.URL()+"/chat/completions", `{"model":"m","messages":[]}`, tt.hdr)
			if code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", code)
			}
			if strings.Contains(body, key) || strings.Contains(body, "sk-wrong") {
				t.Errorf("401 body echoes a key: %s", body)
			}
			e := decodeError(t, body)
			if e.Error.Message != "Incorrect API key provided" || e.Error.Type != "invalid_request_error" || e.Error.Code == nil || *e.Error.Code != "invalid_api_key" {
				t.Errorf("error = %+v", e.Error)
			}
		})
	}

	_, err := chat(t.Context(), newOpenAI(t, s, "sk-wrong"), "m", "hi")
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Fatalf("go-openai err = %T %v, want 401 APIError", err, err)
	}

	// Rejected requests are counted but neither recorded nor consume the script.
	if got := content(t, newOpenAI(t, s, key), "m"); got != "authorized" {
		t.Errorf("with correct key got %q", got)
	}
	if s.Requests() != len(tests)+2 || s.RequestsFor("m") != 1 || len(s.Received()) != 1 {
		t.Errorf("Requests=%d RequestsFor=%d Received=%d", s.Requests(), s.RequestsFor("m"), len(s.Received()))
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		want   int
	}{
		{name: "unknown path", method: http.MethodPost, path: "/v1/completions", body: "{}", want: http.StatusNotFound},
		{name: "root", method: http.MethodGet, path: "/", want: http.StatusNotFound},
		{name: "GET chat", method: http.MethodGet, path: "/v1/chat/completions", want: http.StatusMethodNotAllowed},
		{name: "invalid JSON", method: http.MethodPost, path: "/v1/chat/completions", body: `{"model":`, want: http.StatusBadRequest},
		{name: "missing model", method: http.MethodPost, path: "/v1/chat/completions", body: `{"messages":[]}`, want: http.StatusBadRequest},
		{name: "bad content type", method: http.MethodPost, path: "/v1/chat/completions", body: `{"model":"m","messages":[{"role":"user","content":5}]}`, want: http.StatusBadRequest},
	}
	base := strings.TrimSuffix(s.URL(), "/v1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, hdr, body := rawDo(t, tt.method, base+tt.path, tt.body, nil)
			if code != tt.want {
				t.Errorf("status = %d, want %d (body %s)", code, tt.want, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			decodeError(t, body)
		})
	}
}

func TestMultiPartContentRecorded(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	_, err := newOpenAI(t, s, "k").CreateChatCompletion(t.Context(), openai.ChatCompletionRequest{
		Model: "m",
		Messages: []openai.ChatCompletionMessage{{
			Role: openai.ChatMessageRoleUser,
			MultiContent: []openai.ChatMessagePart{
				{Type: openai.ChatMessagePartTypeText, Text: "part one"},
				{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "https://example.invalid/x.png"}},
				{Type: openai.ChatMessagePartTypeText, Text: "part two"},
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Received()[0].Messages[0].Content; got != "part one\npart two" {
		t.Errorf("content = %q", got)
	}
}

// postChat sends a minimal chat request with a plain HTTP client, so that a
// test can read as much of the body as it likes.
func postChat(t *testing.T, s *fakellm.Server) *http.Response {
	t.Helper()
	resp, err := newHTTPClient(t).Post(s.URL()+"/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Whitespace sends exactly its bytes of spaces under the step's status.
func TestWhitespaceShouldSendThatManySpaces(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Step{Status: 500, Whitespace: 100_000})
	resp := postChat(t, s)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 || len(body) != 100_000 || strings.TrimSpace(string(body)) != "" {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	if s.Canceled() != 0 {
		t.Fatalf("Canceled() = %d after a full read", s.Canceled())
	}
}

// A client that hangs up mid-stream stops it, and is counted in Canceled.
func TestWhitespaceShouldStopWhenTheClientGoesAway(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Step{Whitespace: 1 << 30})
	resp := postChat(t, s)
	if _, err := io.CopyN(io.Discard, resp.Body, 64<<10); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	eventually(t, "Canceled() == 1", func() bool { return s.Canceled() == 1 })
	eventually(t, "InFlight() == 0", func() bool { return s.InFlight() == 0 })
}
