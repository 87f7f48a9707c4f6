package pgsource

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// readOnlyStarts are the first keywords a query may have: the forms of a
// SELECT. Everything else (DML, DDL, COPY, SET, SHOW, CALL, DO, EXECUTE,
// DECLARE, EXPLAIN ANALYZE, ...) is refused before the database sees it.
var readOnlyStarts = []string{"select", "with", "values", "table"}

// checkText is the guard's first, lexical, layer: one statement whose first
// keyword starts a read-only query, and no INTO (SELECT ... INTO creates a
// table; INTO is a reserved word, so outside quotes it can mean nothing
// else). It is a courtesy that names the problem: the layers that hold on
// their own are the extended protocol (one statement), the read-only
// transaction, EXPLAIN's plan and the role's privileges.
func checkText(sql string) *guardError {
	toks, _ := lex(sql) // an unclosed quote is the server's syntax error
	// Leading parentheses may open a query: (SELECT 1) UNION (SELECT 2).
	first := 0
	for first < len(toks) && toks[first].kind == tokPunct && toks[first].text == "(" {
		first++
	}
	if first >= len(toks) || (toks[first].kind == tokPunct && toks[first].text == ";") {
		return refuse("the SQL is empty")
	}
	if t := toks[first]; t.kind != tokWord || !slices.Contains(readOnlyStarts, t.text) {
		return refuse("only a read-only query (SELECT, WITH, VALUES or TABLE) is allowed, got %s", describeToken(t))
	}
	for i, t := range toks {
		if t.kind == tokPunct && t.text == ";" {
			for _, rest := range toks[i+1:] {
				if rest.kind != tokPunct || rest.text != ";" {
					return refuse("only one statement is allowed")
				}
			}
			break
		}
		if t.kind == tokWord && t.text == "into" {
			return refuse("SELECT ... INTO creates a table; only a read-only query is allowed")
		}
	}
	return nil
}

func describeToken(t token) string {
	switch t.kind {
	case tokWord:
		return strings.ToUpper(t.text)
	case tokQIdent:
		return fmt.Sprintf("%q", t.text)
	case tokString:
		return "a string constant"
	case tokNumber:
		return t.text
	}
	return fmt.Sprintf("%q", t.text)
}

// oidAliasTypes look up the name of a relation, function, operator,
// type, schema, role or collation given as a string ('secret.cards'::
// regclass): a name hidden from checkNames. Text search configurations
// (regconfig, regdictionary) name nothing that holds data.
var oidAliasTypes = map[string]bool{
	"regclass": true, "regproc": true, "regprocedure": true, "regoper": true, "regoperator": true,
	"regtype": true, "regnamespace": true, "regrole": true, "regcollation": true,
}

// maxIdentifierLen is the length past which PostgreSQL truncates a name
// (NAMEDATALEN - 1 bytes).
const maxIdentifierLen = 63

// truncateIdentifier cuts a name as the server does, on a character
// boundary.
func truncateIdentifier(name string) string {
	if len(name) <= maxIdentifierLen {
		return name
	}
	n := maxIdentifierLen
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n]
}

// textNames is what checkNames leaves to the catalog, which alone knows
// it: the qualifiers that may be a schema or a table's name or alias, and
// the functions called that may belong to an allowed schema.
type textNames struct {
	// qualifiers are the X of X.Y when X is neither an allowed schema nor
	// pg_catalog: a schema outside the allowed ones when the catalog has
	// a schema of that name, a table's name or alias otherwise.
	qualifiers []qualifiedName
	// calls are the names called unqualified or qualified by an allowed
	// schema.
	calls []string
}

// qualifiedName is X.Y in the caller's SQL; Y is "*" for X.*.
type qualifiedName struct {
	qualifier, name string
	// isType: the name follows ::, so X can only be a schema.
	isType bool
}

func (q qualifiedName) String() string { return q.qualifier + "." + q.name }

func isPunct(t token, text string) bool { return t.kind == tokPunct && t.text == text }

