package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/progress"
)

// DefaultSSEHeartbeat is the interval of the comment line a stream sends
// while nothing else is sent, so that proxies keep the connection open.
const DefaultSSEHeartbeat = 15 * time.Second

// sseWriteTimeout bounds each write to a stream's client: one that stops
// reading is cut off, and its request cancelled, rather than holding the
// request (and its upstream stream) forever.
const sseWriteTimeout = 30 * time.Second

// Event names, in the order a stream sends them.
const (
	eventStep   = "step"
	eventToken  = "token"
	eventResult = "result"
	eventError  = "error"
	eventDone   = "done"
)

// wantsStream reports whether a request asked for server-sent events: its
// body's stream field when given, else an Accept header that names
// text/event-stream.
func wantsStream(c echo.Context, field *bool) bool {
	if field != nil {
		return *field
	}
	for _, part := range strings.Split(c.Request().Header.Get(echo.HeaderAccept), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "text/event-stream" {
			continue
		}
		if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
			continue
		}
		return true
	}
	return false
}

// eventStream sends a request's progress to its client as server-sent
// events, and is the progress.Sink the agents are given. It starts the
// response at its first event, not before: whatever fails before the
// pipeline has anything to tell (the body, an unknown dataset or source,
// malformed inline data) is still answered as plain JSON by the error
// handler. Once started, the status is 200 and every failure is an error
// event followed by done.
//
// Events are queued, and one goroutine writes them (and the heartbeats),
// so that the code that reads the LLM's stream never waits on the client:
// time a slow client takes must not count against the LLM. A client that
// stalls (see sseMaxPending), or whose write fails or blocks past
// sseWriteTimeout, is cut off: the request's context is cancelled (its
// LLM call ends as neutral, the client's doing) and later events are
// dropped.
type eventStream struct {
	c        echo.Context
	ctx      context.Context
	cancel   context.CancelFunc
	interval time.Duration

	mu        sync.Mutex
	started   bool
	closed    bool
	broken    bool
	pending   []byte
	lastWrite time.Time
	// writing is when the write in progress began; zero between writes.
	writing time.Time

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// A client stalls when sseMaxPending bytes wait for it while one write to
// it has been blocked for sseStallAfter, or when sseHardPending bytes wait
// whatever the writes do. Events are never refused for their own size: a
// result is bounded by the config's caps, and a fast client must get it.
const (
	sseMaxPending  = 1 << 20
	sseStallAfter  = 5 * time.Second
	sseHardPending = 16 << 20
)

// stalledLocked reports whether the client stalls (see sseMaxPending).
func (s *eventStream) stalledLocked() bool {
	if len(s.pending) > sseHardPending {
		return true
	}
	return len(s.pending) > sseMaxPending && !s.writing.IsZero() && time.Since(s.writing) > sseStallAfter
}

// newEventStream prepares a stream for c; nothing is written yet. Its ctx
// is the request's, ended also when the client cannot keep up.
func newEventStream(c echo.Context, heartbeat time.Duration) *eventStream {
	if heartbeat <= 0 {
		heartbeat = DefaultSSEHeartbeat
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	return &eventStream{c: c, ctx: ctx, cancel: cancel, interval: heartbeat,
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Step implements progress.Sink.
func (s *eventStream) Step(st progress.Step) {
	ev := stepEvent{Step: st.Step, Status: st.Status, Attempts: st.Attempts, DurationMS: millis(st.Duration.Seconds()), Detail: st.Detail}
	ev.Circuit, ev.Provider, ev.Model, ev.LLMRequests = llmFields(st.Circuit, st.Provider, st.Model, st.LLMRequests)
	s.send(eventStep, ev)
}

// Token implements progress.Sink.
func (s *eventStream) Token(step, text string) {
	s.send(eventToken, tokenEvent{Step: step, Text: text})
}

// Replace implements progress.Sink: a token that replaces the step's text.
func (s *eventStream) Replace(step, text string) {
	s.send(eventToken, tokenEvent{Step: step, Text: text, Replace: true})
}

type stepEvent struct {
	Step        string  `json:"step"`
	Status      string  `json:"status"`
	Circuit     *string `json:"circuit"`
	Provider    *string `json:"provider"`
	Model       *string `json:"model"`
	LLMRequests *int    `json:"llm_requests,omitempty"`
	Attempts    int     `json:"attempts"`
	DurationMS  float64 `json:"duration_ms"`
	Detail      string  `json:"detail"`
}

type tokenEvent struct {
	Step string `json:"step"`
	Text string `json:"text"`
	// Replace is true when Text replaces every token of the step sent
	// before (an answer revised after its review).
	Replace bool `json:"replace,omitempty"`
}

// errorEvent carries an error as the JSON API would have answered it:
// the same status and code, the message, Retry-After in seconds (null
// when there is none), and the whole JSON error body.
type errorEvent struct {
	Status     int             `json:"status"`
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	Field      string          `json:"field,omitempty"`
	RetryAfter *int            `json:"retry_after"`
	Body       json.RawMessage `json:"body,omitempty"`
}

// isStarted reports whether the response has begun.
func (s *eventStream) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// send queues one event; v must marshal (the event types do).
func (s *eventStream) send(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte("{}")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.broken {
		return
	}
	if !s.started {
		s.startLocked()
	}
	if s.stalledLocked() {
		s.breakLocked()
		return
	}
	s.pending = append(s.pending, "event: "...)
	s.pending = append(s.pending, name...)
	s.pending = append(s.pending, "\ndata: "...)
	s.pending = append(s.pending, data...) // JSON holds no raw newline: one data line
	s.pending = append(s.pending, "\n\n"...)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *eventStream) startLocked() {
	h := s.c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers responses unless told not to.
	h.Set("X-Accel-Buffering", "no")
	h.Del(echo.HeaderContentLength)
	s.c.Response().WriteHeader(http.StatusOK)
	s.started = true
	s.lastWrite = time.Now()
	s.wg.Add(1)
	go s.write()
}

// breakLocked cuts the client off: nothing more is queued or written, and
// the request's work is cancelled.
func (s *eventStream) breakLocked() {
	s.broken = true
	s.pending = nil
	s.cancel()
	// A write blocked on the client returns at once (deadlines may be
	// moved while a write waits), and so does net/http's last one: the
	// connection is dropped rather than kept for a client that stalls.
	_ = http.NewResponseController(s.c.Response()).SetWriteDeadline(time.Unix(1, 0))
}

// write is the stream's one writer: it sends what is queued, a heartbeat
// whenever interval passes with nothing sent, and, once the stream is
// closed, whatever is left.
func (s *eventStream) write() {
	defer s.wg.Done()
	timer := time.NewTimer(s.interval)
	defer timer.Stop()
	for {
		stopping := false
		select {
		case <-s.wake:
		case <-s.stop:
			stopping = true
		case <-timer.C:
		}
		s.mu.Lock()
		if s.broken {
			// Nothing more goes out: wait for the handler to finish.
			s.mu.Unlock()
			<-s.stop
			return
		}
		buf := s.pending
		s.pending = nil
		if len(buf) == 0 && !stopping && time.Since(s.lastWrite) >= s.interval {
			buf = []byte(": ping\n\n")
		}
		rc := http.NewResponseController(s.c.Response())
		if len(buf) > 0 {
			// Under the lock, so that a break's deadline in the past
			// always comes after, never before, this one.
			_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
			s.writing = time.Now()
		}
		s.mu.Unlock()
		if len(buf) > 0 {
			err := flush(s.c.Response(), rc, buf)
			s.mu.Lock()
			s.writing = time.Time{}
			s.lastWrite = time.Now()
			if err != nil && !s.broken {
				s.breakLocked()
			}
			s.mu.Unlock()
		}
		if stopping {
			return
		}
		s.mu.Lock()
		wait := max(s.interval-time.Since(s.lastWrite), time.Millisecond)
		s.mu.Unlock()
		timer.Reset(wait)
	}
}

// flush writes p to the client, under the deadline write set. The deadline
// is left in place: net/http clears it once the response is finished,
// after its own last write, which it then also bounds.
func flush(w io.Writer, rc *http.ResponseController, p []byte) error {
	if _, err := w.Write(p); err != nil {
		return err
	}
	return rc.Flush()
}

// close sends what is queued and waits for the writer: nothing is written
// once the handler has returned.
func (s *eventStream) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.cancel()
}

// failOnPanic, deferred by a stream's handler after close, ends a started
// stream with an internal_error event and done before the panic goes on
// to the server's recovery (which logs it): a panic is never a silent 200.
func (s *eventStream) failOnPanic() {
	r := recover()
	if r == nil {
		return
	}
	if r != http.ErrAbortHandler && s.isStarted() {
		s.send(eventError, errorEvent{Status: http.StatusInternalServerError, Code: "internal_error", Message: "internal server error"})
		s.send(eventDone, struct{}{})
	}
	panic(r)
}

// fail sends err as the error event the JSON API would have answered
// with, then done. An error that leaves nothing to say (the client left)
// sends nothing.
func (s *eventStream) fail(err error) {
	ev, ok := describeError(s.c, err)
	if !ok {
		return
	}
	s.send(eventError, ev)
	s.send(eventDone, struct{}{})
}

// interrupted sends the error event of an answer whose stream broke
// after part of it was sent: stream_interrupted, or request_timeout when
// it was the request's deadline that broke it.
func (s *eventStream) interrupted(err error) {
	if timedOut(s.c, err) {
		if ev, ok := describeError(s.c, err); ok {
			s.send(eventError, ev)
		}
		return
	}
	ev := errorEvent{Status: http.StatusBadGateway, Code: codeStreamInterrupted,
		Message: "the LLM's stream broke after part of the answer was sent; the result holds exactly the part sent"}
	if le, ok := errors.AsType[*circuit.LLMError](err); ok {
		ev.Message += ": " + le.Message
		if le.RetryAfter > 0 {
			n := retryAfterSeconds(le.RetryAfter)
			ev.RetryAfter = &n
		}
	}
	s.send(eventError, ev)
}

// codeStreamInterrupted is the error code of a stream that broke after
// part of the answer was sent.
const codeStreamInterrupted = "stream_interrupted"

// describeError renders err through the one error handler, into a
// recorder instead of the response, and returns it as an error event. It
// returns false when the handler would send no body (the client left).
func describeError(c echo.Context, err error) (errorEvent, bool) {
	rec := &recorder{header: http.Header{}}
	ec := c.Echo().NewContext(c.Request(), rec)
	ec.SetPath(c.Path())
	ec.Set(requestIDKey, c.Get(requestIDKey))
	ec.Set(connContextKey, c.Get(connContextKey))
	c.Echo().HTTPErrorHandler(err, ec)
	if rec.body.Len() == 0 {
		return errorEvent{}, false
	}
	var body struct {
		Error errorDetail `json:"error"`
	}
	_ = json.Unmarshal(rec.body.Bytes(), &body)
	ev := errorEvent{Status: rec.status, Code: body.Error.Code, Message: body.Error.Message, Field: body.Error.Field,
		Body: json.RawMessage(bytes.TrimSpace(rec.body.Bytes()))}
	if ra, err := strconv.Atoi(rec.header.Get("Retry-After")); err == nil {
		ev.RetryAfter = &ra
	}
	return ev, true
}

// recorder is the http.ResponseWriter describeError renders into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
