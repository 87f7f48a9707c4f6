package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
func (c *Client) ChatStream(ctx context.Context, model string, req ChatRequest, onDelta func(string)) (resp ChatResponse, err error) {
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
	defer func() {
		// A stream that ended without the upstream's usage (an upstream
		// that ignores include_usage, a cut, a client that left) still
		// cost tokens, and its client kept the text: budgets are charged
		// an estimate.
		if resp.Usage.Total() == 0 {
			resp.Usage = estimateUsage(req, text.Len())
		}
	}()
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
		return ChatResponse{Content: out.Content, Usage: out.Usage}, ErrEmptyCompletion
	}
	return out, nil
}

// estimateUsage guesses what a completion cost when the upstream did not
// say: about four bytes a token, and a few tokens a message, as OpenAI
// counts roughly.
func estimateUsage(req ChatRequest, completionBytes int) Usage {
	prompt := 0
	for _, m := range req.Messages {
		prompt += (len(m.Content)+3)/4 + 3
	}
	return Usage{PromptTokens: prompt, CompletionTokens: (completionBytes + 3) / 4}
}

type doneWatchKey struct{}

// watchDone wraps the body of a successful streamed reply, when ctx
// carries a doneWatch, so that the watch learns whether the end line came.
// An upstream that ignored stream: true and answered one JSON completion
// has it turned into the one-chunk stream it stands for, rather than
// being read as an empty stream.
func watchDone(ctx context.Context, resp *http.Response) io.ReadCloser {
	w, ok := ctx.Value(doneWatchKey{}).(*doneWatch)
	if !ok {
		return resp.Body
	}
	body := resp.Body
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// Not labelled a stream: one whose first byte opens a JSON
		// object is a whole completion; anything else (a stream under
		// the wrong label) is read as a stream.
		br := bufio.NewReader(resp.Body)
		if first, err := peekNonBlank(br); err == nil && first == '{' {
			sse, whole := jsonAsStream(io.NopCloser(br))
			_ = resp.Body.Close()
			if whole {
				w.mark()
			}
			return sse
		}
		body = readCloser{Reader: br, Closer: resp.Body}
	}
	return &doneBody{ReadCloser: body, watch: w, tail: []byte("\n")}
}

// peekNonBlank returns the first byte that is not blank, without consuming
// anything past the blanks before it.
func peekNonBlank(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			return b, br.UnreadByte()
		}
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// jsonAsStream reads a whole JSON completion (within the body cap) and
// returns it as a stream of one chunk, the usage and [DONE]; whole is true
// then. A body that is not one is given back as read, for the stream
// reader to fail on.
func jsonAsStream(body io.ReadCloser) (sse io.ReadCloser, whole bool) {
	defer body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		return io.NopCloser(errReader{err}), false
	}
	var reply openai.ChatCompletionResponse
	if json.Unmarshal(raw, &reply) != nil || len(reply.Choices) == 0 {
		return io.NopCloser(bytes.NewReader(raw)), false
	}
	chunk := openai.ChatCompletionStreamResponse{ID: reply.ID, Object: "chat.completion.chunk", Created: reply.Created, Model: reply.Model,
		Choices: []openai.ChatCompletionStreamChoice{{Delta: openai.ChatCompletionStreamChoiceDelta{Role: reply.Choices[0].Message.Role,
			Content: reply.Choices[0].Message.Content}, FinishReason: reply.Choices[0].FinishReason}}}
	if reply.Usage.PromptTokens+reply.Usage.CompletionTokens > 0 {
		u := reply.Usage
		chunk.Usage = &u
	}
	data, err := json.Marshal(chunk)
	if err != nil {
		return io.NopCloser(bytes.NewReader(raw)), false
	}
	var b bytes.Buffer
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\ndata: [DONE]\n\n")
	return io.NopCloser(&b), true
}

// errReader fails every read with its error.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

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

// hasDone reports whether buf holds the end line, "data:" then optional
// blanks then "[DONE]", as go-openai reads it. The line must start after a
// newline: model text travels inside JSON strings, which cannot hold a raw
// newline, so a match is a real SSE line.
func hasDone(buf []byte) bool {
	const prefix = "\ndata:"
	for {
		i := bytes.Index(buf, []byte(prefix))
		if i < 0 {
			return false
		}
		rest := bytes.TrimLeft(buf[i+len(prefix):], " \t")
		if bytes.HasPrefix(rest, []byte("[DONE]")) {
			return true
		}
		buf = buf[i+1:]
	}
}

// doneTail is how many bytes of one read are kept for the next, so that an
// end line split across reads is still found.
const doneTail = 64

// doneBody passes a streamed reply through, watching for its end line
// across read boundaries.
type doneBody struct {
	io.ReadCloser
	watch *doneWatch
	tail  []byte // the last bytes read
}

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.watch.done() {
		buf := append(b.tail, p[:n]...)
		if hasDone(buf) {
			b.watch.mark()
		}
		if len(buf) > doneTail {
			buf = buf[len(buf)-doneTail:]
		}
		b.tail = append(b.tail[:0], buf...)
	}
	return n, err
}
