package fakellm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
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

// ---- streaming ----

func streamRequest(includeUsage bool) openai.ChatCompletionRequest {
	req := openai.ChatCompletionRequest{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "say something"}},
	}
	if includeUsage {
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	return req
}

// openStream starts a stream with go-openai's streaming client; it is closed
// when the test ends.
func openStream(t *testing.T, ctx context.Context, c *openai.Client, includeUsage bool) *openai.ChatCompletionStream {
	t.Helper()
	stream, err := c.CreateChatCompletionStream(ctx, streamRequest(includeUsage))
	if err != nil {
		t.Fatalf("CreateChatCompletionStream: %v", err)
	}
	t.Cleanup(func() { _ = stream.Close() })
	return stream
}

// streamed is what a client read from a stream, up to the error that ended it.
type streamed struct {
	chunks []openai.ChatCompletionStreamResponse
	roles  []string              // delta.role of role chunks
	pieces []string              // delta.content of content chunks
	finish []openai.FinishReason // finish_reason of finish chunks
	usage  *openai.Usage
	err    error
}

func (s streamed) text() string { return strings.Join(s.pieces, "") }

// recv reads one chunk into out; it reports false once Recv fails.
func (s *streamed) recv(stream *openai.ChatCompletionStream) bool {
	resp, err := stream.Recv()
	if err != nil {
		s.err = err
		return false
	}
	s.chunks = append(s.chunks, resp)
	if resp.Usage != nil {
		u := *resp.Usage
		s.usage = &u
	}
	for _, ch := range resp.Choices {
		switch {
		case ch.FinishReason != "":
			s.finish = append(s.finish, ch.FinishReason)
		case ch.Delta.Role != "":
			s.roles = append(s.roles, ch.Delta.Role)
		default:
			s.pieces = append(s.pieces, ch.Delta.Content)
		}
	}
	return true
}

func readStream(stream *openai.ChatCompletionStream) streamed {
	var s streamed
	for s.recv(stream) {
	}
	return s
}

// recvN reads n chunks, failing the test if the stream ends first.
func recvN(t *testing.T, stream *openai.ChatCompletionStream, n int) streamed {
	t.Helper()
	var s streamed
	for range n {
		if !s.recv(stream) {
			t.Fatalf("stream ended after %d chunks: %v", len(s.chunks), s.err)
		}
	}
	return s
}

