package agent

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nexus/nexus/internal/infra/dataset"
	"github.com/nexus/nexus/internal/infra/llm"
)

// Limits on what of the data goes into a prompt.
const (
	sampleRows = 5
	// tableSampleRows are sampled of each table of a dataset of several.
	tableSampleRows = 3
	promptRows      = 50
	promptCellChars = 80
	// maxJoinKeys caps the join keys listed.
	maxJoinKeys = 30
)

func system(text string) llm.Message { return llm.Message{Role: "system", Content: text} }
func user(text string) llm.Message   { return llm.Message{Role: "user", Content: text} }

func directPrompt(query string) []llm.Message {
	return []llm.Message{
		system("You are a careful data analyst. Answer the user's question concisely and say when you would need data to be sure."),
		user(query),
	}
}

// describeData renders the schema, profile and a few sample rows: what the
// planner needs to write SQL, and what the fallback answer relies on.
func describeData(schema []dataset.Column, p dataset.Profile, sample dataset.Result) string {
	var b strings.Builder
	describeTable(&b, "data", schema, p, sample, sampleRows, DialectDuckDB)
	return b.String()
}

// dialectName is how the prompts name a dialect.
func dialectName(dialect string) string {
	if dialect == DialectPostgres {
		return "PostgreSQL"
	}
	return "DuckDB"
}

// describeTables renders every table of a dataset of several, or of a
// source, with its schema, profile and sample, then the likely join keys.
func describeTables(tables []dataset.Table, samples []dataset.Result, dialect string) string {
	var b strings.Builder
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Name
	}
	noun := "tables"
	if len(tables) == 1 {
		noun = "table"
	}
	fmt.Fprintf(&b, "The data has %d %s: %s.\n\n", len(tables), noun, strings.Join(names, ", "))
	for i, t := range tables {
		describeTable(&b, t.Name, t.Columns, t.Profile, samples[i], tableSampleRows, dialect)
		b.WriteString("\n")
	}
	keys := joinKeys(tables)
	if len(keys) == 0 {
		b.WriteString("Likely join keys: none (no column name appears in two tables with a compatible type).\n")
		return b.String()
	}
	b.WriteString("Likely join keys (the same column name with a compatible type in two tables):\n")
	for _, k := range keys {
		b.WriteString("- " + k + "\n")
	}
	return b.String()
}

// joinKeys lists, for every pair of tables, the columns of the same name
// (ignoring case, as DuckDB does; PostgreSQL folds unquoted names) and a
// compatible type, as join conditions: "customers.customer_id =
// orders.customer_id (BIGINT)". It pairs only columns that share a name,
// through an index by name, so 64 tables of 1,024 columns cost a pass over
// the columns, not their square.
func joinKeys(tables []dataset.Table) []string {
	type at struct{ table, col int }
	byName := map[string][]at{}
	for i, t := range tables {
		for j, c := range t.Columns {
			k := strings.ToLower(c.Name)
			byName[k] = append(byName[k], at{i, j})
		}
	}
	var out []string
	for i, a := range tables {
		for _, ca := range a.Columns {
			for _, other := range byName[strings.ToLower(ca.Name)] {
				if other.table <= i {
					continue
				}
				b := tables[other.table]
				cb := b.Columns[other.col]
				if typeFamily(ca.Type) != typeFamily(cb.Type) {
					continue
				}
				types := ca.Type
				if cb.Type != ca.Type {
					types += ", " + cb.Type
				}
				out = append(out, fmt.Sprintf("%s.%s = %s.%s (%s)", ident(a.Name), ident(ca.Name), ident(b.Name), ident(cb.Name), types))
				if len(out) == maxJoinKeys {
					return out
				}
			}
		}
	}
	return out
}

