package llm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/nexus/nexus/internal/infra/llm"
)

// sse writes an OpenAI-style stream: the given data lines, each flushed.
func sse(lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for _, l := range lines {
			_, _ = io.WriteString(w, l)
			w.(http.Flusher).Flush()
		}
	}
}

func chunk(content, finish string) string {
	fr := "null"
	if finish != "" {
		fr = `"` + finish + `"`
	}
	return fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","model":"served","choices":[{"index":0,"delta":{"content":%q},"finish_reason":%s}]}`+"\n\n", content, fr)
}

const usageChunk = `data: {"id":"c","object":"chat.completion.chunk","model":"served","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}` + "\n\n"

func stream(t *testing.T, h http.HandlerFunc) (llm.ChatResponse, []string, error) {
	t.Helper()
	u := newUpstream(t, h)
	c := u.client(0)
	defer c.Close()
	var got []string
	resp, err := c.ChatStream(context.Background(), "m", llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: "q"}}}, func(d string) { got = append(got, d) })
	return resp, got, err
}

func TestAWholeStreamShouldReturnItsTextModelAndUsage(t *testing.T) {
	t.Parallel()
	resp, got, err := stream(t, sse(chunk("", ""), chunk("Hel", ""), chunk("lo", ""), chunk("", "stop"), usageChunk, "data: [DONE]\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "Hel|lo" || resp.Content != "Hello" || resp.Model != "served" {
		t.Fatalf("pieces %q resp %+v", got, resp)
	}
	if resp.Usage.PromptTokens != 7 || resp.Usage.CompletionTokens != 3 {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestAStreamCutWithoutItsEndMarkerShouldBeAnError(t *testing.T) {
	t.Parallel()
	resp, got, err := stream(t, sse(chunk("one", ""), chunk(" two", "")))
	if !errors.Is(err, llm.ErrStreamCut) || resp.Content != "one two" || len(got) != 2 {
		t.Fatalf("err %v resp %+v pieces %q", err, resp, got)
	}
	if !llm.Retryable(err) {
		t.Fatal("a cut stream should be retryable while nothing was sent")
	}
	if outcome, kind := llm.Classify(context.Background(), err); outcome != llm.Failure || kind != llm.KindUnavailable {
		t.Fatalf("classified %v %v", outcome, kind)
	}
}

func TestTheEndMarkerShouldBeFoundWhenSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	// No finish_reason: only [DONE] says the stream is whole, and it
	// arrives in two writes.
	_, _, err := stream(t, sse(chunk("x", ""), "data: [DO", "NE]\n\n"))
	if err != nil {
		t.Fatalf("err %v", err)
	}
}

func TestAFinishReasonWithoutTheEndMarkerShouldBeWhole(t *testing.T) {
	t.Parallel()
	resp, _, err := stream(t, sse(chunk("x", ""), chunk("", "stop")))
	if err != nil || resp.Content != "x" {
		t.Fatalf("err %v resp %+v", err, resp)
	}
}

func TestModelTextThatQuotesTheEndMarkerShouldNotEndTheStream(t *testing.T) {
	t.Parallel()
	// The model writes "\ndata: [DONE]" inside its text: JSON escapes the
	// newline, so the body never holds the marker as a line.
	_, _, err := stream(t, sse(chunk("\ndata: [DONE]", "")))
	if !errors.Is(err, llm.ErrStreamCut) {
		t.Fatalf("err %v", err)
	}
}

func TestAnErrorLineMidStreamShouldBeAnError(t *testing.T) {
	t.Parallel()
	resp, _, err := stream(t, sse(chunk("part", ""), `data: {"error":{"message":"overloaded","type":"server_error"}}`+"\n\n"))
	if err == nil || resp.Content != "part" {
		t.Fatalf("err %v resp %+v", err, resp)
	}
}

func TestAnEmptyStreamShouldBeAnEmptyCompletion(t *testing.T) {
	t.Parallel()
	_, _, err := stream(t, sse(chunk("", ""), chunk("", "stop"), "data: [DONE]\n\n"))
	if !errors.Is(err, llm.ErrEmptyCompletion) {
		t.Fatalf("err %v", err)
	}
}

func TestAnErrorStatusOnAStreamShouldCarryRetryAfter(t *testing.T) {
	t.Parallel()
	_, _, err := stream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit"}}`)
	})
	if llm.HTTPStatus(err) != http.StatusTooManyRequests || llm.RetryAfter(err) != 3*time.Second {
		t.Fatalf("err %v status %d retry %v", err, llm.HTTPStatus(err), llm.RetryAfter(err))
	}
}

