// Package codegen is the code generator behind POST /generate: it asks the
// LLM through the code_generator circuit for Python or SQL, extracts the
// code from the reply, and reviews it. Python is parsed once by
// tree-sitter, and that tree serves the syntax check and the allow-list
// review. SQL is reviewed by DuckDB's own parser, in a
// worker process (the guard of package dataset), against the dataset's
// schema when one is named.
package codegen

import (
	"context"
	"fmt"
	"strings"

	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
)

// Completer is the guarded LLM call the generator needs; *circuit.Circuit
// provides it.
type Completer interface {
	Complete(ctx context.Context, req llm.ChatRequest) (llm.ChatResponse, error)
	Name() string
}

// SQLChecker validates SQL with DuckDB and opens the dataset a request
// names; *dataset.Store provides it.
type SQLChecker interface {
	ValidateSQL(ctx context.Context, sql string) error
	Session(ctx context.Context, id string) (*dataset.Session, error)
}

// Generator writes code with the LLM and reviews it.
type Generator struct {
	llm Completer
	sql SQLChecker
	// pythonSystem is the system prompt for Python, built once: it names
	// the allowed imports, which do not change.
	pythonSystem string
}

// NewGenerator returns a generator calling the LLM through llm (the
// code_generator circuit) and reviewing SQL with sql.
func NewGenerator(llm Completer, sql SQLChecker) *Generator {
	return &Generator{llm: llm, sql: sql, pythonSystem: pythonSystemPrompt()}
}

// Request asks for code. DatasetID, if set, gives the LLM the dataset's
// schema and makes SQL be checked against it.
type Request struct {
	Prompt    string
	Language  Language
	Model     string
	DatasetID string
}

// Result is generated code with its review. Unsafe code is still a result:
// Review.IsValid says whether it may be used.
type Result struct {
	Code     string
	Language Language
	Review   Review
	Model    string
	Circuit  string
	// Provider, Attempts and Failover say which target answered and how
	// many LLM requests it took (see llm.ChatResponse).
	Provider string
	Attempts int
	Failover bool
}

// Generate asks the LLM for code. An unknown dataset wraps
// dataset.ErrNotFound; LLM failures are the circuit's *circuit.LLMError.
func (g *Generator) Generate(ctx context.Context, req Request) (Result, error) {
	var sess *dataset.Session
	if req.DatasetID != "" {
		s, err := g.sql.Session(ctx, req.DatasetID)
		if err != nil {
			return Result{}, err
		}
		defer s.Close()
		sess = s
	}
	resp, err := g.llm.Complete(ctx, llm.ChatRequest{
		Model:    req.Model,
		Messages: g.prompt(req.Prompt, req.Language, sess),
	})
	if err != nil {
		return Result{}, err
	}
	code := ExtractCode(resp.Content, req.Language)
	var review Review
	if req.Language == SQL {
		check := g.sql.ValidateSQL
		if sess != nil {
			check = sess.Validate
		}
		review = ReviewSQL(ctx, code, check)
	} else {
		// One tree-sitter parse: the syntax check and the rules.
		review = ReviewCode(code, req.Language)
	}
	return Result{
		Code:     code,
		Language: req.Language,
		Review:   review,
		Model:    resp.Model,
		Circuit:  g.llm.Name(),
		Provider: resp.Provider,
		Attempts: resp.Attempts,
		Failover: resp.Failover,
	}, nil
}

// pythonSystemPrompt tells the model the rules its Python is held to.
func pythonSystemPrompt() string {
	return "You write short, safe Python using pandas. Assign the final value to a variable named result. " +
		"pd, np and df need no import; import only from: " + allowedImportList() + ". " +
		"Do not read or write files, draw plots, run processes, use the network, eval or exec; " +
		"filter with boolean indexing, not df.query or df.eval. " +
		"Reply with the code in a ```python fenced block."
}

func (g *Generator) prompt(prompt string, lang Language, sess *dataset.Session) []llm.Message {
	var system string
	switch lang {
	case SQL:
		system = "You write one read-only DuckDB SQL query (a single SELECT or WITH ... SELECT). " +
			"Never modify data, read files or change settings. A PIVOT must list its values (ON col IN (...)). " +
			"Reply with the query in a ```sql fenced block."
	default:
		system = g.pythonSystem
	}
	user := fmt.Sprintf("Task: %s", prompt)
	if sess != nil {
		user = describeData(sess.Tables(), lang) + "\n" + user
	}
	return []llm.Message{
		{Role: "system", Content: system},
		{Role: "user", Content: user},
	}
}

// describeData names where the data is and its columns: one table as data
// (or the DataFrame df), several tables each by name.
func describeData(tables []dataset.Table, lang Language) string {
	columns := func(t dataset.Table) string {
		cols := make([]string, 0, len(t.Columns))
		for _, c := range t.Columns {
			cols = append(cols, fmt.Sprintf("%q %s", c.Name, c.Type))
		}
		return strings.Join(cols, ", ")
	}
	if len(tables) == 1 {
		where := "a DuckDB table named data"
		if lang == Python {
			where = "a pandas DataFrame named df"
		}
		return fmt.Sprintf("The data is %s with columns: %s.", where, columns(tables[0]))
	}
	var b strings.Builder
	if lang == Python {
		fmt.Fprintf(&b, "The data is %d pandas DataFrames, one per table, each named after its table:", len(tables))
	} else {
		fmt.Fprintf(&b, "The data is %d DuckDB tables (double-quote a name that is an SQL keyword):", len(tables))
	}
	for _, t := range tables {
		fmt.Fprintf(&b, "\n- %s with columns: %s", t.Name, columns(t))
	}
	return b.String()
}