// checkNames is the guard's second lexical layer, over the caller's own
// text before anything is sent: EXPLAIN plans the query, and planning
// evaluates a stable function whose arguments are constants (LIMIT
// table_to_xml('secret.cards', ...)::text::int runs while planning, and
// its error shows the table), so what the plan check would refuse must not
// reach the planner. It refuses
//
//   - a call of a denied function, whatever its case or quoting;
//   - a call qualified by a schema that is neither allowed nor pg_catalog,
//     and an operator qualified so (OPERATOR(s.+));
//   - pg_catalog.<denied name>, called or not;
//   - a Unicode-escape identifier or string (U&"...", U&'...'), whose
//     text could spell any name, and the OID alias types (regclass,
//     regproc, ...), which look up a name given as a string.
//
// The qualifiers it cannot tell from a table alias, and the calls that may
// name a function of an allowed schema, are returned for the catalog to
// settle (Source.checkTextNames) before EXPLAIN.
func checkNames(sql string, allowedSchemas []string) (textNames, *guardError) {
	toks, _ := lex(sql)
	for _, t := range toks {
		if t.uescape {
			return textNames{}, refuse("a Unicode-escape identifier or string (U&) could hide a name; write names and strings plainly")
		}
	}
	var names textNames
	for _, fc := range funcCalls(toks) {
		if isDeniedFunction(fc.name) {
			return textNames{}, refuse("calls %s, which is not allowed", fc)
		}
		if fc.schema != "" && fc.schema != "pg_catalog" && !slices.Contains(allowedSchemas, fc.schema) {
			return textNames{}, refuse("calls %s, outside the allowed schemas (%s)", fc, strings.Join(allowedSchemas, ", "))
		}
		if name := truncateIdentifier(fc.name); fc.schema != "pg_catalog" && !slices.Contains(names.calls, name) {
			names.calls = append(names.calls, name)
		}
	}
	for _, t := range toks {
		if t.isName() && oidAliasTypes[strings.ToLower(t.text)] {
			return textNames{}, refuse("uses the type %s, which looks up a name given as a string; name tables and functions directly", strings.ToLower(t.text))
		}
	}
	for i := 0; i+2 < len(toks); i++ {
		t, next := toks[i], toks[i+2]
		if !t.isName() || !isPunct(toks[i+1], ".") {
			continue
		}
		qualifier := truncateIdentifier(t.text)
		switch {
		case next.isName() && i+3 < len(toks) && isPunct(toks[i+3], "("):
			// A call, schema-qualified: checked above.
		case qualifier == "pg_catalog":
			if next.isName() && isDeniedFunction(next.text) {
				return textNames{}, refuse("names pg_catalog.%s, which is not allowed", next.text)
			}
		case slices.Contains(allowedSchemas, qualifier):
		case next.isName() || isPunct(next, "*"):
			q := qualifiedName{qualifier: qualifier, name: next.text, isType: i > 0 && isPunct(toks[i-1], "::")}
			if !slices.Contains(names.qualifiers, q) {
				names.qualifiers = append(names.qualifiers, q)
			}
		default:
			// X.+ inside OPERATOR(X.+): an operator of schema X.
			return textNames{}, refuse("uses an operator of schema %s, outside the allowed schemas (%s)", t.text, strings.Join(allowedSchemas, ", "))
		}
	}
	return names, nil
}

// guardError is a refusal; Query wraps it as an *Error of KindUnsafeSQL
// whose message starts "SQL refused: ".
type guardError struct{ msg string }

func (e *guardError) Error() string { return "SQL refused: " + e.msg }

func refuse(format string, args ...any) *guardError {
	return &guardError{msg: fmt.Sprintf(format, args...)}
}

// deniedFunctions can read or write server files, reach other servers, run
// SQL of their own that EXPLAIN does not show, change settings or roles,
// signal other sessions or hold locks past the transaction. A plan that
// calls one anywhere is refused, whatever schema qualifies it.
var deniedFunctions = map[string]bool{
	"pg_stat_file": true, "pg_current_logfile": true,
	"set_config":           true,
	"pg_terminate_backend": true, "pg_cancel_backend": true, "pg_reload_conf": true,
	"pg_rotate_logfile": true, "pg_promote": true, "pg_switch_wal": true,
	"pg_create_restore_point": true, "pg_start_backup": true, "pg_stop_backup": true,
	"pg_backup_start": true, "pg_backup_stop": true, "pg_notify": true,
	"pg_log_backend_memory_contexts": true, "pg_import_system_collations": true,
	"pg_prewarm": true, "pg_stat_statements_reset": true,
	"loread": true, "lowrite": true,
	"nextval": true, "setval": true,
	// These run a query given as text, which EXPLAIN does not plan.
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"cursor_to_xml": true, "cursor_to_xmlschema": true,
	"table_to_xml": true, "table_to_xmlschema": true, "table_to_xml_and_xmlschema": true,
	"schema_to_xml": true, "schema_to_xmlschema": true, "schema_to_xml_and_xmlschema": true,
	"database_to_xml": true, "database_to_xmlschema": true, "database_to_xml_and_xmlschema": true,
	"ts_stat": true, "ts_rewrite": true,
}

