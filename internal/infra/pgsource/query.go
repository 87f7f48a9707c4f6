package pgsource

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is what a query returned, capped.
type Result struct {
	Columns []Column `json:"columns"`
	// Rows are arrays in column order; every value is JSON-encodable (see
	// the conversions documented in values.go and on Query).
	Rows [][]any `json:"rows"`
	// RowCount is the number of rows the server sent before reading
	// stopped: len(Rows) when the result is complete. When Truncated, it
	// is len(Rows) + 1 (the first row past a cap), a lower bound of the
	// full size: reading stops at a cap and the query is cancelled, so a
	// huge result costs no more than the rows kept.
	RowCount int64 `json:"row_count"`
	// Truncated is set when Rows stopped at Config.MaxRows or
	// Config.MaxResultBytes.
	Truncated bool `json:"truncated"`
}

// Query runs one read-only query under the guard and returns its rows,
// capped. The guard, in order:
//
//  1. checkText: one statement whose first keyword is SELECT, WITH, VALUES
//     or TABLE, without INTO; checkNames: no call of a denied function, no
//     call or operator of another schema, no U& escape or OID alias type
//     (refused before anything is sent: planning evaluates stable
//     functions of constants);
//  2. a transaction BEGIN READ ONLY with SET LOCAL statement_timeout and
//     SET LOCAL search_path to the allowed schemas (quoted);
//  3. before EXPLAIN, the catalog settles the names of the text: no
//     qualifier that names a schema outside the allowed ones, no call of a
//     VOLATILE or SECURITY DEFINER function of an allowed schema. Then
//     EXPLAIN (VERBOSE, FORMAT JSON) of the query, in that transaction,
//     through the extended protocol, which refuses a second statement; its
//     plan is refused when it writes or locks (ModifyTable, LockRows),
//     reads a relation outside the allowed schemas and tables (a partition
//     of an allowed table is allowed; an inheritance child only through
//     its allowed parent; a Foreign Scan's pushed-down relations count),
//     scans a function in FROM, or a set-returning function in the select
//     list, that is not allowed, or calls a denied function (server files,
//     large objects, dblink, settings, signals, advisory locks, catalog
//     readers, SQL given as text), any function of another schema, or a
//     VOLATILE or SECURITY DEFINER function of an allowed one (see
//     guard.go);
//  4. the query itself, in the same transaction, through the extended
//     protocol; rows are converted and counted while streaming, and at
//     Config.MaxRows or Config.MaxResultBytes reading stops and the
//     statement is cancelled on the server. A deadline of ctx also
//     cancels it on the server.
//
// The transaction is always rolled back. Beneath the guard, the role holds
// no privilege to write or escape (checked by Open and Refresh).
//
// Errors are *Error: KindUnsafeSQL for a refusal, KindSQL for PostgreSQL's
// error (its quoted values cut), KindTimeout, KindTooExpensive (a resource
// limit of the server, or a row past the protocol message cap),
// KindUnavailable. A cancellation of ctx by the caller is returned as an
// error wrapping context.Canceled.
//
// Config.OnQuery, if set, is told every call's outcome and duration.
func (s *Source) Query(ctx context.Context, sql string) (Result, error) {
	start := time.Now()
	res, err := s.query(ctx, sql, true)
	s.observe(err, 0)
	if s.cfg.OnQuery != nil {
		s.cfg.OnQuery(Outcome(err), time.Since(start))
	}
	return res, err
}

// Outcome names how a call ended, as Config.OnQuery reports it: "ok", the
// *Error's Kind (unsafe_sql, sql_error, timeout, query_too_expensive,
// unavailable, unsafe_role, not_found, invalid_config), or "canceled" when the caller's context
// ended it.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if k := KindOf(err); k != "" {
		return string(k)
	}
	return "canceled"
}

// Explain checks sql as Query does, EXPLAIN included, without ever running
// it: for /generate, which writes SQL for the user to run.
func (s *Source) Explain(ctx context.Context, sql string) error {
	if err := s.guardText(sql); err != nil {
		return err
	}
	err := s.inReadOnlyTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return s.explain(ctx, tx, sql)
	})
	s.observe(err, 0)
	return err
}

// Sample returns the first n rows of table ("schema.table" or "table",
// one of Tables()) through Query: SELECT * FROM table LIMIT n. n is capped
// at Config.MaxRows; n <= 0 means 5.
func (s *Source) Sample(ctx context.Context, table string, n int) (Result, error) {
	t, err := s.lookupTable(table)
	if err != nil {
		return Result{}, err
	}
	if n <= 0 {
		n = 5
	}
	n = min(n, s.cfg.MaxRows)
	return s.Query(ctx, fmt.Sprintf("SELECT * FROM %s LIMIT %d", pgx.Identifier{t.Schema, t.Name}.Sanitize(), n))
}

