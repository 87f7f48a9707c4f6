// Package fakellm is a scriptable fake of an OpenAI-compatible upstream
// (POST /v1/chat/completions, GET /v1/models) for integration tests and
// benchmarks.
//
// It serves real HTTP on loopback so that production clients (for example
// github.com/sashabaranov/go-openai) exercise their full transport, error
// decoding, retry and streaming paths. Responses are chosen per request from
// FIFO scripts (see [Server.Enqueue]), a dynamic hook (see
// [Server.SetHandler]) or defaults, and every request is recorded for later
// assertions.
//
// A request with "stream": true is answered with OpenAI's server-sent events
// (text/event-stream): a role chunk, one "chat.completion.chunk" per content
// piece, a finish chunk, a usage chunk if "stream_options" asked for one, and
// "data: [DONE]". The same [Step] answers both kinds of request: its content
// comes whole in a plain completion and in pieces (see [Step.Chunks]) in a
// stream. Stream-only fields pace the pieces or break the stream partway
// (see [SlowFirstToken], [SlowTokens], [GatedStream], [CutStream] and
// [HangStream]); everything that happens before an answer starts (Delay,
// Until, Hang, ResetConn, error statuses, RawBody, Whitespace) works for
// stream requests exactly as for plain ones, and errors are plain JSON, as
// OpenAI sends them.
//
// Typical use:
//
//	s := fakellm.New(t, fakellm.WithAPIKey("sk-test"))
//	s.Enqueue(fakellm.RateLimited(1), fakellm.Reply("hello"))
//	cfg := openai.DefaultConfig("sk-test")
//	cfg.BaseURL = s.URL()
//	...
//	if got := s.Requests(); got != 2 { ... }
package fakellm

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	chatPath   = "/v1/chat/completions"
	modelsPath = "/v1/models"

	// maxBodyBytes bounds request bodies so a runaway client cannot exhaust
	// memory in a test process.
	maxBodyBytes = 32 << 20
)

// Server is a running fake upstream. Create it with [New]; all methods are
// safe for concurrent use, including while requests are being served.
type Server struct {
	srv  *httptest.Server
	done chan struct{} // closed by Close to release Delay/Hang handlers

	closeOnce sync.Once

	mu sync.Mutex

	// configuration (set by options; survives Reset)
	apiKey     string
	optDefault Step

	// scripting (cleared by Reset)
	def           Step
	modelDefaults map[string]Step
	queue         []Step
	modelQueues   map[string][]Step
	hook          func(Request) Step

	// observation (cleared by Reset, except inFlight which is live state)
	requests   int
	perModel   map[string]int
	received   []Request
	canceled   int
	inFlight   int
	streams    int
	chunksSent int
	nextID     uint64
}

// Option configures a Server at construction time. Options are not undone by
// [Server.Reset].
type Option func(*Server)

// WithAPIKey makes the fake require "Authorization: Bearer <key>" on every
// /v1 endpoint. Requests with a missing or different key get a 401 with an
// OpenAI-style error body whose message never echoes any key. Rejected
// requests count in [Server.Requests] but do not consume scripted steps and
// are not recorded in [Server.Received] or [Server.RequestsFor].
func WithAPIKey(key string) Option {
	return func(s *Server) { s.apiKey = key }
}

// WithDefault sets the response used when neither the hook nor any queue or
// per-model default applies. Without it the default is Reply("ok").
// [Server.Reset] restores this value.
func WithDefault(step Step) Option {
	return func(s *Server) { s.optDefault = cloneStep(step) }
}

// New starts a fake on an ephemeral 127.0.0.1 port and registers
// tb.Cleanup(s.Close), so callers normally never close it themselves. It
// calls tb.Fatalf if it cannot listen.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := &Server{
		done:       make(chan struct{}),
		optDefault: Reply("ok"),
	}
	for _, o := range opts {
		o(s)
	}
	s.resetLocked()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakellm: listen: %v", err)
	}
	s.srv = &httptest.Server{
		Listener: ln,
		Config: &http.Server{
			Handler: s,
			// Aborted handlers and hijacked connections are expected here;
			// keep them out of test output.
			ErrorLog: log.New(io.Discard, "", 0),
		},
	}
	s.srv.Start()
	tb.Cleanup(s.Close)
	return s
}

