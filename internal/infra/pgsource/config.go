package pgsource

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults applied by Open to zero fields of Config. The limits match the
// dataset store's, so that a question costs the same whichever engine
// answers it.
const (
	DefaultStatementTimeout       = 10 * time.Second
	DefaultMaxRows                = 1000
	DefaultMaxResultBytes   int64 = 1 << 20
	DefaultMaxConnections   int32 = 4
	DefaultSchema                 = "public"
)

// Config describes one source. The wiring builds it from the config file's
// sources.<name> entry and the environment variable that entry names.
type Config struct {
	// Name identifies the source in errors, logs and application_name. It
	// is required.
	Name string
	// DSN is a libpq connection string (URL or key=value) for a read-only
	// role. It never appears in an error or a log line.
	DSN string
	// Schemas are the schemas a query may read; ["public"] when empty. They
	// also form the search_path of every query, in this order.
	Schemas []string
	// Tables is an optional allow-list within Schemas: "schema.table" or
	// "table" (any of the Schemas). Empty allows every table, view,
	// materialized view and foreign table of the Schemas.
	Tables []string
	// StatementTimeout bounds each statement (the EXPLAIN and the query
	// each) on the server.
	StatementTimeout time.Duration
	// MaxRows caps the rows a Result carries.
	MaxRows int
	// MaxResultBytes caps the JSON size of a Result's rows.
	MaxResultBytes int64
	// MaxConnections caps the source's pool; further queries wait for a
	// connection (bounded by their context).
	MaxConnections int32
	// OnQuery, if set, is called after every Query (Sample and Rows
	// included) with its Outcome and duration, for metrics. It must not
	// block.
	OnQuery func(outcome string, d time.Duration)
}

// withDefaults fills zero or negative limits and an empty schema list.
func (c Config) withDefaults() Config {
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = DefaultStatementTimeout
	}
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxResultBytes <= 0 {
		c.MaxResultBytes = DefaultMaxResultBytes
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if len(c.Schemas) == 0 {
		c.Schemas = []string{DefaultSchema}
	}
	c.Schemas = append([]string(nil), c.Schemas...)
	c.Tables = append([]string(nil), c.Tables...)
	return c
}

// validate checks what Open cannot work without. Messages never hold the
// DSN.
func (c Config) validate() error {
	if c.Name == "" {
		return fmt.Errorf("the source has no name")
	}
	if strings.TrimSpace(c.DSN) == "" {
		return fmt.Errorf("the DSN is empty")
	}
	for i, s := range c.Schemas {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("schemas[%d] is blank", i)
		}
	}
	for i, t := range c.Tables {
		if _, _, err := splitTableName(t); err != nil {
			return fmt.Errorf("tables[%d]: %v", i, err)
		}
	}
	return nil
}

// tableName is what an allow-list entry or a table argument may look like:
// "table" or "schema.table", each part an unquoted name as the catalog
// stores it.
var tableName = regexp.MustCompile(`^[^.\s"]+(\.[^.\s"]+)?$`)

// splitTableName splits "schema.table" or "table" (schema "").
func splitTableName(s string) (schema, table string, err error) {
	if !tableName.MatchString(s) {
		return "", "", fmt.Errorf("%q is not a table name (\"table\" or \"schema.table\")", s)
	}
	if schema, table, ok := strings.Cut(s, "."); ok {
		return schema, table, nil
	}
	return "", s, nil
}

// Secrets returns what of dsn must never be shown: the DSN itself and,
// when it parses, its password, for a redactor of the caller's.
func Secrets(dsn string) []string {
	out := []string{dsn}
	if pc, err := pgconn.ParseConfig(dsn); err == nil && pc.Password != "" {
		out = append(out, pc.Password)
	}
	return out
}
