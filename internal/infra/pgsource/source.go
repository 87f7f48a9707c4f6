package pgsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Column is a column of a table or of a result: its name and PostgreSQL's
// name for its type (format_type: "integer", "numeric(10,2)",
// "timestamp with time zone", "text[]").
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Table is a table, view, materialized view or foreign table that the role
// can read, in an allowed schema and, when Config.Tables is set, in the
// allow-list. Partitions are not listed: their parent is.
type Table struct {
	Schema  string   `json:"schema"`
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	// PrimaryKey names the primary key's columns in key order; empty when
	// the table has none (or the role cannot read one of them). Rows
	// pages in its order.
	PrimaryKey []string `json:"primary_key,omitempty"`
}

// QualifiedName is "schema.name".
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Source is one PostgreSQL database reached through a read-only role, with
// a pool of at most Config.MaxConnections connections. It is safe for
// concurrent use.
type Source struct {
	cfg   Config
	log   *slog.Logger
	pool  *pgxpool.Pool
	scrub scrubber

	mu     sync.RWMutex
	tables []Table
	role   string
	// unsafe is set when a Refresh found the role able to write or
	// escape; every query is refused with it until a Refresh passes.
	unsafe *Error

	typeNames sync.Map // typeKey -> string

	inUse, peak atomic.Int32
	closed      atomic.Bool
	closeOnce   sync.Once

	health health
}

// Open connects to the database, refuses a role that can write or escape
// (see checkRole), and introspects the allowed tables. Every error is an
// *Error naming the source and never the DSN: KindInvalidConfig for a bad
// Config or DSN, KindUnavailable when the server cannot be reached or the
// login fails, KindUnsafeRole when the role has a privilege it must not.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Source{cfg: cfg, log: log.With("source", cfg.Name)}
	s.scrub = newScrubber(cfg.DSN)
	if err := cfg.validate(); err != nil {
		return nil, s.errorf(KindInvalidConfig, "invalid configuration: %v", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgconn's message quotes the DSN (its password masked); name only
		// the cause.
		cause := "it does not parse"
		var pce *pgconn.ParseConfigError
		if errors.As(err, &pce) {
			msg := pce.Error()
			if i := strings.LastIndex(msg, "`: "); i >= 0 {
				cause = msg[i+3:]
			}
		}
		return nil, s.errorf(KindInvalidConfig, "the DSN is not valid: %s", cause)
	}
	s.scrub = newScrubber(cfg.DSN, pcfg.ConnConfig.Password)
	configurePool(pcfg, cfg)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, s.errorf(KindInvalidConfig, "the DSN is not valid: %v", err)
	}
	s.pool = pool
	if err := s.Refresh(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	// A first latency for Health; a failure here is recorded, not fatal:
	// the database has just answered.
	_, _ = s.Ping(ctx)
	s.mu.RLock()
	s.log.Info("postgres source opened", "role", s.role, "schemas", cfg.Schemas, "tables", len(s.tables),
		"max_connections", cfg.MaxConnections)
	s.mu.RUnlock()
	return s, nil
}

// configurePool sets the pool's size and the session settings that the
// guard and the value conversion rely on.
func configurePool(pcfg *pgxpool.Config, cfg Config) {
	pcfg.MaxConns = cfg.MaxConnections
	pcfg.MinConns = 0
	cc := pcfg.ConnConfig
	// The extended protocol, one round trip, text results: Parse refuses
	// more than one statement, and the text is what conversion reads.
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = "nexus/" + cfg.Name
	// Every transaction read-only unless begun otherwise (none is), and a
	// bound on statements outside Query (introspection, profile).
	cc.RuntimeParams["default_transaction_read_only"] = "on"
	cc.RuntimeParams["statement_timeout"] = fmt.Sprint(cfg.StatementTimeout.Milliseconds())
	cc.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint((cfg.StatementTimeout * 3).Milliseconds())
	// Output formats that convert to JSON as documented.
	cc.RuntimeParams["DateStyle"] = "ISO, YMD"
	cc.RuntimeParams["IntervalStyle"] = "iso_8601"
	cc.RuntimeParams["TimeZone"] = "UTC"
	cc.RuntimeParams["bytea_output"] = "hex"
	cc.RuntimeParams["extra_float_digits"] = "1"
	// A cancelled context sends a cancel request, so the server stops the
	// statement, and the connection survives when it answers in time.
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, CancelRequestDelay: 0, DeadlineDelay: 2 * time.Second}
	}
	if cc.ConnectTimeout == 0 || cc.ConnectTimeout > 10*time.Second {
		cc.ConnectTimeout = 10 * time.Second
	}
	hardenPool(pcfg, cfg)
}

