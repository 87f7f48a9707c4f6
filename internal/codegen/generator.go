// Package codegen is the code generator behind POST /generate: it asks the
// LLM through the code_generator circuit for Python or SQL, extracts the
// code from the reply, and reviews it. Python is parsed once by
// tree-sitter, and that tree serves the syntax check and the allow-list
// review. SQL is reviewed by DuckDB's own parser, in a
// worker process (the guard of package dataset), against the dataset's
// schema when one is named; SQL for a live PostgreSQL source is checked
// by the source's EXPLAIN in a read-only transaction, never run. The
// prompt names the dialect, and the generator knows of the engine only
// through the target it writes for.
package codegen

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/progress"
)

// Completer is the guarded LLM call the generator needs; *circuit.Circuit
// provides it.
type Completer interface {
	Complete(ctx context.Context, req llm.ChatRequest) (llm.ChatResponse, error)
	Name() string
}

// Streamer is a guarded LLM call whose reply can be streamed;
// *circuit.Circuit provides it.
type Streamer interface {
	Stream(ctx context.Context, req llm.ChatRequest, onToken func(string)) (llm.ChatResponse, error)
}

// Steps of a generation, as Progress is told of them.
const (
	StepCode   = "code"
	StepReview = "review"
)

// SQLChecker validates SQL with DuckDB and opens the dataset a request
// names; *dataset.Store provides it.
type SQLChecker interface {
	ValidateSQL(ctx context.Context, sql string) error
	Session(ctx context.Context, id string) (*dataset.Session, error)
}

// Sources finds a live source by its configured name; *pgsource.Set
// provides it.
type Sources interface {
	Get(name string) (*pgsource.Source, error)
}

// Generator writes code with the LLM and reviews it.
type Generator struct {
	llm     Completer
	sql     SQLChecker
	sources Sources
	// pythonSystem is the system prompt for Python, built once: it names
	// the allowed imports, which do not change.
	pythonSystem string
}

// NewGenerator returns a generator calling the LLM through llm (the
// code_generator circuit), reviewing SQL with sql, and finding live
// sources in sources (nil: none).
func NewGenerator(llm Completer, sql SQLChecker, sources Sources) *Generator {
	return &Generator{llm: llm, sql: sql, sources: sources, pythonSystem: pythonSystemPrompt()}
}

// Request asks for code. DatasetID or Source (at most one), if set, gives
// the LLM the data's tables and makes SQL be checked against them.
type Request struct {
	Prompt    string
	Language  Language
	Model     string
	DatasetID string
	// Source names a configured live source.
	Source string
	// Progress, when set, is told of the code and review steps as they
	// start and end, and gets the LLM's reply as it writes it (the
	// code_generator's reply is streamed). Without it nothing is streamed.
	Progress progress.Sink
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
	// StreamErr is set when the reply's stream broke after part of it
	// had reached Progress: Code then holds exactly the text sent, raw and
	// unreviewed, and Review says so. It is the error that broke it.
	StreamErr error
}

