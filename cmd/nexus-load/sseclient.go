package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// streamTimes are one streamed request's waits, each from just before it
// was sent.
type streamTimes struct {
	// first is the wait for its first event: through Nexus the first
	// step event; straight to the upstream the role chunk, which comes
	// with the headers.
	first time.Duration
	// token is the wait for its first text: through Nexus the first token
	// event; straight to the upstream the first chunk with content.
	token time.Duration
	// relay is the time from the upstream's write of the first content
	// chunk to the client's read of the first token: the part of token
	// that the path adds after the upstream answers. Set by sequential.
	relay time.Duration
}

// eventReader reads server-sent events line by line.
type eventReader struct {
	sc   *bufio.Scanner
	name string
}

func newEventReader(r io.Reader) *eventReader {
	sc := bufio.NewScanner(r)
	// A Nexus result event is the whole JSON answer on one line.
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	return &eventReader{sc: sc}
}

// next returns the next data line's payload and the name of its event
// ("" when no event line preceded it, as in OpenAI's streams). Comment
// lines (Nexus's ": ping") are skipped. It returns io.EOF at the end.
func (e *eventReader) next() (string, []byte, error) {
	for e.sc.Scan() {
		line := e.sc.Bytes()
		switch {
		case len(line) == 0:
			e.name = ""
		case bytes.HasPrefix(line, []byte("event:")):
			e.name = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			return e.name, bytes.TrimSpace(line[len("data:"):]), nil
		}
	}
	if err := e.sc.Err(); err != nil {
		return "", nil, err
	}
	return "", nil, io.EOF
}

// analyzeStreamBody asks /analyze a question without data, streamed: only
// the data_analyst answers, with one streamed LLM call.
var analyzeStreamBody = []byte(`{"query":"Which region sold the most?","stream":true}`)

// upstreamStreamBody is a streamed chat completion like the one Nexus
// sends for that question.
var upstreamStreamBody = []byte(`{"model":"llama3.1","messages":[{"role":"system","content":"You are a data analyst. Answer the question directly and briefly."},{"role":"user","content":"Which region sold the most?"}],"stream":true,"stream_options":{"include_usage":true}}`)

// streamSender makes one streamed request and reads it to its end. onToken,
// if set, is called once, when the first text has arrived.
type streamSender func(ctx context.Context, client *http.Client, onToken func()) (streamTimes, error)

// nexusStream returns a streamSender of POST /analyze on base, which must
// answer 200 with step events, token events that join to streamAnswer, a
// result whose answer is the same, and done last.
func nexusStream(base string) streamSender {
	url := base + "/analyze"
	return func(ctx context.Context, client *http.Client, onToken func()) (streamTimes, error) {
		var t streamTimes
		resp, start, err := postStream(ctx, client, url, analyzeStreamBody, "")
		if err != nil {
			return t, err
		}
		defer resp.Body.Close()
		er := newEventReader(resp.Body)
		var text strings.Builder
		var result, done bool
		for {
			name, data, err := er.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return t, err
			}
			if t.first == 0 {
				t.first = time.Since(start)
				if name != "step" {
					return t, fmt.Errorf("/analyze: first event %q, want step", name)
				}
			}
			switch name {
			case "token":
				if t.token == 0 {
					t.token = time.Since(start)
					if onToken != nil {
						onToken()
					}
				}
				var tok struct {
					Text string `json:"text"`
				}
				if err := json.Unmarshal(data, &tok); err != nil {
					return t, fmt.Errorf("/analyze: token event: %w", err)
				}
				text.WriteString(tok.Text)
			case "result":
				var res struct {
					Answer string `json:"answer"`
				}
				if err := json.Unmarshal(data, &res); err != nil || res.Answer != streamAnswer {
					return t, fmt.Errorf("/analyze: result is not the upstream's answer: %s", data)
				}
				result = true
			case "error":
				return t, fmt.Errorf("/analyze: error event: %s", data)
			case "done":
				done = true
			}
		}
		if !result || !done || text.String() != streamAnswer {
			return t, fmt.Errorf("/analyze: stream ended with result %t, done %t, tokens %q", result, done, text.String())
		}
		return t, nil
	}
}

// postStream sends one streamed request (with a bearer key, if given) and
// checks that it is answered with an event stream; start is when it was
// sent. The caller closes the body.
func postStream(ctx context.Context, client *http.Client, url string, body []byte, key string) (*http.Response, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, start, err
	}
	if err := wantEventStream(resp); err != nil {
		_ = resp.Body.Close()
		return nil, start, err
	}
	return resp, start, nil
}

// upstreamStream returns a streamSender of a streamed chat completion
// straight to the upstream at baseURL (its /v1), whose content must join
// to streamAnswer and end with [DONE].
func upstreamStream(baseURL string) streamSender {
	url := baseURL + "/chat/completions"
	return func(ctx context.Context, client *http.Client, onToken func()) (streamTimes, error) {
		var t streamTimes
		resp, start, err := postStream(ctx, client, url, upstreamStreamBody, llmKey)
		if err != nil {
			return t, err
		}
		defer resp.Body.Close()
		er := newEventReader(resp.Body)
		var text strings.Builder
		var done bool
		for {
			_, data, err := er.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return t, err
			}
			if t.first == 0 {
				t.first = time.Since(start)
			}
			if string(data) == "[DONE]" {
				done = true
				continue
			}
			var c struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			if err := json.Unmarshal(data, &c); err != nil {
				return t, fmt.Errorf("upstream: chunk: %w", err)
			}
			if len(c.Choices) == 0 || c.Choices[0].Delta.Content == "" {
				continue
			}
			if t.token == 0 {
				t.token = time.Since(start)
				if onToken != nil {
					onToken()
				}
			}
			text.WriteString(c.Choices[0].Delta.Content)
		}
		if !done || text.String() != streamAnswer {
			return t, fmt.Errorf("upstream: stream ended with [DONE] %t, content %q", done, text.String())
		}
		return t, nil
	}
}

// wantEventStream fails unless resp is a 200 with an event stream.
func wantEventStream(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
}