const rawStreamBody = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`

// rawStream posts a stream request with a plain HTTP client and reads the
// whole body; readErr is what reading it ended with.
func rawStream(t *testing.T, s *fakellm.Server) (resp *http.Response, events []string, readErr error) {
	t.Helper()
	resp, err := newHTTPClient(t).Post(s.URL()+"/chat/completions", "application/json", strings.NewReader(rawStreamBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	text := string(body)
	if readErr == nil && !strings.HasSuffix(text, "\n\n") {
		t.Errorf("body does not end with a blank line: %q", text)
	}
	for ev := range strings.SplitSeq(strings.TrimSuffix(text, "\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("event %q is not one data line", ev)
		}
		events = append(events, data)
	}
	return resp, events, readErr
}

func TestStreamSplitsContentIntoWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{name: "words", content: "Hello, big  world!\n", want: []string{"Hello, ", "big  ", "world!\n"}},
		{name: "leading whitespace", content: "  leading space", want: []string{"  leading ", "space"}},
		{name: "one word", content: "one", want: []string{"one"}},
		{name: "only whitespace", content: " \n ", want: []string{" \n "}},
		{name: "empty", content: "", want: nil},
		{name: "unicode", content: "tab\tand\nnew line — ünï 🚀", want: []string{"tab\t", "and\n", "new ", "line ", "— ", "ünï ", "🚀"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			c := newOpenAI(t, s, "k")
			s.Enqueue(fakellm.Reply(tt.content), fakellm.Reply(tt.content))

			got := readStream(openStream(t, t.Context(), c, true))
			if !errors.Is(got.err, io.EOF) {
				t.Fatalf("stream ended with %v, want io.EOF", got.err)
			}
			if !slices.Equal(got.pieces, tt.want) || got.text() != tt.content {
				t.Errorf("pieces = %q, want %q", got.pieces, tt.want)
			}
			if !slices.Equal(got.roles, []string{openai.ChatMessageRoleAssistant}) || !slices.Equal(got.finish, []openai.FinishReason{openai.FinishReasonStop}) {
				t.Errorf("roles = %q, finish = %q", got.roles, got.finish)
			}
			if s.Streams() != 1 || s.ChunksSent() != len(tt.want) {
				t.Errorf("Streams() = %d, ChunksSent() = %d", s.Streams(), s.ChunksSent())
			}

			// The usage is the one a plain request for the same step gets.
			plain, err := c.CreateChatCompletion(t.Context(), streamRequest(false))
			if err != nil {
				t.Fatal(err)
			}
			if got.usage == nil || *got.usage != plain.Usage || got.usage.PromptTokens <= 0 {
				t.Errorf("stream usage = %+v, plain usage = %+v", got.usage, plain.Usage)
			}
		})
	}
}

func TestStreamEnvelope(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Step{Content: "a b", Model: "gpt-4o-2024-08-06", Header: map[string]string{"X-Request-Id": "req-1"}})
	stream := openStream(t, t.Context(), newOpenAI(t, s, "k"), true)
	got := readStream(stream)
	if !errors.Is(got.err, io.EOF) {
		t.Fatalf("err = %v", got.err)
	}
	if h := stream.Header(); h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Request-Id") != "req-1" {
		t.Errorf("headers = %v", h)
	}
	// role, "a ", "b", finish, usage
	if len(got.chunks) != 5 {
		t.Fatalf("%d chunks: %+v", len(got.chunks), got.chunks)
	}
	id := got.chunks[0].ID
	for i, ch := range got.chunks {
		if ch.ID != id || !strings.HasPrefix(id, "chatcmpl-") || ch.Object != "chat.completion.chunk" || ch.Created == 0 ||
			ch.Model != "gpt-4o-2024-08-06" || ch.SystemFingerprint != "fp_fakellm" {
			t.Errorf("chunk %d envelope = %+v", i, ch)
		}
		last := i == len(got.chunks)-1
		if last != (ch.Usage != nil) || last != (len(ch.Choices) == 0) {
			t.Errorf("chunk %d: usage %v, %d choices; only the last has usage and no choices", i, ch.Usage, len(ch.Choices))
		}
	}

	r := s.Received()
	if len(r) != 1 || !r[0].Stream || !r[0].IncludeUsage {
		t.Errorf("recorded = %+v, want Stream and IncludeUsage", r)
	}
}

func TestStreamWithoutUsage(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Reply("a b"))
	got := readStream(openStream(t, t.Context(), newOpenAI(t, s, "k"), false))
	if !errors.Is(got.err, io.EOF) || got.text() != "a b" || got.usage != nil {
		t.Fatalf("got %q, usage %v, err %v; want \"a b\", no usage, EOF", got.text(), got.usage, got.err)
	}
	for _, ch := range got.chunks {
		if len(ch.Choices) != 1 {
			t.Errorf("chunk with %d choices: %+v", len(ch.Choices), ch)
		}
	}
	if r := s.Received(); !r[0].Stream || r[0].IncludeUsage {
		t.Errorf("recorded Stream=%v IncludeUsage=%v", r[0].Stream, r[0].IncludeUsage)
	}
}

// The bytes on the wire, as a non-go-openai client sees them.
func TestStreamWireFormat(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Stream("a", "b"))
	resp, events, err := rawStream(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	want := []string{
		`"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}`,
		`"choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null}],"usage":null}`,
		`"choices":[{"index":0,"delta":{"content":"b"},"logprobs":null,"finish_reason":null}],"usage":null}`,
		`"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
		`"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}`,
		`[DONE]`,
	}
	if len(events) != len(want) {
		t.Fatalf("events = %q", events)
	}
	for i, ev := range events {
		if !strings.HasSuffix(ev, want[i]) {
			t.Errorf("event %d = %s, want it to end with %s", i, ev, want[i])
		}
		if i < len(events)-1 && !strings.Contains(ev, `"object":"chat.completion.chunk"`) {
			t.Errorf("event %d = %s, not a chat.completion.chunk", i, ev)
		}
	}
}