// typeFamily groups types that compare without a cast worth mentioning:
// integers with integers, text with text, and so on. It knows DuckDB's
// names (BIGINT, VARCHAR, DECIMAL(10,2)) and PostgreSQL's (bigint,
// character varying(20), numeric(10,2), double precision).
func typeFamily(t string) string {
	t = strings.ToUpper(t)
	switch {
	case strings.HasSuffix(t, "INT") || t == "INTEGER" || t == "UINTEGER" || t == "SMALLINT" || t == "BIGINT":
		return "integer"
	case t == "VARCHAR" || t == "TEXT" || strings.HasPrefix(t, "ENUM") || strings.HasPrefix(t, "CHARACTER") ||
		strings.HasPrefix(t, "VARCHAR(") || strings.HasPrefix(t, "CHAR("):
		return "text"
	case t == "FLOAT" || t == "DOUBLE" || t == "REAL" || t == "DOUBLE PRECISION" ||
		strings.HasPrefix(t, "DECIMAL") || strings.HasPrefix(t, "NUMERIC"):
		return "number"
	case strings.HasPrefix(t, "TIMESTAMP"):
		return "timestamp"
	}
	return t
}

// ident writes a name as SQL reads it: bare when it is a plain lower-case
// identifier, else double-quoted. A source's schema-qualified table name
// (schema.name: table names never hold a dot) is written part by part.
func ident(name string) string {
	if schema, table, ok := strings.Cut(name, "."); ok {
		return identPart(schema) + "." + identPart(table)
	}
	return identPart(name)
}

func identPart(name string) string {
	plain := name != ""
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// describeTable renders one table: its size, its columns with their
// profile, and up to rows sample rows. A source's sizes and statistics
// are the catalog's estimates, and say so.
func describeTable(b *strings.Builder, name string, schema []dataset.Column, p dataset.Profile, sample dataset.Result, rows int, dialect string) {
	switch {
	case dialect != DialectPostgres:
		fmt.Fprintf(b, "Table `%s`: %d rows, %d columns.\nColumns:\n", name, p.RowCount, len(schema))
	case p.RowCount < 0:
		fmt.Fprintf(b, "Table `%s`: row count unknown (never analyzed), %d columns.\nColumns:\n", name, len(schema))
	default:
		fmt.Fprintf(b, "Table `%s`: about %d rows (the catalog's estimate), %d columns.\nColumns:\n", name, p.RowCount, len(schema))
	}
	byName := map[string]dataset.ColumnProfile{}
	for _, c := range p.Columns {
		byName[c.Name] = c
	}
	for _, c := range schema {
		fmt.Fprintf(b, "- %q %s", c.Name, c.Type)
		if cp, ok := byName[c.Name]; ok {
			fmt.Fprintf(b, " (nulls %d, distinct %d", cp.Nulls, cp.Distinct)
			if cp.Min != nil || cp.Max != nil {
				fmt.Fprintf(b, ", min %v, max %v", cp.Min, cp.Max)
			}
			if cp.Mean != nil {
				fmt.Fprintf(b, ", mean %.4g", *cp.Mean)
			}
			if len(cp.TopValues) > 0 {
				tops := make([]string, 0, len(cp.TopValues))
				for _, tv := range cp.TopValues {
					tops = append(tops, fmt.Sprintf("%s×%d", cell(tv.Value), tv.Count))
				}
				fmt.Fprintf(b, ", top: %s", strings.Join(tops, ", "))
			}
			b.WriteString(")")
		}
		b.WriteString("\n")
	}
	b.WriteString("Sample rows:\n")
	b.WriteString(table(sample.Columns, sample.Rows, rows))
}

// table renders rows as a pipe-separated table, at most limit rows.
func table(cols []dataset.Column, rows [][]any, limit int) string {
	var b strings.Builder
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	b.WriteString(strings.Join(names, " | "))
	b.WriteString("\n")
	for i, row := range rows {
		if i >= limit {
			fmt.Fprintf(&b, "… %d more rows\n", len(rows)-limit)
			break
		}
		cells := make([]string, len(row))
		for j, v := range row {
			cells[j] = cell(v)
		}
		b.WriteString(strings.Join(cells, " | "))
		b.WriteString("\n")
	}
	return b.String()
}

func cell(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		s = "NULL"
	case string:
		s = v
	default:
		data, err := json.Marshal(v)
		if err != nil {
			s = fmt.Sprint(v)
		} else {
			s = string(data)
		}
	}
	if r := []rune(s); len(r) > promptCellChars {
		s = string(r[:promptCellChars]) + "…"
	}
	return strings.ReplaceAll(s, "\n", " ")
}