// Generate asks the LLM for code. An unknown dataset wraps
// dataset.ErrNotFound, an unknown source pgsource.ErrUnknownSource; LLM
// failures are the circuit's *circuit.LLMError. When a source's EXPLAIN
// cannot run because the source cannot be reached (or refuses its role),
// that *pgsource.Error is returned: the SQL was not checked.
func (g *Generator) Generate(ctx context.Context, req Request) (Result, error) {
	tgt, err := g.target(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer tgt.close()
	sink := req.Progress
	started := time.Now()
	if sink != nil {
		sink.Step(progress.Step{Step: StepCode, Status: progress.StatusStarted, Circuit: g.llm.Name()})
	}
	resp, sent, err := g.ask(ctx, llm.ChatRequest{
		Model:    req.Model,
		Messages: g.prompt(req.Prompt, req.Language, tgt),
	}, sink)
	if err != nil && sent != "" {
		if sink != nil {
			sink.Step(progress.Step{Step: StepCode, Status: progress.StatusFallback, Circuit: g.llm.Name(), Provider: resp.Provider, Model: resp.Model,
				LLMRequests: resp.Attempts, Attempts: 1, Duration: time.Since(started), Detail: "the reply's stream broke after part of it was sent"})
		}
		return Result{
			Code: sent, Language: req.Language, Model: resp.Model, Circuit: g.llm.Name(),
			Provider: resp.Provider, Attempts: resp.Attempts, Failover: resp.Failover, StreamErr: err,
			Review: Review{ErrorMessage: "the LLM's reply broke off: the code is incomplete and was not reviewed"},
		}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if sink != nil {
		sink.Step(progress.Step{Step: StepCode, Status: progress.StatusOK, Circuit: g.llm.Name(), Provider: resp.Provider, Model: resp.Model,
			LLMRequests: resp.Attempts, Attempts: 1, Duration: time.Since(started)})
		sink.Step(progress.Step{Step: StepReview, Status: progress.StatusStarted})
	}
	started = time.Now()
	code := ExtractCode(resp.Content, req.Language)
	var review Review
	if req.Language == SQL {
		var fault error
		review = ReviewSQL(ctx, code, func(ctx context.Context, sql string) error {
			err := tgt.check(ctx, sql)
			if pgsource.IsFault(err) {
				fault = err
			}
			return err
		})
		if fault != nil {
			return Result{}, fault
		}
	} else {
		// One tree-sitter parse: the syntax check and the rules.
		review = ReviewCode(code, req.Language)
	}
	if sink != nil {
		sink.Step(progress.Step{Step: StepReview, Status: progress.StatusOK, Attempts: 1, Duration: time.Since(started), Detail: review.ErrorMessage})
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

// ask makes the code_generator's call. With a sink it streams the raw
// reply to it; sent is the text that reached the sink, which a broken
// stream leaves as all there is.
func (g *Generator) ask(ctx context.Context, req llm.ChatRequest, sink progress.Sink) (resp llm.ChatResponse, sent string, err error) {
	s, ok := g.llm.(Streamer)
	if sink == nil || !ok {
		resp, err = g.llm.Complete(ctx, req)
		if err == nil && sink != nil {
			sink.Token(StepCode, resp.Content)
		}
		return resp, "", err
	}
	var b strings.Builder
	resp, err = s.Stream(ctx, req, func(piece string) {
		b.WriteString(piece)
		sink.Token(StepCode, piece)
	})
	return resp, b.String(), err
}

// The SQL dialects a target speaks.
const (
	dialectDuckDB   = "duckdb"
	dialectPostgres = "postgres"
)

// target is what code is written against: the dialect and the tables the
// prompt names (none without data), and the check of SQL.
type target struct {
	dialect string
	tables  []dataset.Table
	check   SQLCheck
	close   func()
}

// target opens the data req names: a source, a dataset, or none (DuckDB's
// parser alone checks the SQL).
func (g *Generator) target(ctx context.Context, req Request) (target, error) {
	switch {
	case req.Source != "":
		if g.sources == nil {
			return target{}, fmt.Errorf("%w: %q", pgsource.ErrUnknownSource, req.Source)
		}
		src, err := g.sources.Get(req.Source)
		if err != nil {
			return target{}, err
		}
		return target{dialect: dialectPostgres, tables: sourceTables(src.Tables()), check: src.Explain, close: func() {}}, nil
	case req.DatasetID != "":
		sess, err := g.sql.Session(ctx, req.DatasetID)
		if err != nil {
			return target{}, err
		}
		return target{dialect: dialectDuckDB, tables: sess.Tables(), check: sess.Validate, close: func() { _ = sess.Close() }}, nil
	}
	return target{dialect: dialectDuckDB, check: g.sql.ValidateSQL, close: func() {}}, nil
}

// sourceTables names a source's tables as the analyst does: by the bare
// name when no other table has it, else schema.name (the SQL's
// search_path is the source's schemas).
func sourceTables(list []pgsource.Table) []dataset.Table {
	count := map[string]int{}
	for _, t := range list {
		count[t.Name]++
	}
	out := make([]dataset.Table, len(list))
	for i, t := range list {
		name := t.Name
		if count[t.Name] > 1 {
			name = t.QualifiedName()
		}
		cols := make([]dataset.Column, len(t.Columns))
		for j, c := range t.Columns {
			cols[j] = dataset.Column{Name: c.Name, Type: c.Type}
		}
		out[i] = dataset.Table{Name: name, Columns: cols}
	}
	return out
}

// pythonSystemPrompt tells the model the rules its Python is held to.
func pythonSystemPrompt() string {
	return "You write short, safe Python using pandas. Assign the final value to a variable named result. " +
		"pd, np and df need no import; import only from: " + allowedImportList() + ". " +
		"Do not read or write files, draw plots, run processes, use the network, eval or exec; " +
		"filter with boolean indexing, not df.query or df.eval. " +
		"Reply with the code in a ```python fenced block."
}

func (g *Generator) prompt(prompt string, lang Language, tgt target) []llm.Message {
	var system string
	switch {
	case lang == SQL && tgt.dialect == dialectPostgres:
		system = "You write one read-only PostgreSQL SQL query (a single SELECT or WITH ... SELECT) for a live PostgreSQL server. " +
			"Never modify data, read files or change settings. Use PostgreSQL's syntax and functions, and no system catalogs, " +
			"extensions or server functions. Reply with the query in a ```sql fenced block."
	case lang == SQL:
		system = "You write one read-only DuckDB SQL query (a single SELECT or WITH ... SELECT). " +
			"Never modify data, read files or change settings. A PIVOT must list its values (ON col IN (...)). " +
			"Reply with the query in a ```sql fenced block."
	default:
		system = g.pythonSystem
	}
	user := fmt.Sprintf("Task: %s", prompt)
	if tgt.tables != nil {
		user = describeData(tgt.tables, lang, tgt.dialect) + "\n" + user
	}
	return []llm.Message{
		{Role: "system", Content: system},
		{Role: "user", Content: user},
	}
}

// describeData names where the data is and its columns: one table of a
// dataset as data (or the DataFrame df), several tables, or a source's,
// each by name.
func describeData(tables []dataset.Table, lang Language, dialect string) string {
	columns := func(t dataset.Table) string {
		cols := make([]string, 0, len(t.Columns))
		for _, c := range t.Columns {
			cols = append(cols, fmt.Sprintf("%q %s", c.Name, c.Type))
		}
		return strings.Join(cols, ", ")
	}
	if len(tables) == 1 && (dialect == dialectDuckDB || lang == Python) {
		where := "a DuckDB table named data"
		if lang == Python {
			where = "a pandas DataFrame named df"
		}
		return fmt.Sprintf("The data is %s with columns: %s.", where, columns(tables[0]))
	}
	var b strings.Builder
	engine, noun := "DuckDB", "tables"
	if dialect == dialectPostgres {
		engine = "PostgreSQL"
	}
	if len(tables) == 1 {
		noun = "table"
	}
	if lang == Python {
		fmt.Fprintf(&b, "The data is %d pandas DataFrames, one per table, each named after its table:", len(tables))
	} else {
		fmt.Fprintf(&b, "The data is %d %s %s (double-quote a name that is an SQL keyword):", len(tables), engine, noun)
	}
	for _, t := range tables {
		fmt.Fprintf(&b, "\n- %s with columns: %s", t.Name, columns(t))
	}
	return b.String()
}