// Explicit Chunks are streamed as given and joined for a plain request, and
// a plain request ignores the stream-only fields.
func TestStreamChunksAndPlainRequests(t *testing.T) {
	t.Parallel()
	chunks := []string{"Hel", "lo", "", " wor", "ld"}
	s := fakellm.New(t)
	c := newOpenAI(t, s, "k")

	s.Enqueue(fakellm.Step{Content: "ignored", Chunks: chunks})
	got := readStream(openStream(t, t.Context(), c, true))
	if !errors.Is(got.err, io.EOF) || !slices.Equal(got.pieces, chunks) {
		t.Fatalf("pieces = %q (err %v), want %q", got.pieces, got.err, chunks)
	}
	if got.usage == nil || got.usage.CompletionTokens != 3 { // "Hello world": 11 bytes
		t.Errorf("usage = %+v", got.usage)
	}

	plain := []struct {
		name string
		step fakellm.Step
	}{
		{name: "Stream", step: fakellm.Stream(chunks...)},
		{name: "SlowFirstToken", step: fakellm.SlowFirstToken(time.Hour, chunks...)},
		{name: "SlowTokens", step: fakellm.SlowTokens(time.Hour, chunks...)},
		{name: "GatedStream", step: fakellm.GatedStream(make(chan struct{}), chunks...)},
		{name: "CutStream EOF", step: fakellm.CutStream(1, fakellm.CutEOF, chunks...)},
		{name: "CutStream reset", step: fakellm.CutStream(0, fakellm.CutReset, chunks...)},
		{name: "HangStream", step: fakellm.HangStream(2, chunks...)},
	}
	for _, p := range plain {
		s.Enqueue(p.step)
		resp, err := chat(t.Context(), c, "m", "hi")
		if err != nil {
			t.Errorf("%s: %v", p.name, err)
			continue
		}
		if got := resp.Choices[0].Message.Content; got != "Hello world" {
			t.Errorf("%s: plain content = %q, want the joined chunks", p.name, got)
		}
	}
	if s.Streams() != 1 || s.ChunksSent() != len(chunks) {
		t.Errorf("Streams() = %d, ChunksSent() = %d; plain requests must not count", s.Streams(), s.ChunksSent())
	}
	if r := s.Received(); r[1].Stream || r[1].IncludeUsage {
		t.Errorf("plain request recorded as Stream=%v IncludeUsage=%v", r[1].Stream, r[1].IncludeUsage)
	}
}

func TestStreamNoChoices(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Step{NoChoices: true, Content: "not sent"})
	got := readStream(openStream(t, t.Context(), newOpenAI(t, s, "k"), true))
	if !errors.Is(got.err, io.EOF) || len(got.pieces) != 0 || len(got.roles) != 1 || len(got.finish) != 1 {
		t.Fatalf("pieces %q roles %q finish %q err %v; want only the role and finish chunks", got.pieces, got.roles, got.finish, got.err)
	}
	if got.usage == nil || got.usage.CompletionTokens != 0 || got.usage.PromptTokens == 0 {
		t.Errorf("usage = %+v", got.usage)
	}
}

// The headers and the role chunk come at once; the first content chunk only
// after FirstChunkDelay. An hour-long delay shows the order without timing.
func TestStreamFirstChunkDelay(t *testing.T) {
	t.Parallel()
	t.Run("headers and role chunk before the delay", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.SlowFirstToken(time.Hour, "never"))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stream := openStream(t, ctx, newOpenAI(t, s, "k"), true)
		got := recvN(t, stream, 1)
		if !slices.Equal(got.roles, []string{"assistant"}) {
			t.Fatalf("first chunk = %+v, want the role chunk", got.chunks[0])
		}
		if s.Streams() != 1 || s.ChunksSent() != 0 {
			t.Fatalf("Streams() = %d, ChunksSent() = %d", s.Streams(), s.ChunksSent())
		}
		cancel()
		if got.recv(stream) {
			t.Fatalf("got a chunk after cancel: %+v", got.chunks[len(got.chunks)-1])
		}
		eventually(t, "Canceled() == 1", func() bool { return s.Canceled() == 1 })
		eventually(t, "InFlight() == 0", func() bool { return s.InFlight() == 0 })
		if s.ChunksSent() != 0 || s.Canceled() != 1 {
			t.Errorf("ChunksSent() = %d, Canceled() = %d", s.ChunksSent(), s.Canceled())
		}
	})
	t.Run("content after the delay", func(t *testing.T) {
		t.Parallel()
		const d = 200 * time.Millisecond
		s := fakellm.New(t)
		s.Enqueue(fakellm.SlowFirstToken(d, "a", "b"))
		start := time.Now()
		stream := openStream(t, t.Context(), newOpenAI(t, s, "k"), false)
		got := recvN(t, stream, 2) // role, "a"
		if el := time.Since(start); el < d {
			t.Errorf("first content after %v, want >= %v", el, d)
		}
		for got.recv(stream) {
		}
		if !errors.Is(got.err, io.EOF) || got.text() != "ab" {
			t.Errorf("got %q, err %v", got.text(), got.err)
		}
	})
}

