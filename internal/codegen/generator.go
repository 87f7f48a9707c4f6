// Package codegen is the code generator behind POST /generate: it asks the
// LLM through the code_generator circuit for Python or SQL, extracts the
// code from the reply and runs a static safety review over it.
package codegen

import (
	"context"
	"fmt"

	"github.com/nexus/nexus/internal/infra"
)

// Completer is the guarded LLM call the generator needs; *infra.Circuit
// provides it.
type Completer interface {
	Complete(ctx context.Context, req infra.ChatRequest) (infra.ChatResponse, error)
	Name() string
}

// Generator writes code with the LLM and reviews it.
type Generator struct {
	llm Completer
}

// NewGenerator returns a generator calling the LLM through llm (the
// code_generator circuit).
func NewGenerator(llm Completer) *Generator {
	return &Generator{llm: llm}
}

// Request asks for code.
type Request struct {
	Prompt   string
	Language Language
	Model    string
}

// Result is generated code with its review. Unsafe code is still a result:
// Review.IsValid says whether it may be used.
type Result struct {
	Code     string
	Language Language
	Review   Review
	Model    string
	Circuit  string
}

// Generate asks the LLM for code. LLM failures are the circuit's
// *infra.LLMError, unchanged.
func (g *Generator) Generate(ctx context.Context, req Request) (Result, error) {
	resp, err := g.llm.Complete(ctx, infra.ChatRequest{
		Model:    req.Model,
		Messages: generatorPrompt(req.Prompt, req.Language),
	})
	if err != nil {
		return Result{}, err
	}
	code := ExtractCode(resp.Content, req.Language)
	return Result{
		Code:     code,
		Language: req.Language,
		Review:   ReviewCode(code, req.Language),
		Model:    resp.Model,
		Circuit:  g.llm.Name(),
	}, nil
}

func generatorPrompt(prompt string, lang Language) []infra.Message {
	var system string
	switch lang {
	case SQL:
		system = "You write one read-only DuckDB SQL query (a single SELECT or WITH ... SELECT). " +
			"Never modify data, read files or change settings. Reply with the query in a ```sql fenced block."
	default:
		system = "You write short, safe Python using pandas. Assign the final value to a variable named result. " +
			"Do not read or write files, run processes, use the network, eval or exec. " +
			"Reply with the code in a ```python fenced block."
	}
	return []infra.Message{
		{Role: "system", Content: system},
		{Role: "user", Content: fmt.Sprintf("Task: %s", prompt)},
	}
}
