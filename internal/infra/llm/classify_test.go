package llm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/failsafe-go/failsafe-go/timeout"
	openai "github.com/sashabaranov/go-openai"

	"github.com/nexus/nexus/internal/infra/llm"
)

func TestClassifyShouldSortEveryLLMOutcome(t *testing.T) {
	t.Parallel()
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	apiErr := func(code int) error { return &openai.APIError{HTTPStatusCode: code, Message: "m"} }
	reqErr := func(code int) error { return &openai.RequestError{HTTPStatusCode: code, Err: errors.New("not json")} }
	cases := []struct {
		name    string
		ctx     context.Context
		err     error
		outcome llm.Outcome
		kind    llm.Kind
	}{
		{"success", live, nil, llm.Success, ""},
		{"timeout policy fired", live, timeout.ErrExceeded, llm.Failure, llm.KindTimeout},
		{"timeout wins over a gone caller", gone, fmt.Errorf("wrapped: %w", timeout.ErrExceeded), llm.Failure, llm.KindTimeout},
		{"caller hung up", gone, context.Canceled, llm.Neutral, llm.KindCanceled},
		{"caller hung up during a 500", gone, apiErr(500), llm.Neutral, llm.KindCanceled},
		{"400 json", live, apiErr(400), llm.Neutral, llm.KindRejected},
		{"422 json", live, apiErr(422), llm.Neutral, llm.KindRejected},
		{"400 not json", live, reqErr(400), llm.Neutral, llm.KindRejected},
		{"401", live, apiErr(401), llm.Failure, llm.KindUnavailable},
		{"403", live, apiErr(403), llm.Failure, llm.KindUnavailable},
		{"404 model not found", live, apiErr(404), llm.Failure, llm.KindUnavailable},
		{"408", live, apiErr(408), llm.Failure, llm.KindUnavailable},
		{"409", live, apiErr(409), llm.Failure, llm.KindUnavailable},
		{"429", live, apiErr(429), llm.Failure, llm.KindUnavailable},
		{"500", live, apiErr(500), llm.Failure, llm.KindUnavailable},
		{"502 not json", live, reqErr(502), llm.Failure, llm.KindUnavailable},
		{"503", live, apiErr(503), llm.Failure, llm.KindUnavailable},
		{"connection refused", live, &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, llm.Failure, llm.KindUnavailable},
		{"deadline from elsewhere", live, fmt.Errorf("x: %w", context.DeadlineExceeded), llm.Failure, llm.KindTimeout},
		{"no choices", live, llm.ErrEmptyCompletion, llm.Failure, llm.KindUnavailable},
		{"malformed body", live, errors.New("invalid character '<' looking for beginning of value"), llm.Failure, llm.KindUnavailable},
		{"reply past max_response_bytes", live, &llm.ResponseTooLargeError{Limit: 1024}, llm.Failure, llm.KindUnavailable},
		{"error body past max_response_bytes", live, fmt.Errorf("error, reading response body: %w", &llm.ResponseTooLargeError{Limit: 1024}), llm.Failure, llm.KindUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outcome, kind := llm.Classify(tc.ctx, tc.err)
			if outcome != tc.outcome || kind != tc.kind {
				t.Fatalf("Classify = (%v, %q), want (%v, %q)", outcome, kind, tc.outcome, tc.kind)
			}
		})
	}
}

func TestRetryableShouldRetryOnlyWhatMayPassNextTime(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"timeout", timeout.ErrExceeded, true},
		{"500", &openai.APIError{HTTPStatusCode: 500}, true},
		{"503 not JSON", &openai.RequestError{HTTPStatusCode: 503}, true},
		{"429", &openai.APIError{HTTPStatusCode: 429}, true},
		{"connection refused", &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: syscall.ECONNREFUSED}, true},
		{"401", &openai.APIError{HTTPStatusCode: 401}, false},
		{"404", &openai.APIError{HTTPStatusCode: 404}, false},
		{"400", &openai.APIError{HTTPStatusCode: 400}, false},
		{"too large", &llm.ResponseTooLargeError{Limit: 10}, false},
		{"empty completion", llm.ErrEmptyCompletion, false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		if got := llm.Retryable(tc.err); got != tc.want {
			t.Errorf("%s: Retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestContextTooLongShouldNeedA400WithItsCode(t *testing.T) {
	t.Parallel()
	if !llm.ContextTooLong(&openai.APIError{HTTPStatusCode: 400, Code: "context_length_exceeded"}) {
		t.Error("400 context_length_exceeded: want true")
	}
	if llm.ContextTooLong(&openai.APIError{HTTPStatusCode: 400, Code: "invalid_value"}) {
		t.Error("400 invalid_value: want false")
	}
	if llm.ContextTooLong(&openai.APIError{HTTPStatusCode: 500, Code: "context_length_exceeded"}) {
		t.Error("500: want false")
	}
}