func TestStreamChunkDelay(t *testing.T) {
	t.Parallel()
	const d = 40 * time.Millisecond
	tests := []struct {
		name string
		step fakellm.Step
		min  time.Duration
	}{
		{name: "SlowTokens", step: fakellm.SlowTokens(d, "a", "b", "c"), min: 3 * d},
		{name: "ChunkDelay only", step: fakellm.Step{ChunkDelay: d, Chunks: []string{"a", "b", "c"}}, min: 2 * d},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			s.Enqueue(tt.step)
			start := time.Now()
			got := readStream(openStream(t, t.Context(), newOpenAI(t, s, "k"), false))
			if el := time.Since(start); el < tt.min {
				t.Errorf("stream took %v, want >= %v", el, tt.min)
			}
			if !errors.Is(got.err, io.EOF) || got.text() != "abc" {
				t.Errorf("got %q, err %v", got.text(), got.err)
			}
		})
	}
}

// A gate lets the test release a stream piece by piece.
func TestStreamGate(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	gate := make(chan struct{})
	s.Enqueue(fakellm.GatedStream(gate, "a", "b", "c"))
	stream := openStream(t, t.Context(), newOpenAI(t, s, "k"), false)
	got := recvN(t, stream, 1) // the role chunk is not gated

	next := make(chan streamed)
	recvOne := func() {
		var one streamed
		one.recv(stream)
		next <- one
	}
	for i, want := range []string{"a", "b"} {
		go recvOne()
		// The fake counts a piece once it is flushed, possibly after the
		// client has it, so only "no more than released" is exact.
		if n := s.ChunksSent(); n > i {
			t.Fatalf("ChunksSent() = %d before releasing piece %d", n, i)
		}
		gate <- struct{}{} // returns once the fake, waiting at the gate, took it
		one := <-next
		if !slices.Equal(one.pieces, []string{want}) {
			t.Fatalf("piece %d = %q (err %v), want %q", i, one.pieces, one.err, want)
		}
	}
	close(gate)
	for got.recv(stream) {
	}
	if !errors.Is(got.err, io.EOF) || got.text() != "c" || len(got.finish) != 1 {
		t.Errorf("rest = %q, finish %q, err %v", got.text(), got.finish, got.err)
	}
}

func TestStreamCutEOF(t *testing.T) {
	t.Parallel()
	chunks := []string{"one ", "two ", "three ", "four ", "five"}
	tests := []struct {
		name  string
		after int
		want  []string
	}{
		{name: "after 3", after: 3, want: chunks[:3]},
		{name: "before any content", after: 0, want: nil},
		{name: "after all content", after: 99, want: chunks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			c := newOpenAI(t, s, "k")
			step := fakellm.CutStream(tt.after, fakellm.CutEOF, chunks...)
			s.Enqueue(step)

			// go-openai cannot tell a cut from [DONE]: both are io.EOF.
			got := readStream(openStream(t, t.Context(), c, true))
			if !errors.Is(got.err, io.EOF) || !slices.Equal(got.pieces, tt.want) {
				t.Errorf("pieces %q, err %v; want %q then io.EOF", got.pieces, got.err, tt.want)
			}
			if len(got.finish) != 0 || got.usage != nil {
				t.Errorf("finish %q, usage %v after a cut", got.finish, got.usage)
			}

			// On the wire: a complete body with the role and content chunks only.
			s.Enqueue(step)
			_, events, err := rawStream(t, s)
			if err != nil {
				t.Fatalf("reading a cleanly cut body: %v", err)
			}
			if len(events) != 1+len(tt.want) {
				t.Errorf("%d events, want role + %d content: %q", len(events), len(tt.want), events)
			}
			for _, ev := range events {
				if ev == "[DONE]" || strings.Contains(ev, `"finish_reason":"stop"`) || strings.Contains(ev, `"choices":[]`) {
					t.Errorf("event after the cut: %s", ev)
				}
			}

			// The connection is fine, and so is the server.
			if got := content(t, c, "m"); got != "ok" {
				t.Errorf("after the cut got %q", got)
			}
			if s.Canceled() != 0 || s.ChunksSent() != 2*len(tt.want) {
				t.Errorf("Canceled() = %d, ChunksSent() = %d", s.Canceled(), s.ChunksSent())
			}
		})
	}
}