// Rows returns a page of table's rows ("schema.table" or "table", one of
// Tables()) through Query: limit rows (capped at Config.MaxRows; <= 0
// means 50) from offset (< 0 means 0), ordered by the table's primary key
// when it has one. Without one the order is PostgreSQL's, which is the
// physical order of a table that nothing writes, but not a promise. One
// row more than limit is asked for, so that Truncated says whether rows
// remain; Rows holds at most limit.
func (s *Source) Rows(ctx context.Context, table string, limit int, offset int64) (Result, error) {
	t, err := s.lookupTable(table)
	if err != nil {
		return Result{}, err
	}
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, s.cfg.MaxRows)
	offset = max(offset, 0)
	order := ""
	if len(t.PrimaryKey) > 0 {
		keys := make([]string, len(t.PrimaryKey))
		for i, k := range t.PrimaryKey {
			keys[i] = pgx.Identifier{k}.Sanitize()
		}
		order = " ORDER BY " + strings.Join(keys, ", ")
	}
	res, err := s.Query(ctx, fmt.Sprintf("SELECT * FROM %s%s LIMIT %d OFFSET %d",
		pgx.Identifier{t.Schema, t.Name}.Sanitize(), order, limit+1, offset))
	if err != nil {
		return Result{}, err
	}
	if len(res.Rows) > limit {
		res.Rows = res.Rows[:limit]
		res.Truncated = true
	}
	res.RowCount = int64(len(res.Rows))
	if res.Truncated {
		res.RowCount++
	}
	return res, nil
}

func (s *Source) query(ctx context.Context, sql string, lexical bool) (Result, error) {
	start := time.Now()
	if lexical {
		if err := s.guardText(sql); err != nil {
			return Result{}, err
		}
	}
	var res Result
	var names []typeKey
	err := s.inReadOnlyTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := s.explain(ctx, tx, sql); err != nil {
			return err
		}
		var err error
		res, names, err = s.run(ctx, tx, sql)
		return err
	})
	if err != nil {
		s.log.Debug("postgres query failed", "kind", KindOf(err), "duration", time.Since(start), "error", err)
		return Result{}, err
	}
	res.Columns = s.columnTypes(ctx, names, res.Columns)
	s.log.Debug("postgres query", "rows", len(res.Rows), "truncated", res.Truncated, "duration", time.Since(start))
	return res, nil
}

// guardText applies checkText, checkNames and the unsafe-role state.
func (s *Source) guardText(sql string) error {
	s.mu.RLock()
	unsafe := s.unsafe
	s.mu.RUnlock()
	if unsafe != nil {
		return unsafe
	}
	ge := checkText(sql)
	if ge == nil {
		_, ge = checkNames(sql, s.cfg.Schemas)
	}
	if ge != nil {
		s.log.Info("postgres SQL refused", "reason", ge.msg)
		return s.errorf(KindUnsafeSQL, "%s", ge.Error())
	}
	return nil
}

