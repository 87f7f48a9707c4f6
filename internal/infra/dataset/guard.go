package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// serializeSQL asks DuckDB's parser to serialise the text. The user's SQL
// is a bound parameter, never part of a statement we prepare, and the
// function parses without binding or running anything.
const serializeSQL = "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR"

// refused prefixes the message of every statement-level refusal.
const refused = "only a single read-only SELECT is allowed: "

// notAQuery explains a text that holds a statement other than a query.
// DuckDB's parser says only that it cannot serialise it. Naming the
// statement would take preparing it, and preparing is not free of effects
// (EXPORT DATABASE creates its directory while binding; extracting
// statements runs IMPORT DATABASE's file reads) nor complete (DROP or
// INSERT on a table the parser's database lacks fails to bind, so it has
// no type), so the message lists the usual suspects instead. A PIVOT
// without an IN list is one of them: DuckDB turns it into a CREATE TYPE
// of the values it finds, then the query.
const notAQuery = refused + "the SQL holds a statement that is not a query " +
	"(such as CREATE, DROP, ALTER, INSERT, UPDATE, DELETE, SET, RESET, PRAGMA, COPY, ATTACH, DETACH, " +
	"INSTALL, LOAD, CALL, EXPORT, IMPORT or EXPLAIN); write one SELECT, WITH ... SELECT or FROM ... query " +
	"(a PIVOT must list its values: PIVOT data ON col IN ('a', 'b') USING ...)"

// allowedTableFunctions is the allow-list of table functions SQL may call:
// generators only. Everything else (read_csv, glob, query, the duckdb_*
// and pragma_* metadata functions, json_execute_serialized_sql, ...) is
// refused by name before anything runs, whatever the sandbox would do.
var allowedTableFunctions = []string{"range", "generate_series", "unnest"}

// deniedFunctions are scalar functions that read the server's settings or
// environment, or run SQL from a string. Scalar functions whose names
// start with duckdb_ or pragma_ are refused too.
var deniedFunctions = map[string]string{
	"current_setting":             "it reads the server's settings",
	"getvariable":                 "it reads the server's settings",
	"getenv":                      "it reads the server's environment",
	"json_execute_serialized_sql": "it runs SQL held in a string",
}

// systemPrefixes start the names of the system catalog's views and table
// functions that DuckDB resolves without a schema: duckdb_databases,
// pragma_database_list, pg_settings, sqlite_master, ...
var systemPrefixes = []string{"duckdb_", "pragma_", "pg_", "sqlite_"}

// systemSchemas hold the system catalog's views.
var systemSchemas = []string{"information_schema", "pg_catalog"}

// showTables are the SHOW forms that list tables (SHOW TABLES, SHOW ALL
// TABLES, a bare DESCRIBE): in the sandbox they see only the dataset.
var showTables = []string{`"tables"`, "__show_tables_expanded"}