// URL returns the OpenAI base URL including the "/v1" suffix, e.g.
// "http://127.0.0.1:41234/v1"; assign it directly to openai.ClientConfig.BaseURL.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Close releases handlers blocked in Delay, Until or Hang (their connections
// are aborted without a response) and aborts streams that are still running,
// including ones waiting between chunks or hanging mid-stream (the client
// sees the connection end without a finish chunk or [DONE]); then shuts the server down and waits for all
// handlers to return, so no server goroutines outlive it. It is idempotent
// and is already registered with tb.Cleanup by [New].
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// Enqueue appends steps to the global FIFO script. Each chat request whose
// model has no pending per-model step consumes exactly one global step.
func (s *Server) Enqueue(steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range steps {
		s.queue = append(s.queue, cloneStep(st))
	}
}

// EnqueueFor appends steps to model's FIFO script. Requests for model consume
// these before anything in the global queue.
func (s *Server) EnqueueFor(model string, steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range steps {
		s.modelQueues[model] = append(s.modelQueues[model], cloneStep(st))
	}
}

// SetDefault replaces the global default used once every queue (and the
// requested model's default, if any) is exhausted. It is not consumed.
func (s *Server) SetDefault(step Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = cloneStep(step)
}

// SetDefaultFor sets a non-consumed default for one model. Resolution order
// for a request is: hook, model queue, global queue, model default, global
// default.
func (s *Server) SetDefaultFor(model string, step Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.modelDefaults[model] = cloneStep(step)
}

// SetHandler installs a dynamic hook consulted before any queue or default.
// While set, its returned Step is used for every authenticated, well-formed
// chat request and queues are NOT consumed. It runs on the request goroutine
// without internal locks held (it may call Server methods) and may be invoked
// concurrently. Pass nil to remove it.
func (s *Server) SetHandler(fn func(req Request) Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// Requests returns how many POST /v1/chat/completions requests arrived,
// counted on arrival (before any Delay) and including ones rejected with 400
// or 401.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// RequestsFor returns how many authenticated, well-formed chat requests named
// model. Like Requests it is counted before any Delay.
func (s *Server) RequestsFor(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perModel[model]
}

// Received returns deep copies of the authenticated, well-formed chat
// requests in arrival order.
func (s *Server) Received() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.received))
	for i, r := range s.received {
		out[i] = r.clone()
	}
	return out
}

// Canceled returns how many chat requests were abandoned by their client
// (request context done, or the connection gone) while the fake was still
// in a Delay, Until or Hang, streaming Whitespace, or streaming an answer
// (waiting before or between chunks, hanging mid-stream, or failing to write
// a chunk). Each request counts at most once. The server notices
// asynchronously, so poll for it rather than asserting right after the
// client returns.
func (s *Server) Canceled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceled
}

// InFlight returns how many chat requests are currently being handled
// (including ones sleeping in Delay, blocked in Hang, or still streaming).
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// Streams returns how many streamed answers were started: stream requests
// that got a 2xx text/event-stream response with at least its headers
// written. Requests answered with an error status, RawBody, Whitespace,
// Hang or ResetConn do not count, whether or not they asked to stream.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// ChunksSent returns how many content chunks (those carrying delta.content;
// not the role, finish or usage chunks) were written and flushed in all
// streams so far. A test can poll it to know that a client has been sent
// (not necessarily has read) a given piece.
func (s *Server) ChunksSent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunksSent
}

