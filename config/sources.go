package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// SourceKindPostgres is the one kind of source: a PostgreSQL database.
const SourceKindPostgres = "postgres"

// DefaultSourceMaxConnections is a source's pool size when max_connections
// is 0.
const DefaultSourceMaxConnections = 4

// DefaultSourceSchema is the schema a source reads when schemas is empty.
const DefaultSourceSchema = "public"

// sourceName is what a source's name under sources must match: the rule of
// a dataset's table names.
var sourceName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// envVarName is what dsn_env must match.
var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// sourceTable is an entry of a source's tables allow-list: "table" or
// "schema.table", as the catalog spells the names.
var sourceTable = regexp.MustCompile(`^[^.\s"]+(\.[^.\s"]+)?$`)

// Sources maps a source's name to its settings.
type Sources map[string]Source

// Source is one live database, read through a read-only role. The DSN
// itself never appears in the file: DSNEnv names the environment variable
// that holds it. Zero limits take the datasets section's values (see
// Effective).
type Source struct {
	// Kind is the engine; only "postgres".
	Kind string `json:"kind"`
	// DSNEnv names the environment variable holding the connection string.
	// Start-up fails when it is unset or its DSN does not work.
	DSNEnv string `json:"dsn_env"`
	// Schemas a query may read, also its search_path; default ["public"].
	Schemas []string `json:"schemas"`
	// Tables is an optional allow-list within Schemas: "table" or
	// "schema.table". Empty allows every table of the Schemas.
	Tables []string `json:"tables"`
	// StatementTimeout bounds each statement on the server; 0 means
	// datasets.statement_timeout.
	StatementTimeout Seconds `json:"statement_timeout"`
	// MaxRows caps the rows a query returns; 0 means datasets.max_rows.
	MaxRows int `json:"max_rows"`
	// MaxResultBytes caps the size of a query's rows; 0 means
	// datasets.max_result_bytes.
	MaxResultBytes int64 `json:"max_result_bytes"`
	// MaxConnections caps the source's connection pool; 0 means 4.
	MaxConnections int `json:"max_connections"`
}

// Effective fills a source's zero values: schemas ["public"], the limits
// from d (the datasets section), max_connections 4.
func (s Source) Effective(d Datasets) Source {
	if len(s.Schemas) == 0 {
		s.Schemas = []string{DefaultSourceSchema}
	}
	s.Schemas = slices.Clone(s.Schemas)
	s.Tables = slices.Clone(s.Tables)
	if s.StatementTimeout == 0 {
		s.StatementTimeout = d.StatementTimeout
	}
	if s.MaxRows == 0 {
		s.MaxRows = d.MaxRows
	}
	if s.MaxResultBytes == 0 {
		s.MaxResultBytes = d.MaxResultBytes
	}
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultSourceMaxConnections
	}
	return s
}

// EffectiveSources returns every source with its zero values filled in
// (Source.Effective over c.Datasets).
func (c Config) EffectiveSources() map[string]Source {
	out := make(map[string]Source, len(c.Sources))
	for name, s := range c.Sources {
		out[name] = s.Effective(c.Datasets)
	}
	return out
}

// UnmarshalJSON decodes sources, naming the path of a value of the wrong
// type. It replaces the sources: none has a default. Unknown keys inside a
// source are left to Parse's key check, which reports them with their
// paths.
func (ss *Sources) UnmarshalJSON(data []byte) error {
	const path = "sources"
	if isJSONNull(data) {
		*ss = nil
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return &pathError{path: path, msg: "must be an object"}
	}
	out := make(Sources, len(raw))
	for _, name := range sortedKeys(raw) {
		var s Source
		if err := json.Unmarshal(raw[name], &s); err != nil {
			return typeErrorAt(path+"."+name, err, "an object")
		}
		out[name] = s
	}
	*ss = out
	return nil
}

// validate checks every source; the environment variable and the DSN are
// checked at start-up, where the database is reached.
func (ss Sources) validate() []error {
	var errs []error
	for _, name := range sortedKeys(ss) {
		p := "sources." + name
		bad := func(key, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s.%s: %s", p, key, fmt.Sprintf(format, args...)))
		}
		if !sourceName.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: a source name must match %s", p, sourceName))
		}
		s := ss[name]
		switch s.Kind {
		case SourceKindPostgres:
		case "":
			bad("kind", "required (%q)", SourceKindPostgres)
		default:
			bad("kind", "must be %q, got %q", SourceKindPostgres, s.Kind)
		}
		switch {
		case s.DSNEnv == "":
			bad("dsn_env", "must name the environment variable that holds the DSN")
		case !envVarName.MatchString(s.DSNEnv):
			bad("dsn_env", "must be an environment variable name (the DSN itself belongs in the environment), got %d characters", len(s.DSNEnv))
		}
		seen := map[string]bool{}
		for i, sch := range s.Schemas {
			switch {
			case strings.TrimSpace(sch) == "":
				bad(fmt.Sprintf("schemas[%d]", i), "must not be blank")
			case seen[sch]:
				bad(fmt.Sprintf("schemas[%d]", i), "duplicate schema %q", sch)
			}
			seen[sch] = true
		}
		schemas := s.Effective(Datasets{}).Schemas
		for i, t := range s.Tables {
			if !sourceTable.MatchString(t) {
				bad(fmt.Sprintf("tables[%d]", i), "must be \"table\" or \"schema.table\", got %q", t)
				continue
			}
			if sch, _, ok := strings.Cut(t, "."); ok && !slices.Contains(schemas, sch) {
				bad(fmt.Sprintf("tables[%d]", i), "schema %q is not among the source's schemas (%s)", sch, strings.Join(schemas, ", "))
			}
		}
		if st := s.StatementTimeout; !(st == 0 || (st >= minSeconds && st <= maxSeconds)) {
			bad("statement_timeout", "must be 0 (datasets.statement_timeout) or between 0.001 and 86400 seconds, got %v", float64(st))
		}
		if s.MaxRows < 0 {
			bad("max_rows", "must be >= 0 (0: datasets.max_rows), got %d", s.MaxRows)
		}
		if s.MaxResultBytes < 0 {
			bad("max_result_bytes", "must be >= 0 (0: datasets.max_result_bytes), got %d", s.MaxResultBytes)
		}
		if s.MaxConnections < 0 || s.MaxConnections > 1000 {
			bad("max_connections", "must be between 0 (4) and 1000, got %d", s.MaxConnections)
		}
	}
	return errs
}