func planPrompt(query, facts string, multi bool, dialect string) []llm.Message {
	where := "The data is in a table named data; use only the columns listed. "
	if multi {
		where = "The data is in the tables listed; use only those tables and their columns, and join them on the keys listed " +
			"when the question spans tables. Double-quote a table or column name that is an SQL keyword. "
	}
	if dialect == DialectPostgres {
		where += "The database is a live PostgreSQL server: use PostgreSQL's syntax and functions, " +
			"and no system catalogs, extensions or server functions. "
	}
	return []llm.Message{
		system("You write exactly one read-only " + dialectName(dialect) + " SQL query (a single SELECT, or WITH … SELECT) that answers the user's question. " +
			where + "Never modify data, read files or change settings. " +
			"Reply with the query alone in a ```sql fenced block."),
		user(fmt.Sprintf("%s\nQuestion: %s", facts, query)),
	}
}

func resultText(sql string, res dataset.Result) string {
	note := ""
	if res.Truncated || int64(len(res.Rows)) < res.RowCount {
		note = fmt.Sprintf(" (showing %d)", min(len(res.Rows), promptRows))
	}
	return fmt.Sprintf("SQL:\n%s\nResult: %d rows%s\n%s", sql, res.RowCount, note, table(res.Columns, res.Rows, promptRows))
}

func answerPrompt(query, sql string, res dataset.Result) []llm.Message {
	return []llm.Message{
		system("You are a careful data analyst. Answer the user's question in plain language from the query result below, " +
			"citing the numbers it shows. Do not invent numbers that are not in the result."),
		user(fmt.Sprintf("%s\nQuestion: %s", resultText(sql, res), query)),
	}
}

func profilePrompt(query, facts string) []llm.Message {
	return []llm.Message{
		system("You are a careful data analyst. No query could be run, so answer from the table profiles and samples below. " +
			"Cite only numbers that appear there, and say what would need a query to be certain."),
		user(fmt.Sprintf("%s\nQuestion: %s", facts, query)),
	}
}

func evidence(sql string, res *dataset.Result, facts string) string {
	switch {
	case res != nil:
		return resultText(sql, *res)
	case facts != "":
		return "No query ran; the answer was based on this profile:\n" + facts
	default:
		return "No data was provided."
	}
}

func criticPrompt(query, sql string, res *dataset.Result, facts, answer string) []llm.Message {
	return []llm.Message{
		system("You are a strict reviewer. Check the answer against the evidence: every number it cites must be supported, " +
			"and it must answer the question. Reply with VALID, or with INVALID followed by the specific problems."),
		user(fmt.Sprintf("%s\nQuestion: %s\nAnswer to review:\n%s", evidence(sql, res, facts), query, answer)),
	}
}

func revisePrompt(query, sql string, res *dataset.Result, facts, answer, critique string) []llm.Message {
	return []llm.Message{
		system("You are a careful data analyst. A reviewer found problems in your previous answer. Write a corrected answer " +
			"from the evidence, citing its numbers."),
		user(fmt.Sprintf("%s\nQuestion: %s\nPrevious answer:\n%s\nReviewer's critique:\n%s", evidence(sql, res, facts), query, answer, critique)),
	}
}

func chartPrompt(query string, res dataset.Result) []llm.Message {
	return []llm.Message{
		system("You propose one Vega-Lite v5 chart for a query result. Reply with a JSON object in a ```json block, with " +
			"\"mark\" and \"encoding\" using only the result's column names as fields; omit \"data\", which is added for you."),
		user(fmt.Sprintf("Question: %s\nResult columns and first rows:\n%s", query, table(res.Columns, res.Rows, 10))),
	}
}