func TestStreamCutReset(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	c := newOpenAI(t, s, "k")
	step := fakellm.CutStream(3, fakellm.CutReset, "one ", "two ", "three ", "four")
	s.Enqueue(step)

	got := readStream(openStream(t, t.Context(), c, true))
	if want := []string{"one ", "two ", "three "}; !slices.Equal(got.pieces, want) {
		t.Errorf("pieces = %q, want %q", got.pieces, want)
	}
	if got.err == nil || errors.Is(got.err, io.EOF) {
		t.Fatalf("stream ended with %v, want a connection error", got.err)
	}
	if !errors.Is(got.err, syscall.ECONNRESET) && !errors.Is(got.err, io.ErrUnexpectedEOF) {
		t.Errorf("err = %v, want connection reset (or unexpected EOF)", got.err)
	}

	s.Enqueue(step)
	if _, _, err := rawStream(t, s); err == nil {
		t.Error("a plain reader read the reset body without error")
	}

	if got := content(t, c, "m"); got != "ok" {
		t.Errorf("after the reset got %q", got)
	}
	if s.Canceled() != 0 || s.Streams() != 2 {
		t.Errorf("Canceled() = %d, Streams() = %d", s.Canceled(), s.Streams())
	}
}

// A stream hanging mid-way ends promptly when its client gives up, and
// counts once in Canceled.
func TestStreamHangCanceledByClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		quit func(cancel context.CancelFunc, stream *openai.ChatCompletionStream)
	}{
		{name: "context canceled", quit: func(cancel context.CancelFunc, _ *openai.ChatCompletionStream) { cancel() }},
		{name: "stream closed", quit: func(_ context.CancelFunc, stream *openai.ChatCompletionStream) { _ = stream.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			s.Enqueue(fakellm.HangStream(1, "first ", "never"))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream := openStream(t, ctx, newOpenAI(t, s, "k"), true)
			got := recvN(t, stream, 2)
			if !slices.Equal(got.pieces, []string{"first "}) {
				t.Fatalf("pieces = %q", got.pieces)
			}
			tt.quit(cancel, stream)
			eventually(t, "Canceled() == 1", func() bool { return s.Canceled() == 1 })
			eventually(t, "InFlight() == 0", func() bool { return s.InFlight() == 0 })
			if s.Canceled() != 1 || s.ChunksSent() != 1 {
				t.Errorf("Canceled() = %d, ChunksSent() = %d", s.Canceled(), s.ChunksSent())
			}
		})
	}
}

// Close aborts streams waiting anywhere: hanging, before the first chunk,
// between chunks, at a gate.
func TestCloseAbortsStreams(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	c := newOpenAI(t, s, "k")
	steps := []fakellm.Step{
		fakellm.HangStream(1, "a", "b"),
		fakellm.SlowFirstToken(time.Hour, "a"),
		{ChunkDelay: time.Hour, Chunks: []string{"a", "b"}},
		fakellm.GatedStream(make(chan struct{}), "a"),
	}
	s.Enqueue(steps...)
	results := make(chan streamed, len(steps))
	for range steps {
		// Open the streams one by one, so each gets the next step.
		stream := openStream(t, context.Background(), c, false)
		go func() { results <- readStream(stream) }()
	}
	eventually(t, "all streams in flight, two chunks sent", func() bool {
		return s.InFlight() == len(steps) && s.ChunksSent() == 2
	})

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while streams were waiting")
	}
	for range steps {
		got := <-results
		if got.err == nil || errors.Is(got.err, io.EOF) || len(got.finish) != 0 {
			t.Errorf("stream ended with %v (finish %q), want a connection error", got.err, got.finish)
		}
	}
	if s.InFlight() != 0 || s.Canceled() != 0 {
		t.Errorf("InFlight=%d Canceled=%d after Close, want 0/0", s.InFlight(), s.Canceled())
	}
}

// Errors are plain JSON before any stream starts, as OpenAI sends them.
func TestStreamErrorStatusIsAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		step     fakellm.Step
		wantCode int
		wantMsg  string
	}{
		{name: "503", step: fakellm.Status(503, "overloaded"), wantCode: 503, wantMsg: "overloaded"},
		{name: "429", step: fakellm.RateLimited(2), wantCode: 429, wantMsg: "Rate limit reached for requests. Please try again later."},
		{name: "400 context", step: fakellm.ContextTooLong(), wantCode: 400, wantMsg: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."},
		{name: "error after delay", step: fakellm.Step{Status: 500, Message: "late", Delay: 10 * time.Millisecond}, wantCode: 500, wantMsg: "late"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := fakellm.New(t)
			s.Enqueue(tt.step)
			_, err := newOpenAI(t, s, "k").CreateChatCompletionStream(t.Context(), streamRequest(true))
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *openai.APIError", err, err)
			}
			if apiErr.HTTPStatusCode != tt.wantCode || apiErr.Message != tt.wantMsg {
				t.Errorf("APIError = %+v, want %d %q", apiErr, tt.wantCode, tt.wantMsg)
			}
			if s.Streams() != 0 || !s.Received()[0].Stream {
				t.Errorf("Streams() = %d, recorded Stream = %v", s.Streams(), s.Received()[0].Stream)
			}
		})
	}
}

