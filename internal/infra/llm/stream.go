package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"
	openai "github.com/sashabaranov/go-openai"
)

// ErrStreamCut is the error of a streamed reply whose body ended before
// the upstream said it was complete: no "data: [DONE]" line and no
// finish_reason. go-openai reports such an end as io.EOF, the same as a
// whole reply, so the transport watches for the end marker itself.
var ErrStreamCut = errors.New("the upstream's stream ended before its end marker ([DONE])")

// FirstTokenTimeoutError is the error of a streamed attempt that got no
// token within its first-token limit. It is a timeout: Classify counts it
// as one and Retryable retries it.
type FirstTokenTimeoutError struct {
	Limit time.Duration
}

// Is makes a first-token timeout a timeout for Classify and Retryable.
func (e *FirstTokenTimeoutError) Is(target error) bool { return target == timeout.ErrExceeded }

func (e *FirstTokenTimeoutError) Error() string {
	return fmt.Sprintf("no first token within the %s first_token_timeout", e.Limit)
}

// ChatStream sends one chat completion with stream: true and hands each
// piece of the reply's text to onDelta, on the calling goroutine, as the
// upstream sends it. It returns the whole reply once the upstream has said
// it is complete. A stream that breaks (a reset, a cut without [DONE], an
// error line, the context ending) returns the text received so far in
// ChatResponse.Content along with the error. Usage is asked for with
// stream_options.include_usage; an upstream that ignores it reports none.
func (c *Client) ChatStream(ctx context.Context, model string, req ChatRequest, onDelta func(string)) (ChatResponse, error) {
	holder := &retryAfterHolder{}
	watch := &doneWatch{}
	ctx = context.WithValue(ctx, retryAfterKey{}, holder)
	ctx = context.WithValue(ctx, doneWatchKey{}, watch)
	r := request(model, req)
	r.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	stream, err := c.client.CreateChatCompletionStream(ctx, r)
	if err != nil {
		return ChatResponse{}, holder.wrap(err)
	}
	defer stream.Close()
	var (
		text     strings.Builder
		out      = ChatResponse{Model: model}
		finished bool
	)
	for {
		chunk, err := stream.Recv()
		if err != nil {
			out.Content = text.String()
			if !errors.Is(err, io.EOF) {
				return out, err
			}
			if !finished && !watch.done() {
				return out, ErrStreamCut
			}
			break
		}
		if chunk.Model != "" {
			out.Model = chunk.Model
		}
		if chunk.Usage != nil {
			out.Usage = Usage{PromptTokens: chunk.Usage.PromptTokens, CompletionTokens: chunk.Usage.CompletionTokens}
		}
		if len(chunk.Choices) == 0 {
			continue
		}
		ch := chunk.Choices[0]
		if ch.FinishReason != "" {
			finished = true
		}
		if d := ch.Delta.Content; d != "" {
			text.WriteString(d)
			onDelta(d)
		}
	}
	if strings.TrimSpace(out.Content) == "" {
		return ChatResponse{Usage: out.Usage, Content: out.Content}, ErrEmptyCompletion
	}
	return out, nil
}

type doneWatchKey struct{}

// watchDone wraps the body of a successful streamed reply, when ctx
// carries a doneWatch, so that the watch learns whether the end line came.
func watchDone(ctx context.Context, body io.ReadCloser) io.ReadCloser {
	w, ok := ctx.Value(doneWatchKey{}).(*doneWatch)
	if !ok {
		return body
	}
	return &doneBody{ReadCloser: body, watch: w, tail: []byte("\n")}
}

// doneWatch learns, from the bytes of a streamed reply, whether its
// "data: [DONE]" line arrived.
type doneWatch struct {
	mu   sync.Mutex
	seen bool
}

func (w *doneWatch) mark() {
	w.mu.Lock()
	w.seen = true
	w.mu.Unlock()
}

func (w *doneWatch) done() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// doneMarkers are the end line as it may appear in the body. Each starts
// with a newline: model text travels inside JSON strings, which cannot
// hold a raw newline, so a match is a real SSE line.
var doneMarkers = [][]byte{[]byte("\ndata: [DONE]"), []byte("\ndata:[DONE]")}

// doneBody passes a streamed reply through, watching for its end line
// across read boundaries.
type doneBody struct {
	io.ReadCloser
	watch *doneWatch
	tail  []byte // the last bytes read, so that a marker split across reads is found
}

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.watch.done() {
		buf := append(b.tail, p[:n]...)
		for _, m := range doneMarkers {
			if bytes.Contains(buf, m) {
				b.watch.mark()
				break
			}
		}
		keep := len(doneMarkers[0])
		if len(buf) > keep {
			buf = buf[len(buf)-keep:]
		}
		b.tail = append(b.tail[:0], buf...)
	}
	return n, err
}
