package llm_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/llm"
)

const completionJSON = `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}`

// upstream is an httptest LLM whose n-th request (from 0) is answered by
// answers[n], and which counts the connections it accepted.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
	calls int
}

func newUpstream(t *testing.T, answers ...http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		n := u.calls
		u.calls++
		u.mu.Unlock()
		answers[n](w, r)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.mu.Lock()
			u.conns++
			u.mu.Unlock()
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) connections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

func (u *upstream) client(limit int64) *llm.Client {
	return llm.NewClient(llm.Config{BaseURL: u.URL + "/v1", APIKey: "k", MaxIdleConnsPerHost: 4, MaxResponseBytes: limit})
}

func fixed(status int, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
}

// whitespaceForever answers 200 and streams spaces until the client goes
// away (reported on gone) or, as a bound for a client without a cap, 256 MiB
// have been sent (reported as false).
func whitespaceForever(gone chan<- bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte(" "), 32<<10)
		rc := http.NewResponseController(w)
		for sent := 0; sent < 256<<20; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				gone <- true
				return
			}
			if rc.Flush() != nil || r.Context().Err() != nil {
				gone <- true
				return
			}
		}
		gone <- false
	}
}

func chat(t *testing.T, c *llm.Client) (llm.ChatResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Chat(ctx, "m", llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: "hi"}}})
}

func expectTooLarge(t *testing.T, err error, limit int64) {
	t.Helper()
	var tooLarge *llm.ResponseTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Limit != limit {
		t.Fatalf("err = %.300v, want a *ResponseTooLargeError with limit %d", err, limit)
	}
	if o, k := llm.Classify(context.Background(), err); o != llm.Failure || k != llm.KindUnavailable {
		t.Fatalf("Classify = (%v, %q), want a counted failure", o, k)
	}
}

// Given an upstream that answers 200 and then streams whitespace forever,
// when the client reads past max_response_bytes, then the call fails as too
// large, the upstream sees the client go away, and the next call opens a
// new connection.
func TestLLMClientShouldCutAnEndlessReplyAtTheCap(t *testing.T) {
	t.Parallel()
	gone := make(chan bool, 1)
	u := newUpstream(t, whitespaceForever(gone), fixed(http.StatusOK, []byte(completionJSON)))
	c := u.client(64 << 10)
	defer c.Close()

	_, err := chat(t, c)
	expectTooLarge(t, err, 64<<10)
	select {
	case wentAway := <-gone:
		if !wentAway {
			t.Fatal("the upstream streamed 256 MiB: the client never hung up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream is still streaming 10 s after the call failed")
	}
	if resp, err := chat(t, c); err != nil || resp.Content != "fine" {
		t.Fatalf("next call: %v, %v", resp, err)
	}
	if n := u.connections(); n != 2 {
		t.Fatalf("connections = %d, want 2 (the cut one is not reused)", n)
	}
}

// Given a 500 whose error body is 10 MB, the body is read only up to the
// cap and the connection is not reused.
func TestLLMClientShouldCutAHugeErrorBodyAtTheCap(t *testing.T) {
	t.Parallel()
	huge := append(append([]byte(`{"error":{"message":"`), bytes.Repeat([]byte("x"), 10<<20)...), `"}}`...)
	u := newUpstream(t, fixed(http.StatusInternalServerError, huge), fixed(http.StatusOK, []byte(completionJSON)))
	c := u.client(64 << 10)
	defer c.Close()

	_, err := chat(t, c)
	expectTooLarge(t, err, 64<<10)
	if _, err := chat(t, c); err != nil {
		t.Fatalf("next call: %v", err)
	}
	if n := u.connections(); n != 2 {
		t.Fatalf("connections = %d, want 2 (the cut one is not reused)", n)
	}
}

// A body of exactly max_response_bytes is read whole; one byte more fails.
func TestLLMClientShouldAcceptABodyOfExactlyTheCap(t *testing.T) {
	t.Parallel()
	size := int64(len(completionJSON))
	tests := []struct {
		name    string
		limit   int64
		tooBig  bool
		content string
	}{
		{"exactly the cap", size, false, "fine"},
		{"one byte over", size - 1, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, fixed(http.StatusOK, []byte(completionJSON)))
			c := u.client(tt.limit)
			defer c.Close()
			resp, err := chat(t, c)
			if tt.tooBig {
				expectTooLarge(t, err, tt.limit)
				return
			}
			if err != nil || resp.Content != tt.content {
				t.Fatalf("got %v, %v", resp, err)
			}
		})
	}
}

// The upstream's usage reaches the response, and an empty completion
// still reports the tokens it cost.
func TestLLMClientShouldReportTheUpstreamsUsage(t *testing.T) {
	t.Parallel()
	withUsage := `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`
	empty := `{"id":"c2","object":"chat.completion","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9}}`
	u := newUpstream(t, fixed(200, []byte(withUsage)), fixed(200, []byte(empty)), fixed(200, []byte(completionJSON)))
	c := u.client(0)
	defer c.Close()
	resp, err := chat(t, c)
	if err != nil || resp.Usage != (llm.Usage{PromptTokens: 12, CompletionTokens: 3}) || resp.Usage.Total() != 15 {
		t.Fatalf("usage = %+v, err %v", resp.Usage, err)
	}
	resp, err = chat(t, c)
	if !errors.Is(err, llm.ErrEmptyCompletion) || resp.Usage.PromptTokens != 9 {
		t.Fatalf("empty completion: usage %+v, err %v", resp.Usage, err)
	}
	if resp, err = chat(t, c); err != nil || resp.Usage.Total() != 0 {
		t.Fatalf("no usage reported: usage %+v, err %v", resp.Usage, err)
	}
}
