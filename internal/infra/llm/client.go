package llm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/nexus/nexus/internal/infra/httpx"
)

// Message is one chat message.
type Message struct {
	Role    string
	Content string
}

// ChatRequest is what an agent asks of the LLM. Model is optional: empty
// means the circuit's configured model.
type ChatRequest struct {
	Model       string
	Messages    []Message
	Temperature float32
	MaxTokens   int
}

// ChatResponse is a usable completion.
type ChatResponse struct {
	Content string
	// Model is the model that answered, as the upstream reported it.
	Model string
	// Provider is the configured provider whose target answered; the
	// circuit fills it in.
	Provider string
	// Attempts is how many LLM requests the call made, retries, failovers
	// and hedges included; the circuit fills it in.
	Attempts int
	// Failover is true when a target other than the circuit's first one
	// answered.
	Failover bool
	// Usage is the tokens the upstream reported for this completion
	// (its "usage"); zero when it reported none.
	Usage Usage
}

// Usage is what one completion cost, as the upstream counted it.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// Total is prompt plus completion tokens.
func (u Usage) Total() int { return u.PromptTokens + u.CompletionTokens }

// Config configures the OpenAI-compatible client.
type Config struct {
	BaseURL             string
	APIKey              string
	MaxIdleConnsPerHost int
	// MaxResponseBytes caps every reply body, error bodies included,
	// counted while reading (llm.max_response_bytes). Past it the call
	// fails with a *ResponseTooLargeError and the connection is closed.
	// Zero means DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// Client talks to any OpenAI-compatible endpoint through go-openai. It is
// the only code that calls the LLM, and only circuits call it.
type Client struct {
	client    *openai.Client
	transport *http.Transport
}

// NewClient builds a client with its own tuned transport: Go's default
// keeps two idle connections per host, which throttles the service under
// load. Its transport also captures Retry-After, which go-openai drops,
// and caps reply bodies, which go-openai reads whole.
func NewClient(cfg Config) *Client {
	limit := cfg.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          cfg.MaxIdleConnsPerHost * 2,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	// go-openai fails a stream after 300 lines without data in one wait
	// (keep-alive comments, blank lines): about 150 ": ping" comments, a
	// few minutes of a model thinking. The body cap bounds them instead.
	oc.EmptyMessagesLimit = 1 << 20
	oc.HTTPClient = &http.Client{Transport: retryAfterTransport{base: bodyCapTransport{base: tr, max: limit}}}
	return &Client{client: openai.NewClientWithConfig(oc), transport: tr}
}

// Close releases idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Chat sends one chat completion. Errors are go-openai's, wrapped in a
// *retryAfterError when the upstream sent Retry-After.
func (c *Client) Chat(ctx context.Context, model string, req ChatRequest) (ChatResponse, error) {
	holder := &retryAfterHolder{}
	ctx = context.WithValue(ctx, retryAfterKey{}, holder)
	resp, err := c.client.CreateChatCompletion(ctx, request(model, req))
	if err != nil {
		return ChatResponse{}, holder.wrap(err)
	}
	usage := Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens}
	if len(resp.Choices) == 0 || strings.TrimSpace(resp.Choices[0].Message.Content) == "" {
		// The tokens were spent all the same: the usage goes with the
		// error, for the circuit to report.
		return ChatResponse{Usage: usage}, ErrEmptyCompletion
	}
	answered := resp.Model
	if answered == "" {
		answered = model
	}
	return ChatResponse{Content: resp.Choices[0].Message.Content, Model: answered, Usage: usage}, nil
}

// request is req as go-openai sends it.
func request(model string, req ChatRequest) openai.ChatCompletionRequest {
	msgs := make([]openai.ChatCompletionMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	return openai.ChatCompletionRequest{Model: model, Messages: msgs, Temperature: req.Temperature, MaxTokens: req.MaxTokens}
}

type retryAfterKey struct{}

type retryAfterHolder struct {
	mu    sync.Mutex
	after time.Duration
}

func (h *retryAfterHolder) set(d time.Duration) {
	h.mu.Lock()
	h.after = d
	h.mu.Unlock()
}

func (h *retryAfterHolder) get() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.after
}

// wrap carries the Retry-After the transport saw, if any, with err.
func (h *retryAfterHolder) wrap(err error) error {
	if d := h.get(); d > 0 {
		return &retryAfterError{err: err, after: d}
	}
	return err
}

// retryAfterTransport records an error response's Retry-After header into
// the holder that Chat put in the request's context.
type retryAfterTransport struct{ base http.RoundTripper }

func (t retryAfterTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode < 400 {
		resp.Body = watchDone(r.Context(), resp)
		return resp, nil
	}
	if h, ok := r.Context().Value(retryAfterKey{}).(*retryAfterHolder); ok {
		if d := httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			h.set(d)
		}
	}
	return resp, nil
}

// retryAfterError carries the upstream's Retry-After alongside its error.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

func RetryAfter(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.after
	}
	return 0
}

// Ping sends the smallest chat completion there is, a 1-token answer to
// "ping", as a recovery probe. Any 2xx is a success, empty or not: the
// model answered. Reasoning models refuse max_tokens (go-openai checks it
// before sending), so for them the one token is max_completion_tokens.
func (c *Client) Ping(ctx context.Context, model string) error {
	req := openai.ChatCompletionRequest{
		Model:     model,
		Messages:  []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "ping"}},
		MaxTokens: 1,
	}
	if openai.NewReasoningValidator().Validate(req) != nil {
		req.MaxTokens, req.MaxCompletionTokens = 0, 1
	}
	holder := &retryAfterHolder{}
	ctx = context.WithValue(ctx, retryAfterKey{}, holder)
	if _, err := c.client.CreateChatCompletion(ctx, req); err != nil {
		return holder.wrap(err)
	}
	return nil
}