// deniedPrefixes extend deniedFunctions to families: server files
// (pg_read_file, pg_read_binary_file, pg_ls_dir, pg_ls_waldir, adminpack's
// pg_file_write), large objects (lo_import, lo_export, lo_get, ...),
// dblink, advisory locks, replication slots and origins, statistics
// resets, readers of the catalog and of other sessions (pg_stat_get_*,
// which shows other backends' queries, pg_show_all_settings, pg_get_*,
// which prints any view's or function's definition), the XML exports that
// read whole tables, schemas or the database, or run SQL given as text
// (query_to_xml, table_to_xml, database_to_xmlschema, ...), and to_reg*,
// which looks up a name given as a string.
var deniedPrefixes = []string{
	"pg_read_", "pg_ls_", "pg_file", "pg_logdir_", "lo_", "dblink",
	"pg_advisory", "pg_try_advisory", "pg_replication_", "pg_create_", "pg_drop_",
	"pg_copy_", "pg_logical_", "pg_stat_reset", "pg_stat_get_", "pg_show_", "pg_get_",
	"query_to_", "cursor_to_", "table_to_", "schema_to_", "database_to_", "to_reg",
}

// deniedSuffixes catch the rest of the XML export family (*_to_xml,
// *_to_xmlschema, *_to_xml_and_xmlschema).
var deniedSuffixes = []string{"_to_xml", "_to_xmlschema", "_to_xml_and_xmlschema"}

// isDeniedFunction reports a denied name, compared case-insensitively: a
// quoted "TABLE_TO_XML" is refused as well as table_to_xml.
func isDeniedFunction(name string) bool {
	name = strings.ToLower(name)
	if deniedFunctions[name] {
		return true
	}
	for _, p := range deniedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for _, sfx := range deniedSuffixes {
		if strings.HasSuffix(name, sfx) {
			return true
		}
	}
	return false
}

// allowedSetFunctions are the built-in (pg_catalog) functions that a plan
// may scan in FROM (a "Function Scan"): set-returning functions over
// values. Functions of the allowed schemas may be scanned too. Any other
// function in FROM is refused, built-in or not: pg_ls_dir('.') AS x,
// pg_stat_activity's functions, an extension's function in another schema.
var allowedSetFunctions = map[string]bool{
	"generate_series": true, "generate_subscripts": true, "unnest": true,
	"json_array_elements": true, "json_array_elements_text": true,
	"jsonb_array_elements": true, "jsonb_array_elements_text": true,
	"json_each": true, "json_each_text": true, "jsonb_each": true, "jsonb_each_text": true,
	"json_object_keys": true, "jsonb_object_keys": true,
	"json_to_record": true, "json_to_recordset": true, "jsonb_to_record": true, "jsonb_to_recordset": true,
	"json_populate_record": true, "json_populate_recordset": true,
	"jsonb_populate_record": true, "jsonb_populate_recordset": true,
	"jsonb_path_query": true, "regexp_matches": true, "regexp_split_to_table": true,
	"string_to_table": true,
}

// refusedNodes are plan nodes that write or lock: a data-modifying WITH, or
// SELECT ... FOR UPDATE/SHARE.
var refusedNodes = map[string]string{
	"ModifyTable": "it modifies data",
	"LockRows":    "it locks rows (FOR UPDATE/SHARE)",
}

// relation is a table, view or other relation that a plan reads.
type relation struct{ schema, name string }

func (r relation) String() string { return r.schema + "." + r.name }

