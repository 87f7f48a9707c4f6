// Package agent is the data-analyst agent behind POST /analyze. It turns a
// question and the user's data into a prompt and asks the LLM through the
// data_analyst circuit. It knows nothing of HTTP.
package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/infra"
)

// Completer is the guarded LLM call the analyst needs; *infra.Circuit
// provides it.
type Completer interface {
	Complete(ctx context.Context, req infra.ChatRequest) (infra.ChatResponse, error)
	Name() string
}

// Analyst answers questions about the user's data.
type Analyst struct {
	llm Completer
}

// NewAnalyst returns an analyst that calls the LLM through llm (the
// data_analyst circuit).
func NewAnalyst(llm Completer) *Analyst {
	return &Analyst{llm: llm}
}

// Request is one question. Data is optional inline data.
type Request struct {
	Query string
	Data  *InlineData
	Model string
}

// InlineData is data sent with the request rather than stored.
type InlineData struct {
	Format  string // "csv" or "json"
	Content string
}

// Answer is the analyst's reply.
type Answer struct {
	Answer   string
	Model    string
	Circuit  string
	Duration time.Duration
}

// Analyze answers req. A malformed inline dataset is an *InputError; LLM
// failures are the circuit's *infra.LLMError, unchanged.
func (a *Analyst) Analyze(ctx context.Context, req Request) (Answer, error) {
	start := time.Now()
	var summary string
	if req.Data != nil {
		tbl, err := parseInline(*req.Data)
		if err != nil {
			return Answer{}, err
		}
		summary = tbl.describe()
	}
	resp, err := a.llm.Complete(ctx, infra.ChatRequest{
		Model:    req.Model,
		Messages: analystPrompt(req.Query, summary),
	})
	if err != nil {
		return Answer{}, err
	}
	return Answer{
		Answer:   strings.TrimSpace(resp.Content),
		Model:    resp.Model,
		Circuit:  a.llm.Name(),
		Duration: time.Since(start),
	}, nil
}

func analystPrompt(query, summary string) []infra.Message {
	system := "You are a careful data analyst. Answer the user's question concisely. " +
		"When data is provided, base every number you cite on it and say when the sample is not enough to be sure."
	user := query
	if summary != "" {
		user = fmt.Sprintf("Data:\n%s\n\nQuestion: %s", summary, query)
	}
	return []infra.Message{{Role: "system", Content: system}, {Role: "user", Content: user}}
}

// InputError is a problem with the caller's input, naming the field.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Message }
