package fakellm

// Streamed answers: OpenAI's server-sent events for "stream": true.

import (
	"encoding/json"
	"net/http"
	"time"
)

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     any        `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

// streamChunk is one chat.completion.chunk. Usage is omitted unless the
// request asked for it; then it is null in every chunk but the usage chunk,
// as OpenAI sends it.
type streamChunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           []chunkChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

// streamer writes the events of one streamed answer.
type streamer struct {
	s  *Server
	w  http.ResponseWriter
	r  *http.Request
	rc *http.ResponseController
}

// stream answers req (which asked to stream) with st as server-sent events
// under the 2xx status; see Step for the sequence.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, req Request, st Step, status int) {
	h := w.Header()
	ct := st.ContentType
	if ct == "" {
		ct = "text/event-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	for k, v := range st.Header {
		h.Set(k, v)
	}
	s.mu.Lock()
	s.streams++
	s.mu.Unlock()
	w.WriteHeader(status)
	sw := &streamer{s: s, w: w, r: r, rc: http.NewResponseController(w)}
	// Send the headers now, so that the client sees the 200 before any
	// delay; the role chunk follows at once.
	if !sw.flush() {
		return
	}

	base := streamChunk{
		ID:                s.newID(),
		Object:            "chat.completion.chunk",
		Created:           time.Now().Unix(),
		Model:             answerModel(req, st),
		SystemFingerprint: "fp_fakellm",
	}
	if req.IncludeUsage {
		base.Usage = json.RawMessage("null")
	}
	choice := func(d chunkDelta, finish *string) streamChunk {
		c := base
		c.Choices = []chunkChoice{{Delta: d, FinishReason: finish}}
		return c
	}

	empty := ""
	if !sw.event(choice(chunkDelta{Role: "assistant", Content: &empty}, nil)) {
		return
	}

	pieces := st.pieces()
	cutAt := -1 // the slot a cut takes instead of a piece; -1: none
	if st.Cut != CutNone {
		cutAt = min(max(st.CutAfter, 0), len(pieces))
	}
	for i := 0; i < len(pieces) || i == cutAt; i++ {
		if !s.pace(r, st, i) {
			return
		}
		if i == cutAt {
			s.cut(w, r, st.Cut)
			return
		}
		if !sw.event(choice(chunkDelta{Content: &pieces[i]}, nil)) {
			return
		}
		s.mu.Lock()
		s.chunksSent++
		s.mu.Unlock()
	}

	stop := "stop"
	if !sw.event(choice(chunkDelta{}, &stop)) {
		return
	}
	if req.IncludeUsage {
		u, err := json.Marshal(estimateUsage(req, st))
		if err != nil {
			panic(err) // static types only; cannot fail
		}
		c := base
		c.Choices = []chunkChoice{}
		c.Usage = u
		if !sw.event(c) {
			return
		}
	}
	sw.write([]byte("[DONE]"))
}

// pace waits before content slot i (a piece, or a cut in its place): the
// first or the in-between delay, then one value from the gate. It reports
// false if the client went away meanwhile (counted); it aborts the handler
// if the server closes.
func (s *Server) pace(r *http.Request, st Step, i int) bool {
	d := st.ChunkDelay
	if i == 0 {
		d = st.FirstChunkDelay
	}
	if d > 0 && !s.wait(r, d) {
		return false
	}
	if st.ChunkGate != nil && !s.waitUntil(r, st.ChunkGate) {
		return false
	}
	return true
}

// cut breaks a stream as mode says.
func (s *Server) cut(w http.ResponseWriter, r *http.Request, mode CutMode) {
	switch mode {
	case CutReset:
		resetConn(w)
	case CutHang:
		s.wait(r, -1)
	default: // CutEOF: return, which ends the chunked body cleanly
	}
}

// event writes v as one "data: <json>" event.
func (sw *streamer) event(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // static types only; cannot fail
	}
	return sw.write(b)
}

// write sends one event with payload data and flushes it. It reports false,
// counting the request as canceled, if the client has gone away (checked
// before writing, so that a client leaving right after the last event is not
// counted) or the write fails; it aborts the handler if the server is
// closing.
func (sw *streamer) write(data []byte) bool {
	select {
	case <-sw.s.done:
		panic(http.ErrAbortHandler)
	default:
	}
	if sw.r.Context().Err() != nil {
		sw.s.countCanceled()
		return false
	}
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := sw.w.Write(buf); err != nil {
		sw.s.countCanceled()
		return false
	}
	return sw.flush()
}

func (sw *streamer) flush() bool {
	if err := sw.rc.Flush(); err != nil {
		sw.s.countCanceled()
		return false
	}
	return true
}

func (s *Server) countCanceled() {
	s.mu.Lock()
	s.canceled++
	s.mu.Unlock()
}