// Reset returns scripting and observation to the just-constructed state:
// counters, recorded requests, queues, per-model defaults and the hook are
// cleared and the global default reverts to WithDefault (or Reply("ok")).
// Options such as WithAPIKey are kept. InFlight is live state and is not
// reset; requests still in flight may bump counters after Reset returns.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.def = cloneStep(s.optDefault)
	s.modelDefaults = map[string]Step{}
	s.queue = nil
	s.modelQueues = map[string][]Step{}
	s.hook = nil
	s.requests = 0
	s.perModel = map[string]int{}
	s.received = nil
	s.canceled = 0
	s.streams = 0
	s.chunksSent = 0
}

// Request is a parsed chat-completion request as the fake saw it.
type Request struct {
	Model    string
	Messages []Message
	// Temperature is nil when the client omitted it (go-openai omits 0).
	Temperature *float64
	// MaxTokens is max_tokens, or max_completion_tokens if that was absent.
	MaxTokens int
	// Header is a clone of the request headers, including Authorization.
	Header http.Header
	// Stream is true when the request had "stream": true; its answer was
	// then server-sent events, unless its step answered before any stream
	// started (an error status, RawBody, Whitespace, Hang, ResetConn).
	Stream bool
	// IncludeUsage is true when the request had
	// "stream_options": {"include_usage": true}. It is recorded as sent,
	// even on a request that does not stream.
	IncludeUsage bool
}

// Message is one chat message. For multi-part content the text parts are
// joined with "\n"; non-text parts are ignored.
type Message struct {
	Role    string
	Content string
}

func (r Request) clone() Request {
	c := r
	c.Messages = slices.Clone(r.Messages)
	if r.Temperature != nil {
		t := *r.Temperature
		c.Temperature = &t
	}
	c.Header = r.Header.Clone()
	return c
}

// ServeHTTP implements http.Handler. It is exported only as a side effect of
// being the server's handler; tests should talk to URL() over HTTP.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case chatPath:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed for "+chatPath, "invalid_request_error", "")
			return
		}
		s.serveChat(w, r)
	case modelsPath:
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed for "+modelsPath, "invalid_request_error", "")
			return
		}
		if !s.authorized(r) {
			writeUnauthorized(w)
			return
		}
		s.serveModels(w)
	default:
		writeError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "")
	}
}

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	key := s.apiKey
	s.mu.Unlock()
	if key == "" {
		return true
	}
	got := r.Header.Get("Authorization")
	return subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+key)) == 1
}