// planReport is what checkPlan learned of a plan, for the checks that need
// the catalog: the relations it reads (the allow-list, with partitions and
// inheritance children), the text of each node that scans them, and the
// functions it calls (volatility, SECURITY DEFINER, set-returning).
type planReport struct {
	relations []relation
	// scans holds, per relation, the expression strings of every node
	// that reads it (its Output, Filter, Index Cond, ...).
	scans map[relation][][]string
	// calls are the function calls of every expression, each once.
	calls []funcCall
	// setCalls are the calls in the select list of a ProjectSet node,
	// where set-returning functions run.
	setCalls []funcCall
}

// nameKeys are the fields of a plan node that name things rather than
// hold expressions.
var nameKeys = map[string]bool{
	"Node Type": true, "Relation Name": true, "Schema": true, "Alias": true, "Index Name": true,
	"Function Name": true, "CTE Name": true, "Subplan Name": true, "Parent Relationship": true,
	"Operation": true, "Strategy": true, "Join Type": true, "Scan Direction": true, "Partial Mode": true,
}

// checkPlan walks the JSON that EXPLAIN (VERBOSE, FORMAT JSON) printed and
// refuses a plan that writes or locks, scans a function in FROM that is
// not allowed, calls a denied function or a function of a schema that is
// neither allowed nor pg_catalog in any expression, or has a Foreign Scan
// or Custom Scan whose relations it cannot name. It returns what the
// checks that need the catalog use: the relations the plan reads and the
// functions it calls.
func checkPlan(planJSON []byte, allowedSchemas []string) (planReport, *guardError) {
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(planJSON, &doc); err != nil || len(doc) == 0 || doc[0].Plan == nil {
		return planReport{}, refuse("the plan could not be read")
	}
	rep := planReport{scans: map[relation][][]string{}}
	seenCall := map[funcCall]bool{}
	seenSetCall := map[funcCall]bool{}
	addRelation := func(r relation, exprs []string) {
		if _, ok := rep.scans[r]; !ok {
			rep.relations = append(rep.relations, r)
		}
		rep.scans[r] = append(rep.scans[r], exprs)
	}
	var walk func(node map[string]any) *guardError
	walk = func(node map[string]any) *guardError {
		nodeType, _ := node["Node Type"].(string)
		if why, bad := refusedNodes[nodeType]; bad {
			return refuse("the plan has a %s node: %s", nodeType, why)
		}
		exprs := nodeStrings(node)
		if rel, ok := node["Relation Name"].(string); ok {
			schema, _ := node["Schema"].(string)
			if schema == "" {
				return refuse("the plan reads %s without a schema", rel)
			}
			addRelation(relation{schema: schema, name: rel}, exprs)
		} else if nodeType == "Foreign Scan" || nodeType == "Custom Scan" {
			// A foreign join or aggregate pushed down to the remote
			// server (postgres_fdw) names its relations in "Relations"
			// only; a custom scan may name none.
			rels := foreignRelations(node)
			if len(rels) == 0 {
				return refuse("the plan has a %s that names no relation it reads", nodeType)
			}
			for _, r := range rels {
				addRelation(r, exprs)
			}
		}
		if nodeType == "Function Scan" {
			if err := checkFunctionScan(node, allowedSchemas); err != nil {
				return err
			}
			if name, ok := node["Function Name"].(string); ok {
				schema, _ := node["Schema"].(string)
				if fc := (funcCall{schema: schema, name: name}); !seenCall[fc] {
					seenCall[fc] = true
					rep.calls = append(rep.calls, fc)
				}
			}
		}
		for _, x := range exprs {
			if !strings.Contains(x, "(") {
				continue
			}
			toks, _ := lex(x)
			for _, fc := range funcCalls(toks) {
				if isDeniedFunction(fc.name) {
					return refuse("calls %s, which is not allowed", fc)
				}
				if fc.schema != "" && fc.schema != "pg_catalog" && !slices.Contains(allowedSchemas, fc.schema) {
					return refuse("calls %s, outside the allowed schemas", fc)
				}
				fc.depth = 0
				if !seenCall[fc] {
					seenCall[fc] = true
					rep.calls = append(rep.calls, fc)
				}
				if nodeType == "ProjectSet" && !seenSetCall[fc] {
					seenSetCall[fc] = true
					rep.setCalls = append(rep.setCalls, fc)
				}
			}
		}
		if plans, ok := node["Plans"].([]any); ok {
			for _, p := range plans {
				if child, ok := p.(map[string]any); ok {
					if err := walk(child); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	if err := walk(doc[0].Plan); err != nil {
		return planReport{}, err
	}
	sort.Slice(rep.relations, func(i, j int) bool { return rep.relations[i].String() < rep.relations[j].String() })
	return rep, nil
}

// nodeStrings returns the strings of a plan node's expression fields
// (Output, Filter, Join Filter, Hash Cond, Sort Key, Group Key, One-Time
// Filter, Function Call, Relations, Remote SQL, ...), not its children's.
// String constants inside them are the lexer's to skip, so WHERE name =
// 'pg_read_file(' is no call.
func nodeStrings(node map[string]any) []string {
	var out []string
	var add func(v any)
	add = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				add(e)
			}
		}
	}
	for key, v := range node {
		if key != "Plans" && !nameKeys[key] {
			add(v)
		}
	}
	return out
}

// foreignRelations reads the relations of a Foreign Scan or Custom Scan
// without a Relation Name from its "Relations" field, as postgres_fdw
// prints it: "Aggregate on (s.t)", "(s.t1 a) INNER JOIN (s.t2 b)". Every
// schema.name pair is one; none is returned when the field is missing or
// holds none.
func foreignRelations(node map[string]any) []relation {
	text, _ := node["Relations"].(string)
	toks, ok := lex(text)
	if !ok {
		return nil
	}
	var out []relation
	for i := 0; i+2 < len(toks); i++ {
		if toks[i].isName() && isPunct(toks[i+1], ".") && toks[i+2].isName() {
			out = append(out, relation{schema: toks[i].text, name: toks[i+2].text})
			i += 2
		}
	}
	return out
}

// checkFunctionScan allows a function in FROM when it is a set-returning
// function of allowedSetFunctions or belongs to an allowed schema.
func checkFunctionScan(node map[string]any, allowedSchemas []string) *guardError {
	if name, ok := node["Function Name"].(string); ok {
		schema, _ := node["Schema"].(string)
		if slices.Contains(allowedSchemas, schema) || (schema == "pg_catalog" && allowedSetFunctions[name]) {
			return nil
		}
		return refuse("reads from function %s.%s in FROM, which is not allowed", schema, name)
	}
	// ROWS FROM (f(), g()) names no single function: check each call at
	// the top level of the Function Call.
	call, _ := node["Function Call"].(string)
	toks, _ := lex(call)
	n := 0
	for _, fc := range funcCalls(toks) {
		if fc.depth != 0 {
			continue
		}
		n++
		switch {
		case fc.schema == "" && allowedSetFunctions[fc.name]:
		case fc.schema == "pg_catalog" && allowedSetFunctions[fc.name]:
		case fc.schema != "" && slices.Contains(allowedSchemas, fc.schema):
		default:
			return refuse("reads from function %s in FROM, which is not allowed", fc)
		}
	}
	if n == 0 {
		return refuse("reads from a function in FROM that the plan does not name")
	}
	return nil
}

// checkTextNames settles against the catalog what checkNames could not,
// before the SQL reaches the planner: a qualifier that names a schema
// outside the allowed ones (a table alias of the same name is refused as
// well: rename it), and a call of a function of an allowed schema that is
// SECURITY DEFINER or VOLATILE (checkFunctions). The error is the
// catalog's; the *guardError a refusal.
func (s *Source) checkTextNames(ctx context.Context, tx pgx.Tx, names textNames) (*guardError, error) {
	if len(names.qualifiers) > 0 {
		var candidates []string
		for _, q := range names.qualifiers {
			if !slices.Contains(candidates, q.qualifier) {
				candidates = append(candidates, q.qualifier)
			}
		}
		rows, err := tx.Query(ctx, `SELECT n.nspname::text FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1::text[])`, candidates)
		if err != nil {
			return nil, s.classify(ctx, err)
		}
		schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, s.classify(ctx, err)
		}
		for _, q := range names.qualifiers {
			if !slices.Contains(schemas, q.qualifier) {
				continue
			}
			allowed := strings.Join(s.cfg.Schemas, ", ")
			if q.isType {
				return refuse("uses type %s, outside the allowed schemas (%s)", q, allowed), nil
			}
			return refuse("reads %s, outside the allowed schemas (%s); %s names a schema (rename an alias of that name)", q, allowed, q.qualifier), nil
		}
	}
	calls := make([]funcCall, len(names.calls))
	for i, name := range names.calls {
		calls[i] = funcCall{name: name}
	}
	return s.checkFunctions(ctx, tx, calls, nil)
}