func TestAStreamPastTheBodyCapShouldFail(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, sse(chunk(strings.Repeat("x", 4096), ""), chunk(strings.Repeat("y", 4096), ""), "data: [DONE]\n\n"))
	c := u.client(2048)
	defer c.Close()
	_, err := c.ChatStream(context.Background(), "m", llm.ChatRequest{}, func(string) {})
	var tooLarge *llm.ResponseTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestAFirstTokenTimeoutShouldClassifyAsARetryableTimeout(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", &llm.FirstTokenTimeoutError{Limit: 2 * time.Second})
	if outcome, kind := llm.Classify(context.Background(), err); outcome != llm.Failure || kind != llm.KindTimeout {
		t.Fatalf("classified %v %v", outcome, kind)
	}
	if !llm.Retryable(err) || !errors.Is(err, timeout.ErrExceeded) {
		t.Fatal("a first-token timeout should be a retryable timeout")
	}
	if got := llm.Describe(llm.KindTimeout, err, time.Minute); !strings.Contains(got, "2s first_token_timeout") {
		t.Fatalf("described %q", got)
	}
}

func TestAnEndMarkerWithExtraBlanksShouldEndTheStream(t *testing.T) {
	t.Parallel()
	_, _, err := stream(t, sse(chunk("x", ""), "data:  \t[DONE]\n\n"))
	if err != nil {
		t.Fatalf("err %v", err)
	}
}

func TestAWholeJSONReplyToAStreamedRequestShouldBeOneChunk(t *testing.T) {
	t.Parallel()
	// An upstream that ignores stream: true and answers one completion.
	resp, got, err := stream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"served","choices":[{"index":0,"message":{"role":"assistant","content":"whole\nreply"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`)
	})
	if err != nil || resp.Content != "whole\nreply" || strings.Join(got, "|") != "whole\nreply" || resp.Usage.Total() != 7 {
		t.Fatalf("err %v resp %+v pieces %q", err, resp, got)
	}
	// A JSON body that is no completion is still a broken stream.
	_, _, err = stream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"unexpected": true}`)
	})
	if !errors.Is(err, llm.ErrStreamCut) {
		t.Fatalf("err %v", err)
	}
}

func TestAStreamWithoutUsageShouldReportAnEstimate(t *testing.T) {
	t.Parallel()
	// Cut after 40 bytes of text, no usage chunk: about 10 tokens
	resp, _, err := stream(t, sse(chunk(strings.Repeat("a", 20), ""), chunk(strings.Repeat("b", 20), "")))
	if !errors.Is(err, llm.ErrStreamCut) || resp.Usage.CompletionTokens != 10 || resp.Usage.PromptTokens == 0 {
		t.Fatalf("err %v usage %+v", err, resp.Usage)
	}
	// With the upstream's usage, that is what counts
	resp, _, err = stream(t, sse(chunk("x", "stop"), usageChunk, "data: [DONE]\n\n"))
	if err != nil || resp.Usage.PromptTokens != 7 || resp.Usage.CompletionTokens != 3 {
		t.Fatalf("err %v usage %+v", err, resp.Usage)
	}
}

func TestAStreamUnderTheWrongLabelShouldStillStream(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"application/json", "text/plain", ""} {
		resp, got, err := stream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = []string{ct}
			_, _ = io.WriteString(w, chunk("a", "")+chunk("b", "")+"data: [DONE]\n\n")
		})
		if err != nil || resp.Content != "ab" || len(got) != 2 {
			t.Fatalf("content type %q: err %v resp %+v pieces %q", ct, err, resp, got)
		}
	}
}

func TestAWholeJSONReplyWithoutALabelOrTotalShouldKeepItsUsage(t *testing.T) {
	t.Parallel()
	resp, _, err := stream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		_, _ = io.WriteString(w, "\n  "+`{"id":"c1","object":"chat.completion","model":"served","choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":500,"completion_tokens":200}}`)
	})
	if err != nil || resp.Content != "whole" || resp.Usage.PromptTokens != 500 || resp.Usage.CompletionTokens != 200 {
		t.Fatalf("err %v resp %+v", err, resp)
	}
}
