package fakellm

// Steps: how the fake answers one chat request, and their constructors.

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Step describes how the fake answers one chat request. The zero value is a
// 200 with empty content. Phases run in this order: Delay, Until, Hang,
// ResetConn, Whitespace, then the response is written. These phases, error
// statuses and RawBody behave the same whether or not the request asked to
// stream.
//
// A 2xx answer without RawBody to a request with "stream": true is streamed
// as server-sent events (Content-Type text/event-stream, Cache-Control
// no-cache, headers flushed at once), each event one "data: <json>\n\n":
//
//  1. a chat.completion.chunk whose delta is {"role":"assistant","content":""};
//  2. one chunk per content piece (see Chunks), delta {"content":piece},
//     paced by FirstChunkDelay, ChunkDelay and ChunkGate;
//  3. a chunk with an empty delta and finish_reason "stop";
//  4. if the request had "stream_options":{"include_usage":true}, a chunk
//     with "choices":[] and the usage, estimated as for a plain completion
//     (every other chunk then carries "usage":null, as OpenAI's do);
//  5. data: [DONE].
//
// Cut, with CutAfter, replaces everything from content piece CutAfter on
// with a clean end, a reset or a hang. NoChoices streams 1, 3, 4 and 5 with
// no content. The stream-only fields (FirstChunkDelay, ChunkDelay,
// ChunkGate, CutAfter, Cut) are ignored for a request that does not stream,
// so one script can answer a streamed and a plain request alike.
type Step struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Content is the assistant message content of a 2xx completion. It is
	// ignored when Chunks is set.
	Content string
	// Chunks are the content pieces of a streamed answer, one
	// chat.completion.chunk each, sent as given (even empty ones). A plain
	// (non-stream) answer has their concatenation as its content. When
	// Chunks is empty, a stream splits Content into words, each with the
	// whitespace after it and the first also with any leading whitespace,
	// so that the pieces join to exactly Content ("Hello, big world" is
	// "Hello, ", "big ", "world"); an empty Content streams no piece.
	Chunks []string
	// FirstChunkDelay is the "time to first token" of a stream: the fake
	// sends the headers and the role chunk at once, then waits this long
	// before the first content piece. Stream requests only.
	FirstChunkDelay time.Duration
	// ChunkDelay is the wait before each content piece after the first.
	// Stream requests only.
	ChunkDelay time.Duration
	// ChunkGate, if set, paces a stream from the test: before each content
	// piece (after its delay) the fake receives one value from it, so each
	// send releases one piece and closing it releases the rest. A test can
	// thus hold a stream after its headers, or after any piece, for as
	// long as it likes. Stream requests only.
	ChunkGate <-chan struct{}
	// Cut, unless CutNone, breaks a stream where content piece CutAfter
	// (counting from 0) would have been sent. The cut is paced like that
	// piece: it comes after CutAfter pieces and the wait that would have
	// preceded the next one (FirstChunkDelay if CutAfter is 0, else
	// ChunkDelay, then a value from ChunkGate), so FirstChunkDelay with
	// CutAfter 0 and CutReset is "silence, then a reset". CutAfter 0 cuts
	// before any content (but after the headers and the role chunk); a
	// CutAfter of len(pieces) or more cuts after all of them, in place of
	// the finish chunk (still after such a wait). No finish chunk, usage
	// chunk or [DONE] follows a cut. Stream requests only.
	Cut CutMode
	// CutAfter is the number of content pieces sent before Cut; negative
	// counts as 0.
	CutAfter int
	// Message is the error message for a non-2xx status; an OpenAI-style
	// {"error":{"message","type","param","code"}} body is generated with
	// type/code derived from Status. Empty means http.StatusText(Status).
	Message string
	// Code, if set, is the error body's code instead of the one derived
	// from Status (e.g. context_length_exceeded on a 400).
	Code string
	// RawBody, if non-empty, is sent verbatim instead of any generated body
	// (e.g. malformed JSON, or a plain-text error from a proxy), also to a
	// stream request: with ContentType text/event-stream it scripts a
	// hand-made event stream.
	RawBody string
	// ContentType defaults to application/json, or text/event-stream for a
	// streamed answer.
	ContentType string
	// Header holds extra response headers, e.g. Retry-After.
	Header map[string]string
	// Delay waits before answering. If the client goes away meanwhile the
	// request is abandoned and counted in Canceled.
	Delay time.Duration
	// Hang never answers: it blocks until the client goes away (counted in
	// Canceled) or the server closes (connection aborted, not counted). To
	// hang after a stream has started, use Cut CutHang instead.
	Hang bool
	// Until, if set, holds the answer until the channel is closed (after
	// Delay), so that a test decides when a call in flight ends instead of
	// guessing how long its other steps take. A client that goes away
	// meanwhile is counted in Canceled.
	Until <-chan struct{}
	// ResetConn hijacks the connection and closes it with SO_LINGER 0 so the
	// client sees a TCP RST and no response.
	ResetConn bool
	// NoChoices answers 2xx with a valid completion whose choices is [];
	// a stream gets the role chunk, the finish chunk, the usage chunk (if
	// asked for) and [DONE], without any content.
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

