package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/redact"
)

// Sources are the configured live databases; *pgsource.Set is the real
// one. Every route below reads them without the LLM, so they work while
// every circuit is open.
type Sources interface {
	// All returns the sources in configuration order.
	All() []*pgsource.Source
	// Get returns the named source, or an error wrapping
	// pgsource.ErrUnknownSource.
	Get(name string) (*pgsource.Source, error)
}

// sourceKind is the only kind of source.
const sourceKind = "postgres"

// sourceBody describes a source: its tables as last introspected (at
// start-up or the last reload), its reachability as last checked, its
// limits and its connection pool.
type sourceBody struct {
	Name    string            `json:"name"`
	Kind    string            `json:"kind"`
	Schemas []string          `json:"schemas"`
	Tables  []sourceTableBody `json:"tables"`
	pgsource.Health
	Limits sourceLimits   `json:"limits"`
	Pool   pgsource.Stats `json:"pool"`
}

// sourceTableBody is a table; Profile is set by GET /sources/{name}.
type sourceTableBody struct {
	pgsource.Table
	Profile *pgsource.Profile `json:"profile,omitempty"`
}

type sourceLimits struct {
	StatementTimeout float64 `json:"statement_timeout"`
	MaxRows          int     `json:"max_rows"`
	MaxResultBytes   int64   `json:"max_result_bytes"`
	MaxConnections   int32   `json:"max_connections"`
}

// describeSource builds a source's body; last_error goes through the
// redactor, on top of the source's own scrubbing.
func describeSource(src *pgsource.Source, redactor *redact.Redactor) sourceBody {
	cfg := src.Config()
	tables := src.Tables()
	body := sourceBody{
		Name: src.Name(), Kind: sourceKind, Schemas: cfg.Schemas, Tables: make([]sourceTableBody, len(tables)),
		Health: redactHealth(src.Health(), redactor),
		Limits: sourceLimits{StatementTimeout: cfg.StatementTimeout.Seconds(), MaxRows: cfg.MaxRows,
			MaxResultBytes: cfg.MaxResultBytes, MaxConnections: cfg.MaxConnections},
		Pool: src.Stats(),
	}
	for i, t := range tables {
		body.Tables[i] = sourceTableBody{Table: t}
	}
	return body
}

func redactHealth(h pgsource.Health, redactor *redact.Redactor) pgsource.Health {
	if h.LastError != nil {
		msg := redactor.Scrub(*h.LastError)
		h.LastError = &msg
	}
	return h
}

// handleListSources serves GET /sources.
func handleListSources(sources Sources, redactor *redact.Redactor) echo.HandlerFunc {
	return func(c echo.Context) error {
		list := []sourceBody{}
		if sources != nil {
			for _, src := range sources.All() {
				if keyAllowsSource(c, src.Name()) { // a key sees only the sources it may use
					list = append(list, describeSource(src, redactor))
				}
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"sources": list})
	}
}

// lookupSource finds the route's source.
func lookupSource(c echo.Context, sources Sources) (*pgsource.Source, error) {
	if sources == nil {
		return nil, fmt.Errorf("%w: %q", pgsource.ErrUnknownSource, c.Param("name"))
	}
	return sources.Get(c.Param("name"))
}

// handleGetSource serves GET /sources/{name}: the source with each
// table's profile, read from the catalog's statistics (never a scan).
func handleGetSource(sources Sources, redactor *redact.Redactor) echo.HandlerFunc {
	return func(c echo.Context) error {
		src, err := lookupSource(c, sources)
		if err != nil {
			return err
		}
		body := describeSource(src, redactor)
		for i, t := range body.Tables {
			p, err := src.Profile(c.Request().Context(), t.QualifiedName())
			if err != nil {
				return err
			}
			body.Tables[i].Profile = &p
		}
		return c.JSON(http.StatusOK, body)
	}
}

// sourceRowsResponse is one page of a source table's rows.
type sourceRowsResponse struct {
	Source  string            `json:"source"`
	Schema  string            `json:"schema"`
	Table   string            `json:"table"`
	Columns []pgsource.Column `json:"columns"`
	Rows    [][]any           `json:"rows"`
	Offset  int64             `json:"offset"`
	Limit   int               `json:"limit"`
	// NextOffset is where the next page starts; null past the end.
	NextOffset *int64 `json:"next_offset"`
	// Truncated is set when the source's max_result_bytes cut the page
	// shorter than limit.
	Truncated bool `json:"truncated"`
}

// handleSourceRows serves GET /sources/{name}/rows?table=&limit=&offset=:
// a page of a table's rows, in its primary key's order when it has one.
// table ("name" or "schema.name") may be left out when the source has one
// table; limit defaults to 50 and may be at most the source's max_rows.
func handleSourceRows(sources Sources) echo.HandlerFunc {
	return func(c echo.Context) error {
		src, err := lookupSource(c, sources)
		if err != nil {
			return err
		}
		limit, offset, err := pageParams(c, src.Config().MaxRows, "the source's max_rows")
		if err != nil {
			return err
		}
		t, err := sourceTable(src, c.QueryParam("table"))
		if err != nil {
			return err
		}
		res, err := src.Rows(c.Request().Context(), t.QualifiedName(), limit, offset)
		if err != nil {
			return err
		}
		out := sourceRowsResponse{Source: src.Name(), Schema: t.Schema, Table: t.Name, Columns: res.Columns, Rows: res.Rows,
			Offset: offset, Limit: limit, Truncated: res.Truncated && len(res.Rows) < limit}
		if res.Truncated {
			next := offset + int64(len(res.Rows))
			out.NextOffset = &next
		}
		return c.JSON(http.StatusOK, out)
	}
}

// sourceTable resolves the rows route's table parameter among the
// source's tables: "schema.name", or a name no other schema's table has.
func sourceTable(src *pgsource.Source, name string) (pgsource.Table, error) {
	tables := src.Tables()
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.QualifiedName()
	}
	if name == "" {
		if len(tables) != 1 {
			return pgsource.Table{}, invalid("table", fmt.Sprintf("the source has %d tables (%s): name one with ?table=", len(tables), strings.Join(names, ", ")))
		}
		return tables[0], nil
	}
	var found []pgsource.Table
	for _, t := range tables {
		if t.QualifiedName() == name || t.Name == name {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return pgsource.Table{}, invalid("table", fmt.Sprintf("the source has no table named %q; its tables are %s", name, strings.Join(names, ", ")))
	default:
		return pgsource.Table{}, invalid("table", fmt.Sprintf("%q is a table of several schemas: name it as schema.table", name))
	}
}

// sourceQueryResponse is the result of the caller's own SQL on a source.
type sourceQueryResponse struct {
	Source string `json:"source"`
	pgsource.Result
}

// handleSourceQuery serves POST /sources/{name}/query: the caller's own
// SQL, no LLM involved, under the same guard as the planner's (one
// read-only query over the allowed tables, EXPLAIN checked, in a
// read-only transaction with the statement timeout).
func handleSourceQuery(sources Sources, limit int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decode[queryRequest](c, limit)
		if err != nil {
			return err
		}
		src, err := lookupSource(c, sources)
		if err != nil {
			return err
		}
		res, err := src.Query(c.Request().Context(), *in.SQL)
		if err != nil {
			return err
		}
		if err := stillWanted(c); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, sourceQueryResponse{Source: src.Name(), Result: res})
	}
}