// Name is the source's name.
func (s *Source) Name() string { return s.cfg.Name }

// Config returns the source's configuration with defaults filled in and
// the DSN removed.
func (s *Source) Config() Config {
	c := s.cfg
	c.DSN = ""
	c.Schemas = slices.Clone(c.Schemas)
	c.Tables = slices.Clone(c.Tables)
	return c
}

// Tables returns the tables found by the last successful introspection
// (Open or Refresh), sorted by schema then name. The slice is a copy.
func (s *Source) Tables() []Table {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Table, len(s.tables))
	for i, t := range s.tables {
		t.Columns = slices.Clone(t.Columns)
		t.PrimaryKey = slices.Clone(t.PrimaryKey)
		out[i] = t
	}
	return out
}

// Refresh checks the role's privileges again and introspects the tables.
// When the role has gained a privilege it must not hold, every query is
// refused until a Refresh passes, and the *Error of KindUnsafeRole is
// returned. On another failure the previous tables stay.
func (s *Source) Refresh(ctx context.Context) (err error) {
	defer func() { s.observe(err, 0) }()
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	role, roleErr := s.checkRole(ctx, conn.Conn())
	if roleErr != nil {
		var e *Error
		if errors.As(roleErr, &e) && e.Kind == KindUnsafeRole {
			s.mu.Lock()
			s.unsafe = e
			s.mu.Unlock()
			s.log.Error("postgres source refused: the role can write or escape", "error", e.Message)
		}
		return roleErr
	}
	tables, err := s.introspect(ctx, conn.Conn())
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.tables, s.role, s.unsafe = tables, role, nil
	s.mu.Unlock()
	return nil
}

// Ping measures a round trip on a pooled connection (connecting first
// when the pool holds none), and records it in Health.
func (s *Source) Ping(ctx context.Context) (time.Duration, error) {
	d, err := s.ping(ctx)
	s.observe(err, d)
	return d, err
}

func (s *Source) ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	conn, err := s.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if err := conn.Conn().PgConn().Ping(ctx); err != nil {
		return 0, s.classify(ctx, err)
	}
	return time.Since(start), nil
}

// Stats reports the pool: its cap, the connections open and in use now,
// and the most ever in use at once by this Source.
type Stats struct {
	MaxConnections int32 `json:"max_connections"`
	Open           int32 `json:"open"`
	InUse          int32 `json:"in_use"`
	PeakInUse      int32 `json:"peak_in_use"`
}

// Stats returns the pool's statistics.
func (s *Source) Stats() Stats {
	st := s.pool.Stat()
	return Stats{MaxConnections: st.MaxConns(), Open: st.TotalConns(), InUse: st.AcquiredConns(), PeakInUse: s.peak.Load()}
}

// Close closes the pool, waiting for connections in use to be released.
// Calls after it fail with KindUnavailable.
func (s *Source) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.pool.Close()
		s.log.Info("postgres source closed")
	})
}

// acquire takes a pooled connection, counting the peak in use.
func (s *Source) acquire(ctx context.Context) (*pooledConn, error) {
	if s.closed.Load() {
		return nil, s.errorf(KindUnavailable, "the source is closed")
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.classify(ctx, err)
	}
	n := s.inUse.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &pooledConn{pc: c, s: s}, nil
}

// pooledConn is a pooled connection whose Release counts it out.
type pooledConn struct {
	pc   *pgxpool.Conn
	s    *Source
	once sync.Once
}

// Conn is the connection itself.
func (c *pooledConn) Conn() *pgx.Conn { return c.pc.Conn() }

// Release returns the connection to the pool; later calls do nothing.
func (c *pooledConn) Release() {
	c.once.Do(func() {
		c.s.inUse.Add(-1)
		c.pc.Release()
	})
}