// inReadOnlyTx runs fn in BEGIN READ ONLY with the statement timeout and
// the search path set locally, on a pooled connection, then rolls back.
// The whole call is bounded by twice the statement timeout plus a margin,
// in case the server stops answering.
func (s *Source) inReadOnlyTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.StatementTimeout+5*time.Second)
	defer cancel()
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Conn().BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.classify(ctx, err)
	}
	defer func() {
		// The caller's context may be done; the rollback still needs to
		// reach the server for the connection to go back to the pool.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer rcancel()
		_ = tx.Rollback(rctx)
	}()
	// set_config(..., true) is SET LOCAL, with the values as parameters.
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true), set_config('search_path', $2, true)`,
		fmt.Sprintf("%dms", max(1, s.cfg.StatementTimeout.Milliseconds())), s.searchPath()); err != nil {
		return s.classify(ctx, err)
	}
	if err := fn(ctx, tx); err != nil {
		return s.classify(ctx, err)
	}
	return nil
}

// searchPath is the allowed schemas, each quoted as an identifier.
func (s *Source) searchPath() string {
	quoted := make([]string, len(s.cfg.Schemas))
	for i, sch := range s.cfg.Schemas {
		quoted[i] = pgx.Identifier{sch}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// explain checks the names of sql against the catalog, then plans it and
// checks the plan (Query's step 3).
func (s *Source) explain(ctx context.Context, tx pgx.Tx, sql string) error {
	if ctx.Value(planOnlyKey{}) == nil {
		// guardText refused what checkNames refuses, unless a test
		// skipped it.
		names, ge := checkNames(sql, s.cfg.Schemas)
		if ge == nil {
			var err error
			if ge, err = s.checkTextNames(ctx, tx, names); err != nil {
				return err
			}
		}
		if ge != nil {
			return s.refused(ge)
		}
	}
	var plan []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (VERBOSE, FORMAT JSON) "+sql, pgx.QueryExecModeExec).Scan(&plan); err != nil {
		return s.classifyPlanning(ctx, err, sql)
	}
	rep, ge := checkPlan(plan, s.cfg.Schemas)
	var err error
	if ge == nil {
		ge, err = s.checkRelations(ctx, tx, rep)
	}
	if ge == nil && err == nil {
		ge, err = s.checkFunctions(ctx, tx, rep.calls, rep.setCalls)
	}
	if err != nil {
		return err
	}
	if ge != nil {
		return s.refused(ge)
	}
	return nil
}

// planOnlyKey, set in a context, makes explain skip its checks of the
// caller's text, so that tests can show the plan check holding on its own.
type planOnlyKey struct{}

// refused logs a refusal and makes it an *Error of KindUnsafeSQL.
func (s *Source) refused(ge *guardError) error {
	s.log.Info("postgres SQL refused", "reason", ge.msg)
	return s.errorf(KindUnsafeSQL, "%s", ge.Error())
}

// run executes sql and streams its rows under the caps. names are the
// columns' type keys, for naming the types once the transaction is over.
func (s *Source) run(ctx context.Context, tx pgx.Tx, sql string) (Result, []typeKey, error) {
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := tx.Query(qctx, sql, pgx.QueryExecModeExec)
	if err != nil {
		return Result{}, nil, s.classify(ctx, err)
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	res := Result{Columns: make([]Column, len(fds)), Rows: [][]any{}}
	keys := make([]typeKey, len(fds))
	convs := make([]converter, len(fds))
	tm := tx.Conn().TypeMap()
	for i, fd := range fds {
		res.Columns[i] = Column{Name: fd.Name}
		keys[i] = typeKey{oid: fd.DataTypeOID, mod: fd.TypeModifier}
		convs[i] = converterFor(tm, fd.DataTypeOID)
	}
	size := int64(2) // the brackets of the rows array
	for rows.Next() {
		res.RowCount++
		if len(res.Rows) >= s.cfg.MaxRows {
			res.Truncated = true
			break
		}
		raw := rows.RawValues()
		row := make([]any, len(raw))
		for i, b := range raw {
			row[i] = convs[i](b)
		}
		b, err := json.Marshal(row)
		if err != nil {
			return Result{}, nil, s.errorf(KindSQL, "a row cannot be encoded as JSON: %v", err)
		}
		if size+int64(len(b))+1 > s.cfg.MaxResultBytes {
			res.Truncated = true
			break
		}
		size += int64(len(b)) + 1
		res.Rows = append(res.Rows, row)
	}
	if res.Truncated {
		// Stop the statement on the server rather than drain the rest:
		// the cancel request makes rows.Close return at once.
		cancel()
		rows.Close()
		return res, keys, nil
	}
	if err := rows.Err(); err != nil {
		return Result{}, nil, s.classify(ctx, err)
	}
	return res, keys, nil
}

// typeKey identifies a column's type: its OID and modifier.
type typeKey struct {
	oid uint32
	mod int32
}

// columnTypes names the columns' types with format_type, cached per
// source; types it cannot name keep the pgx name or the OID.
func (s *Source) columnTypes(ctx context.Context, keys []typeKey, cols []Column) []Column {
	var missing []typeKey
	for _, k := range keys {
		if _, ok := s.typeNames.Load(k); !ok && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		s.lookupTypeNames(ctx, missing)
	}
	for i, k := range keys {
		if name, ok := s.typeNames.Load(k); ok {
			cols[i].Type = name.(string)
		} else {
			cols[i].Type = fmt.Sprintf("oid %d", k.oid)
		}
	}
	return cols
}

func (s *Source) lookupTypeNames(ctx context.Context, keys []typeKey) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatementTimeout)
	defer cancel()
	oids := make([]uint32, len(keys))
	mods := make([]int32, len(keys))
	for i, k := range keys {
		oids[i], mods[i] = k.oid, k.mod
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	rows, err := conn.Conn().Query(ctx, `SELECT o, m, format_type(o, NULLIF(m, -1)) FROM unnest($1::oid[], $2::int4[]) AS u(o, m)`, oids, mods)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var k typeKey
		var name string
		if rows.Scan(&k.oid, &k.mod, &name) == nil {
			s.typeNames.Store(k, name)
		}
	}
}
