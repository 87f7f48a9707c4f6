package fakellm

// Steps: how the fake answers one chat request, and their constructors.

import (
	"maps"
	"net/http"
	"strconv"
	"time"
)

// Step describes how the fake answers one chat request. The zero value is a
// 200 with empty content. Phases run in this order: Delay, Until, Hang, ResetConn,
// then the response is written.
type Step struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Content is the assistant message content of a 2xx completion.
	Content string
	// Message is the error message for a non-2xx status; an OpenAI-style
	// {"error":{"message","type","param","code"}} body is generated with
	// type/code derived from Status. Empty means http.StatusText(Status).
	Message string
	// Code, if set, is the error body's code instead of the one derived
	// from Status (e.g. context_length_exceeded on a 400).
	Code string
	// RawBody, if non-empty, is sent verbatim instead of any generated body
	// (e.g. malformed JSON, or a plain-text error from a proxy).
	RawBody string
	// ContentType defaults to application/json.
	ContentType string
	// Header holds extra response headers, e.g. Retry-After.
	Header map[string]string
	// Delay waits before answering. If the client goes away meanwhile the
	// request is abandoned and counted in Canceled.
	Delay time.Duration
	// Hang never answers: it blocks until the client goes away (counted in
	// Canceled) or the server closes (connection aborted, not counted).
	Hang bool
	// Until, if set, holds the answer until the channel is closed (after
	// Delay), so that a test decides when a call in flight ends instead of
	// guessing how long its other steps take. A client that goes away
	// meanwhile is counted in Canceled.
	Until <-chan struct{}
	// ResetConn hijacks the connection and closes it with SO_LINGER 0 so the
	// client sees a TCP RST and no response.
	ResetConn bool
	// NoChoices answers 2xx with a valid completion whose choices is [].
	NoChoices bool
	// Whitespace, if > 0, answers Status (200 by default) with a body of
	// this many spaces and nothing else, written in flushed 32 KiB chunks:
	// an upstream that keeps a reader waiting for a JSON value that never
	// comes. It stops by itself once the bytes are sent, as soon as the
	// client goes away (counted in Canceled), or when the server closes.
	Whitespace int
	// Model is the model reported in the completion; empty means the
	// requested model.
	Model string
}

// Reply answers 200 with an assistant message containing content.
func Reply(content string) Step { return Step{Content: content} }

// Status answers code with an OpenAI-style error body carrying message.
func Status(code int, message string) Step { return Step{Status: code, Message: message} }

// RateLimited answers 429 with a Retry-After header of retryAfterSeconds.
func RateLimited(retryAfterSeconds int) Step {
	return Step{
		Status:  http.StatusTooManyRequests,
		Message: "Rate limit reached for requests. Please try again later.",
		Header:  map[string]string{"Retry-After": strconv.Itoa(retryAfterSeconds)},
	}
}

// Hang never answers; the client must time out or cancel.
func Hang() Step { return Step{Hang: true} }

// Held answers 200 with content once release is closed.
func Held(release <-chan struct{}, content string) Step {
	return Step{Until: release, Content: content}
}

// Delay answers 200 with content after d, unless the client gives up first.
func Delay(d time.Duration, content string) Step { return Step{Delay: d, Content: content} }

// ResetConn drops the connection with a TCP RST without any response.
func ResetConn() Step { return Step{ResetConn: true} }

// Malformed answers 200 application/json with a truncated, invalid JSON body.
func Malformed() Step {
	return Step{RawBody: `{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,"message":{"role":"assi`}
}

// Repeat returns n copies of s, for use as Enqueue(Repeat(3, s)...).
func Repeat(n int, s Step) []Step {
	out := make([]Step, 0, max(n, 0))
	for range n {
		out = append(out, cloneStep(s))
	}
	return out
}

func cloneStep(s Step) Step {
	s.Header = maps.Clone(s.Header)
	return s
}

// ContextTooLong answers 400 with code context_length_exceeded, as OpenAI
// does for a prompt longer than the model's context window.
func ContextTooLong() Step {
	return Step{Status: 400, Code: "context_length_exceeded",
		Message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."}
}
