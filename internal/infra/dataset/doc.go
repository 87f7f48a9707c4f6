// Package dataset stores uploaded tabular files (CSV, TSV, JSON, NDJSON,
// Parquet, XLSX) as one embedded DuckDB database per dataset, one table per
// file, profiles them once at upload, and runs untrusted, LLM-written SQL
// against them in a sandbox.
//
// Layout of Config.Dir (only these names are ever touched, so the directory
// can be shared with other components):
//
//	ds_<16 hex>.duckdb     the dataset: one table per uploaded file (see
//	                       TableName), and a view named data when there
//	                       is exactly one (datasets stored before tables
//	                       had names hold one table named data)
//	ds_<16 hex>.g<n>.duckdb
//	                       generation n of the dataset, written by
//	                       AddTables beside the one before it; the
//	                       metadata names the current one, and older
//	                       ones are removed once no Session uses them
//	ds_<16 hex>.json       its metadata and profiles; a dataset exists
//	                       only when this file exists (it is written
//	                       last, and replaced by an atomic rename)
//	.tmp-dataset-*         in-flight uploads and inline loads; removed on
//	                       failure and by Open on start-up
//
// A database file is never changed once its metadata names it, so a
// worker's cached read-only handle can never see a table half added, and
// a Session keeps the generation it opened until it closes.
//
// The sandbox has two layers, and both must hold on their own:
//
//  1. A guard asks DuckDB's own parser (json_serialize_sql) whether the text
//     is exactly one SELECT, reading only the dataset's own tables. The user's text is never prepared or run before
//     that, because duckdb-go executes every statement but the last while
//     preparing.
//  2. The SQL runs on a database where enable_external_access=false and
//     lock_configuration=true (and, for stored datasets, read-only), so even
//     a SELECT cannot read or write files, load extensions or change
//     settings.
//
// Both layers, and every other DuckDB job (loading uploads and inline
// data, profiling), run in worker processes that a supervisor (pool.go)
// kills past their deadline or memory ceiling, because some DuckDB work
// cannot be interrupted from Go and some input crashes it (worker.go,
// wire.go). The server process itself never opens a database.
//
// Every error a caller may show to a user or an LLM is an *Error whose
// Message has server paths scrubbed.
package dataset