// CutMode is how [Step.Cut] breaks a stream.
type CutMode int

const (
	// CutNone streams to the end: finish chunk, usage chunk and [DONE].
	CutNone CutMode = iota
	// CutEOF ends the response body cleanly (the handler returns, so the
	// chunked body gets its terminator and the connection stays usable)
	// without a finish chunk or [DONE]: an upstream that stops early
	// without saying so. go-openai reports it as io.EOF, like a complete
	// stream.
	CutEOF
	// CutReset hijacks the connection (http.ResponseController.Hijack,
	// which works after the headers and chunks were written and flushed on
	// HTTP/1.1) and closes it with SO_LINGER 0, so the client gets a TCP
	// RST in the middle of the chunked body: its read fails with
	// "connection reset by peer" (or, should the kernel report the close
	// first, an unexpected EOF), never a clean io.EOF. If hijacking is not
	// possible (HTTP/2) the handler panics with http.ErrAbortHandler
	// instead, which also ends the body abruptly.
	CutReset
	// CutHang stops sending and blocks until the client goes away
	// (counted in Canceled) or the server closes (the connection is then
	// aborted). The client has the headers and CutAfter pieces and waits
	// for more: a stalled stream.
	CutHang
)

// String returns the constant's name.
func (m CutMode) String() string {
	switch m {
	case CutNone:
		return "CutNone"
	case CutEOF:
		return "CutEOF"
	case CutReset:
		return "CutReset"
	case CutHang:
		return "CutHang"
	default:
		return "CutMode(" + strconv.Itoa(int(m)) + ")"
	}
}

// Reply answers 200 with an assistant message containing content; streamed,
// content comes one word a chunk.
func Reply(content string) Step { return Step{Content: content} }

// Stream answers with content pieces chunks: a stream sends one chunk each,
// a plain request gets them joined.
func Stream(chunks ...string) Step { return Step{Chunks: chunks} }

// SlowFirstToken streams chunks, but only after d of silence following the
// headers and the role chunk. A plain request gets the joined chunks at once.
func SlowFirstToken(d time.Duration, chunks ...string) Step {
	return Step{FirstChunkDelay: d, Chunks: chunks}
}

// SlowTokens streams chunks with d before each one (the first included).
// A plain request gets the joined chunks at once.
func SlowTokens(d time.Duration, chunks ...string) Step {
	return Step{FirstChunkDelay: d, ChunkDelay: d, Chunks: chunks}
}

// GatedStream streams chunks one per value received from gate (see
// [Step.ChunkGate]); close gate to release the rest. A plain request gets the
// joined chunks at once.
func GatedStream(gate <-chan struct{}, chunks ...string) Step {
	return Step{ChunkGate: gate, Chunks: chunks}
}

// CutStream streams the first after of chunks, then breaks the stream as
// mode says (see [CutMode]). A plain request gets all chunks joined.
func CutStream(after int, mode CutMode, chunks ...string) Step {
	return Step{Chunks: chunks, CutAfter: after, Cut: mode}
}

// HangStream streams the first after of chunks, then stalls until the client
// goes away or the server closes; it is CutStream(after, CutHang, chunks...).
// A plain request gets all chunks joined.
func HangStream(after int, chunks ...string) Step {
	return CutStream(after, CutHang, chunks...)
}

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
	s.Chunks = slices.Clone(s.Chunks)
	return s
}

// text is the whole content of a 2xx answer.
func (s Step) text() string {
	if len(s.Chunks) > 0 {
		return strings.Join(s.Chunks, "")
	}
	return s.Content
}

// pieces are the content pieces of a streamed answer.
func (s Step) pieces() []string {
	if s.NoChoices {
		return nil
	}
	if len(s.Chunks) > 0 {
		return s.Chunks
	}
	return splitWords(s.Content)
}

// splitWords splits s into words, each with the whitespace after it; leading
// whitespace goes with the first. The pieces join to exactly s.
func splitWords(s string) []string {
	var out []string
	start := 0
	inSpace, sawWord := false, false
	for i, r := range s {
		sp := unicode.IsSpace(r)
		if !sp && inSpace && sawWord {
			out = append(out, s[start:i])
			start = i
		}
		if !sp {
			sawWord = true
		}
		inSpace = sp
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// ContextTooLong answers 400 with code context_length_exceeded, as OpenAI
// does for a prompt longer than the model's context window.
func ContextTooLong() Step {
	return Step{Status: 400, Code: "context_length_exceeded",
		Message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."}
}
