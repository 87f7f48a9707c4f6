package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// serializeSQL asks DuckDB's parser to serialise the text. The user's SQL
// is a bound parameter, never part of a statement we prepare, and the
// function parses without binding or running anything.
const serializeSQL = "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR"

// allowedTableFunctions is the allow-list of table functions SQL may call:
// generators only. Everything else (read_csv, glob, query, the duckdb_*
// and pragma_* metadata functions, json_execute_serialized_sql, ...) is
// refused by name before anything runs, whatever the sandbox would do.
var allowedTableFunctions = []string{"range", "generate_series", "unnest"}

// deniedFunctions are scalar functions that read the server's settings or
// run SQL from a string.
var deniedFunctions = []string{"current_setting", "json_execute_serialized_sql", "getvariable", "getenv"}

// guard accepts exactly one SELECT statement (DuckDB's notion: SELECT,
// WITH ... SELECT, FROM-first, VALUES, DESCRIBE, SUMMARIZE) that reads
// only the given tables (and its own CTEs) and calls only allowed table
// functions, and refuses everything else before it is run.
// json_serialize_sql reports an error for any statement that is not a
// SELECT, so "DROP TABLE data; SELECT 1" is refused as a whole. Syntax
// errors come back as KindSQL so that an LLM can fix them; everything
// else refused is KindUnsafeSQL. With tables nil (a check with no
// database to bind against) any plain table name is allowed, but not a
// catalog-qualified one nor the system catalog's views.
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
		Statements   []any  `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return fmt.Errorf("decode parser output: %w", err)
	}
	const refused = "only a single read-only SELECT is allowed: "
	switch {
	case parsed.Error && parsed.ErrorType == "parser":
		return &Error{Kind: KindSQL, Message: parsed.ErrorMessage}
	case parsed.Error:
		// DuckDB says "Only SELECT statements can be serialized to json!",
		// which would puzzle a user or an LLM.
		return &Error{Kind: KindUnsafeSQL, Message: refused + "the text contains a statement that is not a SELECT"}
	case len(parsed.Statements) == 0:
		return &Error{Kind: KindUnsafeSQL, Message: refused + "the query is empty"}
	case len(parsed.Statements) > 1:
		return &Error{Kind: KindUnsafeSQL, Message: fmt.Sprintf("%sgot %d statements", refused, len(parsed.Statements))}
	}
	var ctes []string
	collectCTEs(parsed.Statements[0], &ctes)
	if msg := checkNode(parsed.Statements[0], tables, ctes); msg != "" {
		return &Error{Kind: KindUnsafeSQL, Message: msg}
	}
	return nil
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

// checkNode walks the parsed statement and returns why it is refused, or
// "". It looks at three node kinds: table functions (allow-list), scalar
// functions (deny-list of settings readers) and base tables.
func checkNode(n any, tables, ctes []string) string {
	switch x := n.(type) {
	case map[string]any:
		switch {
		case x["type"] == "TABLE_FUNCTION":
			name := ""
			if f, ok := x["function"].(map[string]any); ok {
				name, _ = f["function_name"].(string)
			}
			if !slices.Contains(allowedTableFunctions, strings.ToLower(name)) {
				return fmt.Sprintf("the table function %s() is not allowed (allowed: %s)", name, strings.Join(allowedTableFunctions, ", "))
			}
		case x["class"] == "FUNCTION":
			name, _ := x["function_name"].(string)
			lower := strings.ToLower(name)
			if slices.Contains(deniedFunctions, lower) || strings.HasPrefix(lower, "duckdb_") || strings.HasPrefix(lower, "pragma_") {
				return fmt.Sprintf("the function %s() is not allowed", name)
			}
		case x["type"] == "BASE_TABLE":
			if msg := checkTable(x, tables, ctes); msg != "" {
				return msg
			}
		}
		for _, v := range x {
			if msg := checkNode(v, tables, ctes); msg != "" {
				return msg
			}
		}
	case []any:
		for _, v := range x {
			if msg := checkNode(v, tables, ctes); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// systemTables are the catalog views DuckDB offers under plain names;
// names starting with systemPrefixes are too (duckdb_databases,
// pragma_database_list, pg_settings, ...).
var systemTables = []string{"information_schema", "pg_catalog", "sqlite_master", "sqlite_schema",
	"sqlite_temp_master", "sqlite_temp_schema"}

var systemPrefixes = []string{"duckdb_", "pragma_", "pg_"}

// checkTable refuses a base table that is not one of tables or a CTE. The
// CTE names are gathered from the whole tree, not scoped, so the system
// views are refused before the CTE exemption: DuckDB resolves a name to
// the system view where its CTE is out of scope, as in
// "WITH a AS (FROM pg_settings), pg_settings AS (SELECT 1) FROM a".
func checkTable(x map[string]any, tables, ctes []string) string {
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
	switch strings.ToLower(schema) {
	case "", "main":
	default:
		return fmt.Sprintf("the table %s is not allowed: only the dataset's tables can be read", full)
	}
	if catalog != "" {
		return fmt.Sprintf("the table %s is not allowed: only the dataset's tables can be read", full)
	}
	if slices.Contains(systemTables, lower) || slices.ContainsFunc(systemPrefixes, func(p string) bool { return strings.HasPrefix(lower, p) }) {
		return fmt.Sprintf("the table %s is not allowed: it is part of the system catalog", full)
	}
	if schema == "" && slices.Contains(ctes, lower) {
		return ""
	}
	if tables == nil {
		if strings.ContainsAny(name, "./\\:") {
			// A replacement scan: DuckDB reads a file named like this.
			return "a file name cannot be used as a table"
		}
		return ""
	}
	for _, t := range tables {
		if strings.EqualFold(t, name) {
			return ""
		}
	}
	return fmt.Sprintf("the table %s is not allowed: only %s can be read", full, strings.Join(tables, ", "))
}

// ValidateSQL checks, with the parser only, that text is a single allowed
// SELECT, for SQL that has no dataset to bind against. It does not check
// table or column names; Session.Validate does.
func (s *Store) ValidateSQL(ctx context.Context, text string) error {
	_, err := s.runJob(ctx, job{Op: opGuard, SQL: text}, s.cfg.StatementTimeout)
	return err
}