// Faults that act before an answer starts work for stream requests too.
func TestStreamFaultsBeforeTheStream(t *testing.T) {
	t.Parallel()
	t.Run("Delay then stream", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.Delay(20*time.Millisecond, "late answer"))
		got := readStream(openStream(t, t.Context(), newOpenAI(t, s, "k"), false))
		if !errors.Is(got.err, io.EOF) || got.text() != "late answer" {
			t.Errorf("got %q, err %v", got.text(), got.err)
		}
	})
	t.Run("ResetConn", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.ResetConn())
		_, err := newOpenAI(t, s, "k").CreateChatCompletionStream(t.Context(), streamRequest(false))
		var apiErr *openai.APIError
		if err == nil || errors.As(err, &apiErr) {
			t.Errorf("err = %v, want a transport error", err)
		}
	})
	t.Run("Hang", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.Hang())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := newOpenAI(t, s, "k").CreateChatCompletionStream(ctx, streamRequest(false))
			errc <- err
		}()
		// Cancel only once the fake has the request, or there is nothing to count.
		eventually(t, "RequestsFor(gpt-4o-mini) == 1", func() bool { return s.RequestsFor("gpt-4o-mini") == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		eventually(t, "Canceled() == 1", func() bool { return s.Canceled() == 1 })
	})
	// A 200 that is not an event stream (here: truncated JSON) is, to
	// go-openai, an empty stream: the first Recv is io.EOF.
	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		s := fakellm.New(t)
		s.Enqueue(fakellm.Malformed())
		stream := openStream(t, t.Context(), newOpenAI(t, s, "k"), false)
		got := readStream(stream)
		if !errors.Is(got.err, io.EOF) || len(got.chunks) != 0 {
			t.Errorf("chunks %d, err %v", len(got.chunks), got.err)
		}
		if ct := stream.Header().Get("Content-Type"); ct != "application/json" || s.Streams() != 0 {
			t.Errorf("Content-Type %q, Streams() = %d", ct, s.Streams())
		}
	})
}

// RawBody scripts a hand-made event stream, e.g. an error event mid-stream.
func TestStreamRawBodyErrorEvent(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.Enqueue(fakellm.Step{
		ContentType: "text/event-stream",
		RawBody: `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}` + "\n\n" +
			`data: {"error":{"message":"upstream overloaded","type":"server_error","code":null}}` + "\n\n",
	})
	got := readStream(openStream(t, t.Context(), newOpenAI(t, s, "k"), false))
	var apiErr *openai.APIError
	if got.text() != "par" || !errors.As(got.err, &apiErr) || apiErr.Message != "upstream overloaded" {
		t.Errorf("got %q, err %T %v; want \"par\" then an APIError", got.text(), got.err, got.err)
	}
}

func TestStreamCountsAndReset(t *testing.T) {
	t.Parallel()
	s := fakellm.New(t)
	s.SetDefault(fakellm.Reply("a b c"))
	c := newOpenAI(t, s, "k")
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			stream, err := c.CreateChatCompletionStream(t.Context(), streamRequest(true))
			if err != nil {
				t.Error(err)
				return
			}
			defer stream.Close()
			if got := readStream(stream); !errors.Is(got.err, io.EOF) || got.text() != "a b c" {
				t.Errorf("got %q, err %v", got.text(), got.err)
			}
		})
	}
	wg.Wait()
	// go-openai stops reading at [DONE], perhaps before the handler returned.
	eventually(t, "InFlight() == 0", func() bool { return s.InFlight() == 0 })
	if s.Streams() != n || s.ChunksSent() != 3*n || s.Requests() != n {
		t.Errorf("Streams=%d ChunksSent=%d Requests=%d", s.Streams(), s.ChunksSent(), s.Requests())
	}
	s.Reset()
	if s.Streams() != 0 || s.ChunksSent() != 0 {
		t.Errorf("after Reset Streams=%d ChunksSent=%d", s.Streams(), s.ChunksSent())
	}
}