// checkFunctions refuses, among calls, a function of an allowed schema
// that is SECURITY DEFINER (it runs with its owner's privileges) or
// VOLATILE (it may change state: a session's advisory lock outlives the
// rollback), and, among setCalls (the select list of a ProjectSet), a
// set-returning function of pg_catalog that allowedSetFunctions does not
// list: the same allow-list as in FROM. A name is matched in every allowed
// schema, overloads included. The plan prints a function of an allowed
// schema unqualified, as it is on the search path.
func (s *Source) checkFunctions(ctx context.Context, tx pgx.Tx, calls, setCalls []funcCall) (*guardError, error) {
	var names, setNames []string
	for _, fc := range calls {
		if (fc.schema == "" || s.allowedSchema(fc.schema)) && !slices.Contains(names, fc.name) {
			names = append(names, fc.name)
		}
	}
	for _, fc := range setCalls {
		if (fc.schema == "" || fc.schema == "pg_catalog") && !allowedSetFunctions[fc.name] && !slices.Contains(setNames, fc.name) {
			setNames = append(setNames, fc.name)
		}
	}
	if len(names) == 0 && len(setNames) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `
SELECT n.nspname::text, p.proname::text, p.prosecdef, p.proretset AND n.nspname = 'pg_catalog'
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE (n.nspname = ANY($1::text[]) AND p.proname = ANY($2::text[]) AND (p.prosecdef OR p.provolatile = 'v'))
	OR (n.nspname = 'pg_catalog' AND p.proretset AND p.proname = ANY($3::text[]))
ORDER BY 4, 1, 2`, s.cfg.Schemas, names, setNames)
	if err != nil {
		return nil, s.classify(ctx, err)
	}
	type found struct {
		schema, name      string
		secdef, catalogSR bool
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (found, error) {
		var f found
		err := r.Scan(&f.schema, &f.name, &f.secdef, &f.catalogSR)
		return f, err
	})
	if err != nil {
		return nil, s.classify(ctx, err)
	}
	for _, f := range list {
		fn := relation{schema: f.schema, name: f.name}
		switch {
		case f.catalogSR:
			return refuse("calls set-returning function %s in the select list, which is not allowed", fn), nil
		case f.secdef:
			return refuse("calls %s, a SECURITY DEFINER function, which is not allowed", fn), nil
		default:
			return refuse("calls %s, a VOLATILE function, which is not allowed (it may change state that outlives the query)", fn), nil
		}
	}
	return nil, nil
}

