package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// streamPieces are the content chunks of every streamed reply, in order.
// None ends in whitespace, so that Nexus, which holds trailing whitespace
// back, passes each on as it comes.
var streamPieces = []string{"North", " sold", " the", " most:", " 160", " units,", " then", " South."}

// streamAnswer is the whole reply: what the tokens of a stream join to.
var streamAnswer = strings.Join(streamPieces, "")

// chunkGap is the wait between content chunks after the first: a fast
// model's 500 tokens a second. It also keeps the rest of a stream from
// competing, on a small machine, with the relay of its first token, when
// the upstream, Nexus and the client share this process: sent at once,
// the other chunks made the first token's relay through Nexus (see
// streamTimes.relay) about 0.36 ms slower than straight on two cores,
// against 0.07 ms with the gap.
const chunkGap = 2 * time.Millisecond

// streamUpstream is an OpenAI-compatible upstream on loopback that
// answers every chat completion as OpenAI streams one: a role chunk at
// once, the first content chunk after the first-chunk delay, the other
// chunks chunkGap apart, then at once a finish chunk, a usage chunk when
// stream_options.include_usage asks for it, and "data: [DONE]". While
// held (see hold), each stream stops after its first content chunk until
// release. Its chunks are rendered once, so that it costs both sides of
// a comparison little and alike.
type streamUpstream struct {
	server
	firstDelay atomic.Int64 // nanoseconds

	mu   sync.Mutex
	gate chan struct{} // non-nil while held; closed by release

	streams atomic.Int64 // streamed replies begun
	waiting atomic.Int64 // streams held now

	// lastFirst is when the first content chunk of the latest reply was
	// written, as time since epoch: with one request in flight, the
	// client's read of its first token minus this is the time the token
	// took to be relayed, whatever the request took before.
	epoch     time.Time
	lastFirst atomic.Int64
}

// Pre-rendered events of every reply.
var (
	roleEvent   = sseData(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	pieceEvents = func() [][]byte {
		out := make([][]byte, len(streamPieces))
		for i, p := range streamPieces {
			out[i] = sseData(chunk(map[string]any{"content": p}, nil))
		}
		return out
	}()
	finishEvent = sseData(chunk(map[string]any{}, "stop"))
	usageEvent  = sseData(mustJSON(map[string]any{
		"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1700000000, "model": "llama3.1",
		"choices": []any{}, "usage": map[string]any{"prompt_tokens": 30, "completion_tokens": len(streamPieces), "total_tokens": 30 + len(streamPieces)},
	}))
	doneEvent = []byte("data: [DONE]\n\n")
)

func chunk(delta map[string]any, finish any) []byte {
	return mustJSON(map[string]any{
		"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1700000000, "model": "llama3.1",
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // static values only
	}
	return b
}

func sseData(b []byte) []byte { return []byte("data: " + string(b) + "\n\n") }

func startStreamUpstream(ctx context.Context) (*streamUpstream, error) {
	u := &streamUpstream{epoch: time.Now()}
	srv, err := serve(ctx, "upstream", http.HandlerFunc(u.serveHTTP))
	if err != nil {
		return nil, err
	}
	u.server = srv
	return u, nil
}

func (u *streamUpstream) url() string { return "http://" + u.addr + "/v1" }

// setFirstDelay sets the wait before each reply's first content chunk.
func (u *streamUpstream) setFirstDelay(d time.Duration) { u.firstDelay.Store(int64(d)) }

// hold makes every stream that begins from now on stop after its first
// content chunk until release.
func (u *streamUpstream) hold() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gate == nil {
		u.gate = make(chan struct{})
	}
}

// release lets every held stream go on to its end, and ends holding. It
// may be called when nothing is held.
func (u *streamUpstream) release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.gate != nil {
		close(u.gate)
		u.gate = nil
	}
}

// wait waits d, and reports false if r's client left meanwhile.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// sinceFirst is the time since the latest reply's first content chunk
// was written.
func (u *streamUpstream) sinceFirst() time.Duration {
	return time.Since(u.epoch) - time.Duration(u.lastFirst.Load())
}

func (u *streamUpstream) currentGate() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gate
}

func (u *streamUpstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if answerRoutine(w, r) {
		return
	}
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"message":"this upstream only streams","type":"invalid_request_error","code":null}}`))
		return
	}
	gate := u.currentGate()
	u.streams.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(ev []byte) bool {
		if _, err := w.Write(ev); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(roleEvent) {
		return
	}
	if !wait(r, time.Duration(u.firstDelay.Load())) {
		return
	}
	u.lastFirst.Store(int64(time.Since(u.epoch)))
	if !send(pieceEvents[0]) {
		return
	}
	if gate != nil {
		u.waiting.Add(1)
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		u.waiting.Add(-1)
		if r.Context().Err() != nil {
			return
		}
	}
	for _, ev := range pieceEvents[1:] {
		if !wait(r, chunkGap) || !send(ev) {
			return
		}
	}
	if !send(finishEvent) {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !send(usageEvent) {
		return
	}
	send(doneEvent)
}
