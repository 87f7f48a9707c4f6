package llm

import (
	"fmt"
	"io"
	"net/http"
	"sync"
)

// DefaultMaxResponseBytes is the reply body cap used when Config leaves
// MaxResponseBytes at zero; it matches llm.max_response_bytes' default.
const DefaultMaxResponseBytes int64 = 4 << 20

// ResponseTooLargeError is the read error of an LLM reply body, success or
// error status alike, that went past the cap. Classify counts it as a
// failure, like any other malformed reply.
type ResponseTooLargeError struct {
	// Limit is the cap in bytes (llm.max_response_bytes).
	Limit int64
}

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf("reply body exceeds llm.max_response_bytes (%d bytes); the connection was closed", e.Limit)
}

// bodyCapTransport wraps every response body in a reader that counts while
// reading and fails past max. go-openai reads whole bodies with no cap
// (json.Decoder on a 200, io.ReadAll on an error status), so an upstream
// that sends endless whitespace or a huge error would otherwise grow memory
// without bound.
type bodyCapTransport struct {
	base http.RoundTripper
	max  int64
}

func (t bodyCapTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max, limit: t.max}
	return resp, nil
}

// cappedBody lets limit bytes through. A read that would go past them
// closes the upstream body at once, which makes the transport drop the
// connection (an unread body is never reused), and fails with a
// *ResponseTooLargeError from then on. It is read by one goroutine at a
// time, as http.Response bodies are, but Close may come from another.
type cappedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
	err   error

	closeOnce sync.Once
	closeErr  error
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for one byte more than is left, so that a body of exactly
	// limit bytes still ends with io.EOF and one byte more is caught.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) <= b.left {
		b.left -= int64(n)
		return n, err
	}
	n = int(b.left)
	b.left = 0
	b.err = &ResponseTooLargeError{Limit: b.limit}
	_ = b.Close()
	return n, b.err
}

func (b *cappedBody) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.rc.Close() })
	return b.closeErr
}