// allowedSchema reports whether schema is one of Config.Schemas.
func (s *Source) allowedSchema(schema string) bool { return slices.Contains(s.cfg.Schemas, schema) }

// allowedTable reports whether schema.name is in an allowed schema and, if
// there is an allow-list, on it.
func (s *Source) allowedTable(schema, name string) bool {
	if !s.allowedSchema(schema) {
		return false
	}
	if len(s.cfg.Tables) == 0 {
		return true
	}
	for _, entry := range s.cfg.Tables {
		es, et, _ := splitTableName(entry)
		if et == name && (es == "" || es == schema) {
			return true
		}
	}
	return false
}

// introspect lists the readable tables and columns of the allowed schemas,
// filtered by the allow-list, from the catalog.
func (s *Source) introspect(ctx context.Context, conn *pgx.Conn) ([]Table, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	AND has_column_privilege(c.oid, a.attnum, 'SELECT')
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
	AND has_any_column_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname, a.attnum`, s.cfg.Schemas)
	if err != nil {
		return nil, s.classify(ctx, err)
	}
	defer rows.Close()
	var tables []Table
	for rows.Next() {
		var schema, name string
		var col, typ *string
		if err := rows.Scan(&schema, &name, &col, &typ); err != nil {
			return nil, s.classify(ctx, err)
		}
		if !s.allowedTable(schema, name) {
			continue
		}
		if n := len(tables); n == 0 || tables[n-1].Schema != schema || tables[n-1].Name != name {
			tables = append(tables, Table{Schema: schema, Name: name, Columns: []Column{}})
		}
		if col != nil && typ != nil {
			t := &tables[len(tables)-1]
			t.Columns = append(t.Columns, Column{Name: *col, Type: *typ})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.classify(ctx, err)
	}
	if err := s.primaryKeys(ctx, conn, tables); err != nil {
		return nil, err
	}
	for _, entry := range s.cfg.Tables {
		es, et, _ := splitTableName(entry)
		if !slices.ContainsFunc(tables, func(t Table) bool { return t.Name == et && (es == "" || es == t.Schema) }) {
			s.log.Warn("postgres source: an allow-listed table is missing or not readable by the role", "table", entry)
		}
	}
	return tables, nil
}

// primaryKeys fills in the primary key of each table that has one whose
// columns the role can all read.
func (s *Source) primaryKeys(ctx context.Context, conn *pgx.Conn, tables []Table) error {
	rows, err := conn.Query(ctx, `
SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = ANY($1)
GROUP BY n.nspname, c.relname`, s.cfg.Schemas)
	if err != nil {
		return s.classify(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name string
		var cols []string
		if err := rows.Scan(&schema, &name, &cols); err != nil {
			return s.classify(ctx, err)
		}
		i := slices.IndexFunc(tables, func(t Table) bool { return t.Schema == schema && t.Name == name })
		if i < 0 {
			continue
		}
		readable := true
		for _, c := range cols {
			readable = readable && slices.ContainsFunc(tables[i].Columns, func(tc Column) bool { return tc.Name == c })
		}
		if readable {
			tables[i].PrimaryKey = cols
		}
	}
	return s.classify(ctx, rows.Err())
}

// lookupTable resolves "schema.table" or "table" among Tables(); a bare
// name must be unique across the allowed schemas, or the first schema in
// search_path order wins.
func (s *Source) lookupTable(name string) (Table, error) {
	schema, table, err := splitTableName(name)
	if err != nil {
		return Table{}, s.errorf(KindNotFound, "%v", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sch := range s.cfg.Schemas {
		if schema != "" && sch != schema {
			continue
		}
		for _, t := range s.tables {
			if t.Schema == sch && t.Name == table {
				t.Columns = slices.Clone(t.Columns)
				t.PrimaryKey = slices.Clone(t.PrimaryKey)
				return t, nil
			}
		}
	}
	names := make([]string, 0, min(len(s.tables), 20))
	for _, t := range s.tables[:min(len(s.tables), 20)] {
		names = append(names, t.QualifiedName())
	}
	if len(s.tables) > 20 {
		names = append(names, "...")
	}
	return Table{}, s.errorf(KindNotFound, "no table %q among the source's tables (%s)", name, strings.Join(names, ", "))
}
