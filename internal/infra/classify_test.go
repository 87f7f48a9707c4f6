package infra_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/failsafe-go/failsafe-go/timeout"
	openai "github.com/sashabaranov/go-openai"

	"github.com/nexus/nexus/internal/infra"
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
		outcome infra.Outcome
		kind    infra.Kind
	}{
		{"success", live, nil, infra.Success, ""},
		{"timeout policy fired", live, timeout.ErrExceeded, infra.Failure, infra.KindTimeout},
		{"timeout wins over a gone caller", gone, fmt.Errorf("wrapped: %w", timeout.ErrExceeded), infra.Failure, infra.KindTimeout},
		{"caller hung up", gone, context.Canceled, infra.Neutral, infra.KindCanceled},
		{"caller hung up during a 500", gone, apiErr(500), infra.Neutral, infra.KindCanceled},
		{"400 json", live, apiErr(400), infra.Neutral, infra.KindRejected},
		{"422 json", live, apiErr(422), infra.Neutral, infra.KindRejected},
		{"400 not json", live, reqErr(400), infra.Neutral, infra.KindRejected},
		{"401", live, apiErr(401), infra.Failure, infra.KindUnavailable},
		{"403", live, apiErr(403), infra.Failure, infra.KindUnavailable},
		{"404 model not found", live, apiErr(404), infra.Failure, infra.KindUnavailable},
		{"408", live, apiErr(408), infra.Failure, infra.KindUnavailable},
		{"409", live, apiErr(409), infra.Failure, infra.KindUnavailable},
		{"429", live, apiErr(429), infra.Failure, infra.KindUnavailable},
		{"500", live, apiErr(500), infra.Failure, infra.KindUnavailable},
		{"502 not json", live, reqErr(502), infra.Failure, infra.KindUnavailable},
		{"503", live, apiErr(503), infra.Failure, infra.KindUnavailable},
		{"connection refused", live, &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, infra.Failure, infra.KindUnavailable},
		{"deadline from elsewhere", live, fmt.Errorf("x: %w", context.DeadlineExceeded), infra.Failure, infra.KindTimeout},
		{"no choices", live, infra.ErrEmptyCompletion, infra.Failure, infra.KindUnavailable},
		{"malformed body", live, errors.New("invalid character '<' looking for beginning of value"), infra.Failure, infra.KindUnavailable},
		{"reply past max_response_bytes", live, &infra.ResponseTooLargeError{Limit: 1024}, infra.Failure, infra.KindUnavailable},
		{"error body past max_response_bytes", live, fmt.Errorf("error, reading response body: %w", &infra.ResponseTooLargeError{Limit: 1024}), infra.Failure, infra.KindUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outcome, kind := infra.Classify(tc.ctx, tc.err)
			if outcome != tc.outcome || kind != tc.kind {
				t.Fatalf("Classify = (%v, %q), want (%v, %q)", outcome, kind, tc.outcome, tc.kind)
			}
		})
	}
}