// checkRelations refuses a relation outside the allowed schemas and
// tables. A relation not allowed by name is allowed when it is a
// partition (at every level) of an allowed table: it has the parent's
// columns, and its rows are the parent's. A plain inheritance child is
// allowed only when an allowed ancestor is read by the same plan (the
// plan of SELECT ... FROM parent scans its children) and the plan uses
// none of the child's own columns, nor its whole rows: reading the child
// directly would show what the parent does not.
func (s *Source) checkRelations(ctx context.Context, tx pgx.Tx, rep planReport) (*guardError, error) {
	for _, r := range rep.relations {
		if s.allowedTable(r.schema, r.name) {
			continue
		}
		if !s.allowedSchema(r.schema) {
			return refuse("reads %s, outside the allowed schemas (%s)", r, strings.Join(s.cfg.Schemas, ", ")), nil
		}
		ge, err := s.checkDescendant(ctx, tx, r, rep)
		if err != nil || ge != nil {
			return ge, err
		}
	}
	return nil, nil
}

// checkDescendant applies checkRelations' rule for a relation that is not
// allowed by name.
func (s *Source) checkDescendant(ctx context.Context, tx pgx.Tx, r relation, rep planReport) (*guardError, error) {
	rows, err := tx.Query(ctx, `
WITH RECURSIVE target AS (
	SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2
), up(oid, partition) AS (
	SELECT i.inhparent, c.relispartition FROM pg_catalog.pg_inherits i
	JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
	WHERE i.inhrelid IN (SELECT oid FROM target)
	UNION
	SELECT i.inhparent, up.partition AND c.relispartition FROM up
	JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.oid
	JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
)
SELECT false, n.nspname::text, c.relname::text, bool_or(up.partition),
	ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM up JOIN pg_catalog.pg_class c ON c.oid = up.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
GROUP BY n.nspname, c.relname, c.oid
UNION ALL
SELECT true, $1, $2, false, ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM target t`, r.schema, r.name)
	if err != nil {
		return nil, s.classify(ctx, err)
	}
	var own []string
	parentColumns := map[string]bool{}
	var parents []string
	for rows.Next() {
		var self, partition bool
		var schema, name string
		var cols []string
		if err := rows.Scan(&self, &schema, &name, &partition, &cols); err != nil {
			rows.Close()
			return nil, s.classify(ctx, err)
		}
		switch {
		case self:
			own = cols
		case !s.allowedTable(schema, name):
		case partition:
			rows.Close()
			return nil, nil
		case slices.Contains(rep.relations, relation{schema: schema, name: name}):
			parents = append(parents, relation{schema: schema, name: name}.String())
			for _, c := range cols {
				parentColumns[c] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.classify(ctx, err)
	}
	if len(parents) == 0 {
		return refuse("reads %s, outside the allowed tables", r), nil
	}
	var extra []string
	for _, c := range own {
		if !parentColumns[c] {
			extra = append(extra, c)
		}
	}
	if len(extra) == 0 {
		return nil, nil
	}
	for _, exprs := range rep.scans[r] {
		for _, x := range exprs {
			toks, _ := lex(x)
			for i, t := range toks {
				if t.isName() && slices.Contains(extra, t.text) {
					return refuse("reads column %s of %s, an inheritance child of %s outside the allowed tables", t.text, r, parents[0]), nil
				}
				if isPunct(t, ".") && i+1 < len(toks) && isPunct(toks[i+1], "*") {
					return refuse("reads whole rows of %s, an inheritance child of %s outside the allowed tables, with columns of its own; select the columns you need", r, parents[0]), nil
				}
			}
		}
	}
	return nil, nil
}

// minMessageBodyLen is the least of maxMessageBodyLen: room for a plan,
// the catalog's rows and a profile's statistics whatever the result cap.
const minMessageBodyLen = 8 << 20

// maxMessageBodyLen is the largest protocol message the source reads:
// twice Config.MaxResultBytes, at least minMessageBodyLen. Without it, one
// huge value (SELECT repeat('x', 150000000)) is buffered whole before
// MaxResultBytes is looked at. A larger message fails the query with
// KindTooExpensive and breaks the connection, which the pool discards.
func maxMessageBodyLen(cfg Config) int {
	return int(min(max(2*cfg.MaxResultBytes, minMessageBodyLen), math.MaxInt32))
}

// resetTimeout bounds the reset of a released connection.
const resetTimeout = 5 * time.Second

// hardenPool sets what the guard needs of every pooled connection: the
// cap on a protocol message, and a reset when a connection goes back to
// the pool. Query's transaction is rolled back, but a function may take
// what outlives a transaction (a session advisory lock, a session
// setting, a LISTEN, a prepared statement); DISCARD ALL releases all of
// it (it cannot run in a transaction, and the release comes after the
// rollback). The settings the source relies on are startup parameters,
// to which DISCARD ALL returns, or are set per transaction. A connection
// whose reset fails is closed.
func hardenPool(pcfg *pgxpool.Config, cfg Config) {
	pcfg.ConnConfig.MaxProtocolMessageBodyLen = maxMessageBodyLen(cfg)
	pcfg.AfterRelease = func(c *pgx.Conn) bool {
		ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
		defer cancel()
		_, err := c.Exec(ctx, "DISCARD ALL", pgx.QueryExecModeSimpleProtocol)
		return err == nil
	}
}
