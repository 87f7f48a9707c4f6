// Package pgsource reaches a live PostgreSQL database as a read-only data
// source: it introspects the allowed tables, profiles them from the
// catalog, and runs untrusted, LLM-written SQL under a guard that the
// database itself enforces and that Nexus checks.
//
// It is an adapter: it imports neither the dataset store nor the config
// package. The wiring builds a Config from the config file's
// sources.<name> entry and converts Result, Table and Profile to what the
// agents use.
//
// # The guard
//
// Layers, each of which holds on its own:
//
//  1. The role. Open (and Refresh) refuse a role that is a superuser or a
//     member of one, has CREATEROLE, is a member of pg_read_server_files,
//     pg_write_server_files, pg_execute_server_program or
//     pg_write_all_data, may EXECUTE a server-file function (pg_read_file,
//     lo_import, ...), or, itself or through a role it may SET ROLE to,
//     holds INSERT, UPDATE, DELETE or TRUNCATE on a relation, UPDATE on a
//     sequence, or CREATE on an allowed schema, owns an allowed schema or
//     a relation or function in one, or is granted a write privilege by
//     default privileges (ALTER DEFAULT PRIVILEGES) for an allowed schema
//     or for all, itself, through a role or through PUBLIC. The error
//     names the privilege: `source "sales": role "x" holds INSERT on
//     public.orders; use a read-only role (see README)`.
//  2. The transaction. Every query runs in BEGIN READ ONLY, with SET LOCAL
//     statement_timeout and SET LOCAL search_path to the allowed schemas,
//     on connections whose default_transaction_read_only is on, and is
//     rolled back. A connection going back to the pool is reset (DISCARD
//     ALL), so that nothing a function took outlives its query (a session
//     advisory lock), and it reads no protocol message past twice
//     MaxResultBytes (8 MiB at least): a huge row fails the query as
//     query_too_expensive instead of being buffered, and its connection is
//     discarded.
//  3. The protocol. The SQL is sent through the extended protocol (pgx's
//     QueryExecModeExec, an unnamed prepared statement), whose Parse step
//     refuses more than one statement.
//  4. The plan. Before it runs, EXPLAIN (VERBOSE, FORMAT JSON) of the query
//     in the same transaction lists what it reads, and PostgreSQL's own
//     planner, not a parser of ours, decides what that is. A plan is
//     refused, with the reason named, when it
//     - reads a relation outside the allowed schemas and tables
//     (`SQL refused: reads pg_catalog.pg_authid, outside the allowed
//     schemas`); views are expanded by the planner, so a view is allowed
//     when what it reads is; a partition of an allowed table is allowed;
//     a plain inheritance child only when its allowed parent is read by
//     the same plan and none of the child's own columns, nor its whole
//     rows, are used; the relations of a Foreign Scan that pushes a join
//     or an aggregate down (postgres_fdw's "Relations") are checked too,
//     and a Foreign or Custom Scan that names none is refused;
//     - writes or locks (a ModifyTable node: a data-modifying WITH; a
//     LockRows node: FOR UPDATE/SHARE);
//     - scans a function in FROM other than a set-returning function over
//     values (generate_series, unnest, json(b)_array_elements, json(b)_each,
//     regexp_matches, ...: allowedSetFunctions) or a function of an allowed
//     schema, and the same in the select list (a ProjectSet node);
//     - calls, in any expression of any node (output, filters, join and
//     sort keys), a denied function: server files (pg_read_file,
//     pg_read_binary_file, pg_ls_*, pg_stat_file, adminpack's pg_file_*),
//     large objects (lo_*, loread, lowrite), dblink*, set_config, signals
//     (pg_terminate_backend, pg_cancel_backend), server control
//     (pg_reload_conf, pg_rotate_logfile, backups, WAL, replication slots),
//     advisory locks, pg_notify, nextval/setval, readers of the catalog and
//     of other sessions (pg_stat_get_*, pg_show_*, pg_get_*, to_reg*), and
//     the functions that read whole tables or run SQL given as text, which
//     EXPLAIN cannot see into (query_to_xml, table_to_xml and their
//     families: *_to_xml*, ts_stat, ts_rewrite); any function qualified by
//     a schema that is neither allowed nor pg_catalog (an extension's); or
//     a function of an allowed schema that is VOLATILE or SECURITY
//     DEFINER. current_setting is allowed; pg_sleep is allowed, bounded by
//     the statement timeout.
//  5. The text. Before anything is sent, the SQL must be one statement
//     whose first keyword is SELECT, WITH, VALUES or TABLE, without INTO
//     (SELECT ... INTO creates a table), which names the problem early
//     (COPY, SET ROLE, DELETE). And, since planning itself evaluates a
//     stable function whose arguments are constants (SELECT 1 LIMIT
//     table_to_xml('secret.cards', ...)::text::int would read the table
//     while EXPLAIN plans it, and its error would show the rows), what the
//     plan check refuses must not reach the planner: the text may not call
//     a denied function (in any case or quoting), call a function or an
//     operator of another schema, name pg_catalog.<denied>, or use a U&
//     escape or an OID alias type (regclass, ...), which could hide a
//     name; and, checked against the catalog before EXPLAIN, no qualifier
//     may name a schema outside the allowed ones and no call may name a
//     VOLATILE or SECURITY DEFINER function of an allowed schema.
//
// EXPLAIN checks privileges as the query would, so for a read-only role
// the database often refuses first (`SQL refused by the database:
// permission denied for function pg_read_file`); both are KindUnsafeSQL.
//
// Rows are converted while streaming (see values.go for the JSON mapping)
// and capped at Config.MaxRows and Config.MaxResultBytes: at a cap reading
// stops and the statement is cancelled on the server. A cancelled or
// expired context sends a cancel request too.
//
// # A read-only role
//
//	CREATE ROLE nexus_reader LOGIN PASSWORD '...';
//	GRANT CONNECT ON DATABASE sales TO nexus_reader;
//	GRANT USAGE ON SCHEMA public TO nexus_reader;
//	GRANT SELECT ON ALL TABLES IN SCHEMA public TO nexus_reader;
//	ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public
//	    GRANT SELECT ON TABLES TO nexus_reader;
//
// and nothing else: no membership in other roles, and PostgreSQL 15's
// default of no CREATE on public for PUBLIC (on older versions, REVOKE
// CREATE ON SCHEMA public FROM PUBLIC).
//
// # Reachability, several sources, metrics
//
// Health is what the last check found: Ping (a prober's, and Open's)
// records the latency, and every call that fails with KindUnavailable marks
// the source unreachable at once (one that succeeds, reachable again). A
// Set holds the configured sources by name, pings them every interval and
// closes them. Config.OnQuery hears every Query's Outcome and duration,
// for the caller's metrics: this package imports no metrics library.
//
// # Errors and secrets
//
// Every error a caller may show is an *Error with a Kind (unsafe_sql,
// sql_error, timeout, query_too_expensive, unavailable, unsafe_role,
// invalid_config, not_found) and a Message that never holds the DSN or its
// password (URLs are cut to scheme://host, key=value passwords masked) nor
// a server file path. A sql_error's message, which goes to the LLM and the
// client, holds no value PostgreSQL quoted that may be data (`value "…" is
// out of range for type integer`); one raised while planning keeps only
// its message and SQLSTATE. Logs (log/slog) never carry the DSN either.
package pgsource