func writeUnauthorized(w http.ResponseWriter) {
	writeError(w, http.StatusUnauthorized, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type wireRequest struct {
	Model               string        `json:"model"`
	Messages            []wireMessage `json:"messages"`
	Temperature         *float64      `json:"temperature"`
	MaxTokens           int           `json:"max_tokens"`
	MaxCompletionTokens int           `json:"max_completion_tokens"`
	Stream              bool          `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.inFlight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	if !s.authorized(r) {
		writeUnauthorized(w)
		return
	}

	// Read the whole body up front: net/http only starts watching for the
	// client going away (cancelling r.Context) once the body is consumed.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Could not read request body: "+err.Error(), "invalid_request_error", "")
		return
	}
	req, msg := parseRequest(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg, "invalid_request_error", "")
		return
	}
	req.Header = r.Header.Clone()

	s.mu.Lock()
	s.perModel[req.Model]++
	s.received = append(s.received, req.clone())
	hook := s.hook
	var step Step
	if hook == nil {
		step = s.pickLocked(req.Model)
	}
	s.mu.Unlock()
	if hook != nil {
		step = hook(req.clone())
	}

	s.answer(w, r, req, step)
}

func parseRequest(body []byte) (Request, string) {
	var wr wireRequest
	if err := json.Unmarshal(body, &wr); err != nil {
		return Request{}, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.) " + err.Error()
	}
	if wr.Model == "" {
		return Request{}, "you must provide a model parameter"
	}
	req := Request{
		Model:        wr.Model,
		Temperature:  wr.Temperature,
		MaxTokens:    wr.MaxTokens,
		Stream:       wr.Stream,
		IncludeUsage: wr.StreamOptions != nil && wr.StreamOptions.IncludeUsage,
	}
	if req.MaxTokens == 0 {
		req.MaxTokens = wr.MaxCompletionTokens
	}
	for i, m := range wr.Messages {
		content, err := messageText(m.Content)
		if err != nil {
			return Request{}, fmt.Sprintf("Invalid type for 'messages[%d].content': %v", i, err)
		}
		req.Messages = append(req.Messages, Message{Role: m.Role, Content: content})
	}
	return req, ""
}

// messageText accepts string, null or an array of content parts.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return str, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("expected a string or an array of content parts")
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

// pickLocked resolves model queue, global queue, model default, global default.
func (s *Server) pickLocked(model string) Step {
	if q := s.modelQueues[model]; len(q) > 0 {
		st := q[0]
		if len(q) == 1 {
			delete(s.modelQueues, model)
		} else {
			s.modelQueues[model] = q[1:]
		}
		return st
	}
	if len(s.queue) > 0 {
		st := s.queue[0]
		s.queue = s.queue[1:]
		return st
	}
	if st, ok := s.modelDefaults[model]; ok {
		return st
	}
	return s.def
}

// wait blocks for d (or forever if d < 0). It reports false if the request
// must not be answered: the client went away (counted) or the server is
// closing (the connection is aborted via panic(http.ErrAbortHandler)).
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	var ready chan struct{} // nil: never ready
	if d >= 0 {
		ready = make(chan struct{})
		t := time.AfterFunc(d, func() { close(ready) })
		defer t.Stop()
	}
	return s.waitUntil(r, ready)
}

// waitUntil blocks until release is closed (true) or the client goes away
// (false, counted in Canceled). A nil release never is.
func (s *Server) waitUntil(r *http.Request, release <-chan struct{}) bool {
	select {
	case <-release:
		return true
	case <-r.Context().Done():
		s.countCanceled()
		return false
	case <-s.done:
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, req Request, st Step) {
	if st.Delay > 0 && !s.wait(r, st.Delay) {
		return
	}
	if st.Until != nil && !s.waitUntil(r, st.Until) {
		return
	}
	if st.Hang {
		s.wait(r, -1)
		return
	}
	if st.ResetConn {
		resetConn(w)
		return
	}
	if st.Whitespace > 0 {
		s.streamWhitespace(w, r, st)
		return
	}

	status := st.Status
	if status == 0 {
		status = http.StatusOK
	}
	if req.Stream && st.RawBody == "" && status >= 200 && status < 300 && bodyAllowed(status) {
		s.stream(w, r, req, st, status)
		return
	}

	h := w.Header()
	ct := st.ContentType
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	for k, v := range st.Header {
		h.Set(k, v)
	}

	var body []byte
	switch {
	case st.RawBody != "":
		body = []byte(st.RawBody)
	case status >= 200 && status < 300:
		body = s.completion(req, st)
	default:
		msg := st.Message
		if msg == "" {
			msg = http.StatusText(status)
		}
		typ, code := errorKind(status)
		if st.Code != "" {
			code = st.Code
		}
		body = errorBody(msg, typ, code)
	}
	if !bodyAllowed(status) {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// streamWhitespace writes st.Whitespace spaces in flushed chunks, stopping
// early when the client goes away (counted) or the server closes.
func (s *Server) streamWhitespace(w http.ResponseWriter, r *http.Request, st Step) {
	w.Header().Set("Content-Type", "application/json")
	for k, v := range st.Header {
		w.Header().Set(k, v)
	}
	status := st.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	chunk := []byte(strings.Repeat(" ", 32<<10))
	for left := st.Whitespace; left > 0; left -= len(chunk) {
		select {
		case <-s.done:
			panic(http.ErrAbortHandler)
		default:
		}
		part := chunk[:min(left, len(chunk))]
		_, err := w.Write(part)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil || r.Context().Err() != nil {
			s.mu.Lock()
			s.canceled++
			s.mu.Unlock()
			return
		}
	}
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status < 200) && status != http.StatusNoContent && status != http.StatusNotModified
}

func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Cannot hijack (should not happen for HTTP/1.1): abort instead.
		panic(http.ErrAbortHandler)
	}
	if l, ok := conn.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = conn.Close()
}

type completionMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type completionChoice struct {
	Index        int               `json:"index"`
	Message      completionMessage `json:"message"`
	Logprobs     any               `json:"logprobs"`
	FinishReason string            `json:"finish_reason"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	Choices           []completionChoice `json:"choices"`
	Usage             usage              `json:"usage"`
	SystemFingerprint string             `json:"system_fingerprint"`
}

// newID returns a fresh completion id, shared by all chunks of a stream.
func (s *Server) newID() string {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	return fmt.Sprintf("chatcmpl-fake%06d", id)
}

// answerModel is the model reported in an answer.
func answerModel(req Request, st Step) string {
	if st.Model != "" {
		return st.Model
	}
	return req.Model
}

// estimateUsage is the usage reported for answering req with content (or
// with no choices at all).
func estimateUsage(req Request, st Step) usage {
	prompt := 0
	for _, m := range req.Messages {
		prompt += estimateTokens(m.Content) + 3 // per-message overhead, roughly like OpenAI
	}
	compl := 0
	if !st.NoChoices {
		compl = estimateTokens(st.text())
	}
	return usage{PromptTokens: prompt, CompletionTokens: compl, TotalTokens: prompt + compl}
}

func (s *Server) completion(req Request, st Step) []byte {
	out := completion{
		ID:                s.newID(),
		Object:            "chat.completion",
		Created:           time.Now().Unix(),
		Model:             answerModel(req, st),
		Choices:           []completionChoice{},
		SystemFingerprint: "fp_fakellm",
		Usage:             estimateUsage(req, st),
	}
	if !st.NoChoices {
		out.Choices = append(out.Choices, completionChoice{
			Message:      completionMessage{Role: "assistant", Content: st.text()},
			FinishReason: "stop",
		})
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // static types only; cannot fail
	}
	return b
}

// estimateTokens approximates OpenAI tokenization (~4 bytes per token).
func estimateTokens(s string) int {
	if s == "" {
		return 0
	}
	return (len(s) + 3) / 4
}

func errorKind(status int) (typ, code string) {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_request_error", "invalid_api_key"
	case status == http.StatusForbidden:
		return "permission_error", ""
	case status == http.StatusNotFound:
		return "invalid_request_error", "model_not_found"
	case status == http.StatusTooManyRequests:
		return "requests", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", ""
	default:
		return "invalid_request_error", ""
	}
}

type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// errorBody renders {"error":{...}}; an empty code is emitted as null, as
// OpenAI does.
func errorBody(msg, typ, code string) []byte {
	e := apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	b, err := json.Marshal(struct {
		Error apiError `json:"error"`
	}{e})
	if err != nil {
		panic(err)
	}
	return b
}

func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	body := errorBody(msg, typ, code)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// serveModels lists every model seen in a request or named in a per-model
// queue or default, sorted.
func (s *Server) serveModels(w http.ResponseWriter) {
	s.mu.Lock()
	set := map[string]struct{}{}
	for m := range s.perModel {
		set[m] = struct{}{}
	}
	for m := range s.modelQueues {
		set[m] = struct{}{}
	}
	for m := range s.modelDefaults {
		set[m] = struct{}{}
	}
	s.mu.Unlock()

	data := []modelEntry{}
	for _, m := range slices.Sorted(maps.Keys(set)) {
		data = append(data, modelEntry{ID: m, Object: "model", OwnedBy: "fakellm"})
	}
	b, err := json.Marshal(struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{"list", data})
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