// guard accepts exactly one SELECT statement (DuckDB's notion: SELECT,
// WITH ... SELECT, FROM-first, VALUES, PIVOT, DESCRIBE, SUMMARIZE, SHOW
// TABLES) that reads only the given tables (and its own CTEs) and calls
// only allowed table functions, and refuses everything else before it is
// run. json_serialize_sql reports an error for any statement that is not
// a SELECT, so "DROP TABLE data; SELECT 1" is refused as a whole. Syntax
// errors come back as KindSQL so that an LLM can fix them; everything
// else refused is KindUnsafeSQL, with a message naming what was refused
// and why. With tables nil (a check with no database to bind against) any
// plain table name is allowed, but not a catalog-qualified one, a file
// name nor the system catalog's views.
//
// The guard is the first layer only: the SQL then runs on a database
// where file access and settings are locked down.
func (w *worker) guard(ctx context.Context, text string, tables []string) error {
	parser, err := w.parserDB()
	if err != nil {
		return err
	}
	var out string
	if err := parser.QueryRowContext(ctx, serializeSQL, text).Scan(&out); err != nil {
		return fmt.Errorf("parse sql: %w", err)
	}
	var parsed struct {
		Error        bool   `json:"error"`
		ErrorType    string `json:"error_type"`
		ErrorMessage string `json:"error_message"`
		Position     string `json:"position"`
		Statements   []any  `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return fmt.Errorf("decode parser output: %w", err)
	}
	switch {
	case parsed.Error && parsed.ErrorType == "not implemented" && strings.HasPrefix(parsed.ErrorMessage, "Only SELECT statements"):
		// DuckDB's own words ("Only SELECT statements can be serialized
		// to json!") would puzzle a user or an LLM.
		return &Error{Kind: KindUnsafeSQL, Message: notAQuery}
	case parsed.Error:
		// A syntax error, or a query DuckDB cannot handle ("SELECT locking
		// clause is not supported", "Mixing named and positional
		// parameters is not supported"): SQL to fix.
		return &Error{Kind: KindSQL, Message: parsed.ErrorMessage + lineOf(text, parsed.Position)}
	case len(parsed.Statements) == 0:
		return &Error{Kind: KindUnsafeSQL, Message: refused + "the SQL is empty (only comments or semicolons)"}
	case len(parsed.Statements) > 1:
		return &Error{Kind: KindUnsafeSQL, Message: fmt.Sprintf("%sthe SQL holds %d statements; send exactly one", refused, len(parsed.Statements))}
	}
	c := checker{tables: tables}
	collectCTEs(parsed.Statements[0], &c.ctes)
	if msg := c.node(parsed.Statements[0]); msg != "" {
		return &Error{Kind: KindUnsafeSQL, Message: msg}
	}
	return nil
}

// lineOf names the line of a parser error's byte position in a text of
// several lines, or returns "".
func lineOf(text, position string) string {
	pos, err := strconv.Atoi(position)
	if err != nil || pos < 0 || pos > len(text) || !strings.Contains(text, "\n") {
		return ""
	}
	return fmt.Sprintf(" (line %d)", strings.Count(text[:pos], "\n")+1)
}

// collectCTEs gathers every CTE name defined anywhere in the tree.
func collectCTEs(n any, out *[]string) {
	switch x := n.(type) {
	case map[string]any:
		if cm, ok := x["cte_map"].(map[string]any); ok {
			if entries, ok := cm["map"].([]any); ok {
				for _, e := range entries {
					if em, ok := e.(map[string]any); ok {
						if k, ok := em["key"].(string); ok {
							*out = append(*out, strings.ToLower(k))
						}
					}
				}
			}
		}
		for _, v := range x {
			collectCTEs(v, out)
		}
	case []any:
		for _, v := range x {
			collectCTEs(v, out)
		}
	}
}

// checker walks a parsed statement. CTE names are gathered from the whole
// tree, not scoped: a name is exempt wherever a CTE of that name exists.
// That is safe because the names a CTE could shadow and that DuckDB would
// resolve to something else (the system catalog's views, files) are
// refused before the exemption applies; DuckDB does resolve such a name to
// the system view where the CTE is out of scope, as in
// "WITH a AS (FROM pg_settings), pg_settings AS (SELECT 1) FROM a".
type checker struct {
	tables []string // nil: parse only, any plain name
	ctes   []string
}

// node returns why the tree n is refused, or "". It looks at four node
// kinds: table functions (allow-list), scalar functions (deny-list of
// settings readers), base tables, and SHOW without a query.
func (c *checker) node(n any) string {
	switch x := n.(type) {
	case map[string]any:
		switch {
		case x["type"] == "TABLE_FUNCTION":
			name := ""
			if f, ok := x["function"].(map[string]any); ok {
				name, _ = f["function_name"].(string)
			}
			if msg := tableFunction(name); msg != "" {
				return msg
			}
		case x["class"] == "FUNCTION" || x["class"] == "WINDOW":
			name, _ := x["function_name"].(string)
			if msg := scalarFunction(name); msg != "" {
				return msg
			}
		case x["type"] == "BASE_TABLE":
			if msg := c.table(x); msg != "" {
				return msg
			}
		case x["type"] == "SHOW_REF" && x["query"] == nil:
			// SHOW TABLES, SHOW DATABASES, ...: the parser keeps what is
			// shown as a name.
			name, _ := x["table_name"].(string)
			if !slices.Contains(showTables, name) {
				return fmt.Sprintf("SHOW %s is not allowed: it reads the system catalog", strings.Trim(name, `"`))
			}
		}
		for _, v := range x {
			if msg := c.node(v); msg != "" {
				return msg
			}
		}
	case []any:
		for _, v := range x {
			if msg := c.node(v); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// tableFunction returns why the table function name is refused, or "".
// The allow-list decides; the name's family only picks the reason given.
func tableFunction(name string) string {
	lower := strings.ToLower(name)
	var why string
	switch {
	case slices.Contains(allowedTableFunctions, lower):
		return ""
	case strings.HasPrefix(lower, "read_") || strings.HasPrefix(lower, "parquet_") || strings.Contains(lower, "_scan") ||
		lower == "glob" || lower == "sniff_csv":
		why = "it reads files; SQL may read only the dataset's table"
	case lower == "query" || lower == "query_table" || lower == "json_execute_serialized_sql":
		why = "it runs SQL held in a string"
	case isSystemName(lower) || lower == "which_secret":
		why = "it reads the system catalog or the server's settings"
	default:
		why = "the only table functions allowed are " + strings.Join(allowedTableFunctions, ", ")
	}
	return fmt.Sprintf("the table function %s() is not allowed: %s", name, why)
}

// scalarFunction returns why the scalar function name is refused, or "".
func scalarFunction(name string) string {
	lower := strings.ToLower(name)
	why, denied := deniedFunctions[lower]
	if !denied && (strings.HasPrefix(lower, "duckdb_") || strings.HasPrefix(lower, "pragma_")) {
		why, denied = "it reads the system catalog", true
	}
	if !denied {
		return ""
	}
	return fmt.Sprintf("the function %s() is not allowed: %s", name, why)
}

func isSystemName(lower string) bool {
	if slices.Contains(systemSchemas, lower) {
		return true
	}
	for _, p := range systemPrefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// isFileName reports whether DuckDB could read a table name as a file
// (a replacement scan): "x.csv", '/etc/passwd', 'https://...', '~/x',
// '*.parquet'. The parser keeps FROM 'x' and FROM "x" alike as a name.
func isFileName(name string) bool { return strings.ContainsAny(name, `./\:~*?`) }

// table returns why the base table x is refused, or "". The file and
// system checks come before the CTE exemption (see checker).
func (c *checker) table(x map[string]any) string {
	catalog, _ := x["catalog_name"].(string)
	schema, _ := x["schema_name"].(string)
	name, _ := x["table_name"].(string)
	lower := strings.ToLower(name)
	full := name
	if schema != "" {
		full = schema + "." + name
	}
	if catalog != "" {
		full = catalog + "." + full
	}
	only := "only the dataset's table can be read"
	if c.tables != nil {
		only = "only " + strings.Join(c.tables, ", ") + " can be read"
	}
	switch {
	case isFileName(name):
		// The name is not repeated: it is a path.
		return "a file name cannot be used as a table: reading files is not allowed; " + only
	case isSystemName(strings.ToLower(schema)) || isSystemName(strings.ToLower(catalog)) || isSystemName(lower) ||
		strings.EqualFold(catalog, "system") || strings.EqualFold(catalog, "temp"):
		return fmt.Sprintf("the table %s is not allowed: it is part of the system catalog", full)
	case catalog != "" || (schema != "" && !strings.EqualFold(schema, "main")):
		return fmt.Sprintf("the table %s is not allowed: %s", full, only)
	case schema == "" && slices.Contains(c.ctes, lower):
		return ""
	case c.tables == nil:
		return ""
	}
	for _, t := range c.tables {
		if strings.EqualFold(t, name) {
			return ""
		}
	}
	return fmt.Sprintf("the table %s is not allowed: %s", full, only)
}

// ValidateSQL checks, with the parser only, that text is a single allowed
// SELECT, for SQL that has no dataset to bind against. It does not check
// table or column names; Session.Validate does.
func (s *Store) ValidateSQL(ctx context.Context, text string) error {
	_, err := s.runJob(ctx, job{Op: opGuard, SQL: text}, s.cfg.StatementTimeout)
	return err
}
