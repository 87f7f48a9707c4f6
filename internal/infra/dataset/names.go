package dataset

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DataAlias is the name under which a dataset of exactly one table (and
// inline data) can always be read, whatever the table's own name: the
// name every dataset had before datasets held several tables.
const DataAlias = "data"

// MaxTables caps the tables of one dataset, so that a request of many tiny
// files cannot make a planner prompt or an ingest job without end.
const MaxTables = 64

// reservedPrefixes start the names DuckDB resolves to its system catalog
// without a schema (duckdb_tables, pg_settings, sqlite_master,
// pragma_table_info): the guard refuses them before its allow-list, so a
// table with such a name could never be read.
var reservedPrefixes = []string{"duckdb_", "pg_", "sqlite_", "pragma_"}

// reservedNames are schema names of the system catalog.
var reservedNames = []string{"information_schema", "pg_catalog"}

// TableName derives a table name from an uploaded file's name: the base
// name without its extension, lower-cased, with every character outside
// [a-z0-9_] replaced by '_' and a "t_" prefix when it starts with a digit
// ("2024 Sales.csv" -> "t_2024_sales"). Leading and trailing dots and
// spaces are dropped first, so ".secret.csv" gives "secret". It returns ""
// when nothing is left ("../.csv"). It does not check reserved names; see
// checkTableName.
func TableName(filename string) string {
	base := cleanFilename(filename)
	base = strings.Trim(strings.TrimSuffix(base, filepath.Ext(base)), " .")
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		name = "t_" + name
	}
	return name
}

// reservedName says why name cannot be a table's name, or "". data is
// handled by the callers: it is allowed only as the sole table of a new
// dataset.
func reservedName(name string) string {
	for _, n := range reservedNames {
		if name == n {
			return fmt.Sprintf("the table name %q is reserved: it names DuckDB's system catalog; rename the file", name)
		}
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Sprintf("the table name %q is reserved: names starting with %s belong to DuckDB's system catalog; rename the file", name, p)
		}
	}
	return ""
}

// fileLabel names an uploaded file in a message: its cleaned name, or its
// position when it had none.
func fileLabel(i int, clean string) string {
	if clean == "" {
		return fmt.Sprintf("file #%d (no file name)", i+1)
	}
	return fmt.Sprintf("file %q", clean)
}
