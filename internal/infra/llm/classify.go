package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"
	openai "github.com/sashabaranov/go-openai"
)

// Outcome is how one LLM call counts toward its circuit.
type Outcome int

const (
	// Success is a usable completion.
	Success Outcome = iota
	// Failure counts toward opening the circuit: the LLM is unwell.
	Failure
	// Neutral changes nothing: the call failed for the caller's own reasons
	// (a rejected request, or the caller hung up). It enters no count, does
	// not break a run of consecutive failures, and hands a half-open trial
	// slot back.
	Neutral
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	default:
		return "neutral"
	}
}

// Kind names why a call did not produce a completion. The values are the
// API's error codes.
type Kind string

// The kinds of LLM failure that callers map to responses.
const (
	KindCircuitOpen Kind = "circuit_open"
	// KindCircuitBusy: the circuit already has max_concurrent calls in
	// flight and refused this one without contacting the LLM.
	KindCircuitBusy Kind = "circuit_busy"
	KindTimeout     Kind = "llm_timeout"
	KindUnavailable Kind = "llm_unavailable"
	KindRejected    Kind = "llm_rejected_request"
	KindCanceled    Kind = "client_canceled"
)

// ErrEmptyCompletion means the upstream answered 200 with no usable choice.
var ErrEmptyCompletion = errors.New("upstream returned no choices")

// Classify is the one predicate that decides how an LLM call's error counts.
// callerCtx is the caller's own context (not the per-attempt one), and err is
// what the failsafe executor returned: on a timeout the inner call sees
// context.Canceled, so the executor's timeout.ErrExceeded is checked first,
// then the caller's context, and only then the upstream's answer.
func Classify(callerCtx context.Context, err error) (Outcome, Kind) {
	if err == nil {
		return Success, ""
	}
	if errors.Is(err, timeout.ErrExceeded) {
		return Failure, KindTimeout
	}
	if callerCtx.Err() != nil {
		return Neutral, KindCanceled
	}
	var tooLarge *ResponseTooLargeError
	if errors.As(err, &tooLarge) {
		// A reply past llm.max_response_bytes is malformed, like a body
		// that is not JSON, whatever its status (go-openai drops the
		// status of an error body it could not read).
		return Failure, KindUnavailable
	}
	if status := HTTPStatus(err); status != 0 {
		switch {
		case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
			return Neutral, KindRejected
		default:
			// 401/403 (bad key), 404 (no such model), 408, 409, 429, 5xx
			// and anything else that is not a usable completion.
			return Failure, KindUnavailable
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Failure, KindTimeout
	}
	return Failure, KindUnavailable
}

// HTTPStatus extracts the HTTP status from go-openai's two error types:
// *APIError when the error body was JSON, *RequestError when it was not.
func HTTPStatus(err error) int {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatusCode
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return reqErr.HTTPStatusCode
	}
	return 0
}

// describe renders err for humans: the upstream's status and message where
// there was one, else the error text. Its result can be as long as the
// upstream's message; Circuit.finish passes it through redact.Redactor.Scrub.
func Describe(kind Kind, err error, limit time.Duration) string {
	var firstToken *FirstTokenTimeoutError
	if errors.As(err, &firstToken) {
		return "LLM stream sent no token within the " + firstToken.Limit.String() + " first_token_timeout"
	}
	switch kind {
	case KindTimeout:
		return fmt.Sprintf("LLM call exceeded the %s timeout", limit)
	case KindCanceled:
		return "the client canceled the request"
	}
	var tooLarge *ResponseTooLargeError
	if errors.As(err, &tooLarge) {
		return "malformed reply from the LLM: " + tooLarge.Error()
	}
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("upstream HTTP %d: %s", apiErr.HTTPStatusCode, apiErr.Message)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return fmt.Sprintf("upstream HTTP %d: %s", reqErr.HTTPStatusCode, http.StatusText(reqErr.HTTPStatusCode))
	}
	if errors.Is(err, ErrEmptyCompletion) {
		return err.Error()
	}
	if errors.Is(err, ErrStreamCut) {
		return "the LLM's stream broke: " + err.Error()
	}
	var urlErr *url.Error
	var streamOpErr *net.OpError
	if !errors.As(err, &urlErr) && errors.As(err, &streamOpErr) {
		// A read of a streamed body that broke: the raw error names
		// both addresses.
		if errors.Is(err, syscall.ECONNRESET) {
			return "the LLM's stream broke: connection reset"
		}
		return "the LLM's stream broke: network error during " + streamOpErr.Op
	}
	if errors.As(err, &urlErr) {
		// Fixed wording: the raw error names the LLM's address, which
		// clients and the health page need not learn.
		var dnsErr *net.DNSError
		var opErr *net.OpError
		switch {
		case errors.As(err, &dnsErr):
			return "could not reach the LLM: its host name does not resolve"
		case errors.Is(err, syscall.ECONNREFUSED):
			return "could not reach the LLM: connection refused"
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return "could not reach the LLM: connection reset"
		case errors.As(err, &opErr):
			return "could not reach the LLM: network error during " + opErr.Op
		default:
			return "could not reach the LLM"
		}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "malformed reply from the LLM: " + err.Error()
	}
	return "unusable answer from the LLM: " + err.Error()
}

// Retryable reports whether a counted failure is worth another attempt on
// the same target: a timeout, a connection error, a 5xx or a 429. A bad
// key (401/403), an unknown model (404), any other 4xx and a malformed or
// oversized body are not: the same request would fail the same way.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, timeout.ErrExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var tooLarge *ResponseTooLargeError
	if errors.As(err, &tooLarge) {
		return false
	}
	if errors.Is(err, ErrStreamCut) {
		return true
	}
	if status := HTTPStatus(err); status != 0 {
		return status == http.StatusTooManyRequests || status >= 500
	}
	var urlErr *url.Error
	var netErr net.Error
	return errors.As(err, &urlErr) || errors.As(err, &netErr)
}

// CodeContextLengthExceeded is the OpenAI error code of a prompt longer
// than the model's context window.
const CodeContextLengthExceeded = "context_length_exceeded"

// ContextTooLong reports whether err is a 400 whose error code is
// context_length_exceeded: neutral for the target that refused it (the
// request was too big for it, the target is fine), but another target,
// with a longer context, may take it.
func ContextTooLong(err error) bool {
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest {
		return false
	}
	code, _ := apiErr.Code.(string)
	return code == CodeContextLengthExceeded
}
