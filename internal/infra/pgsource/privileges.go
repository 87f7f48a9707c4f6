package pgsource

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// escapeRoles are the predefined roles whose members can leave the
// database (read or write server files, run programs) or write every
// table. Membership counts whether inherited or not: a member may SET ROLE.
var escapeRoles = []string{"pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_write_all_data"}

// fileFunctions read or write server files. PostgreSQL revokes EXECUTE on
// them from PUBLIC; a role granted it can read any file the server can.
var fileFunctions = []string{"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
	"lo_import", "lo_export", "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls"}

// roleAdvice ends every refusal of a role.
const roleAdvice = "; use a read-only role (see README)"

// checkRole refuses a role that can write or escape. It checks, in order,
// and reports the first finding (with a count of the others):
//
//   - the role is a superuser, or a member of a superuser role;
//   - it has CREATEROLE (which can grant itself any predefined role);
//   - it is a member of pg_read_server_files, pg_write_server_files,
//     pg_execute_server_program or pg_write_all_data;
//   - it, or a role it is a member of, may EXECUTE a function that reads or
//     writes server files (pg_read_file, lo_import, ...: fileFunctions);
//   - it, or a role it is a member of (it could SET ROLE to it), holds
//     INSERT, UPDATE, DELETE or TRUNCATE on a table, view or foreign table,
//     UPDATE on a sequence, of an allowed schema (column grants included),
//     or CREATE on an allowed schema; owns an allowed schema, or a
//     relation or function in one; or is granted a write privilege by
//     default privileges for an allowed schema or for all (writePrivileges).
//
// It returns the role's name.
func (s *Source) checkRole(ctx context.Context, conn *pgx.Conn) (string, error) {
	var role string
	var super, createRole bool
	var superRoles, members []string
	err := conn.QueryRow(ctx, `
SELECT r.rolname, r.rolsuper, r.rolcreaterole,
	ARRAY(SELECT o.rolname FROM pg_catalog.pg_roles o
		WHERE o.rolsuper AND o.oid <> r.oid AND pg_has_role(r.oid, o.oid, 'MEMBER') ORDER BY o.rolname),
	ARRAY(SELECT p.rolname FROM pg_catalog.pg_roles p
		WHERE p.rolname = ANY($1) AND pg_has_role(r.oid, p.oid, 'MEMBER') ORDER BY array_position($1, p.rolname::text))
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`, escapeRoles).Scan(&role, &super, &createRole, &superRoles, &members)
	if err != nil {
		return "", s.classify(ctx, err)
	}
	var findings []string
	if super {
		findings = append(findings, fmt.Sprintf("role %q is a superuser", role))
	}
	for _, r := range superRoles {
		findings = append(findings, fmt.Sprintf("role %q is a member of superuser role %q", role, r))
	}
	if createRole {
		findings = append(findings, fmt.Sprintf("role %q has CREATEROLE", role))
	}
	for _, m := range members {
		findings = append(findings, fmt.Sprintf("role %q is a member of %s", role, m))
	}
	if len(findings) == 0 {
		var fns []string
		if err := conn.QueryRow(ctx, `
SELECT ARRAY(SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p
	WHERE p.proname = ANY($1) AND EXISTS (SELECT FROM pg_catalog.pg_roles m
		WHERE pg_has_role(current_user, m.oid, 'MEMBER') AND has_function_privilege(m.oid, p.oid, 'EXECUTE'))
	ORDER BY 1)`, fileFunctions).Scan(&fns); err != nil {
			return "", s.classify(ctx, err)
		}
		for _, f := range fns {
			findings = append(findings, fmt.Sprintf("role %q can EXECUTE %s", role, f))
		}
	}
	if len(findings) == 0 {
		writes, err := s.writePrivileges(ctx, conn, role)
		if err != nil {
			return "", err
		}
		findings = append(findings, writes...)
	}
	if len(findings) == 0 {
		return role, nil
	}
	msg := findings[0]
	if n := len(findings) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more: %s)", n, strings.Join(findings[1:min(len(findings), 4)], "; "))
		if n > 3 {
			msg = strings.TrimSuffix(msg, ")") + "; ...)"
		}
	}
	return "", s.errorf(KindUnsafeRole, "%s%s", msg, roleAdvice)
}

// writePrivileges lists, at most 20, what lets the role, or a role it is a
// member of (it could SET ROLE to it), write in the allowed schemas:
//
//   - CREATE on an allowed schema;
//   - INSERT, UPDATE, DELETE or TRUNCATE on a relation of an allowed
//     schema (column grants included), UPDATE on a sequence;
//   - ownership of an allowed schema, of a relation of any kind in one,
//     or of a function in one: an owner may grant itself any privilege
//     (revoking its own first proves nothing), alter or drop the object,
//     and a function's body runs in every query that calls it;
//   - default privileges (pg_default_acl) that grant INSERT, UPDATE,
//     DELETE or TRUNCATE on tables, or UPDATE on sequences, to it, to a
//     role it is a member of, or to PUBLIC, for an allowed schema or for
//     every schema: the next table created there would be writable. A
//     role's default grant to itself, for what it creates, is left out:
//     creating needs CREATE, checked above.
func (s *Source) writePrivileges(ctx context.Context, conn *pgx.Conn, role string) ([]string, error) {
	rows, err := conn.Query(ctx, `
WITH me AS (
	SELECT m.oid, m.rolname FROM pg_catalog.pg_roles m
	WHERE pg_has_role(current_user, m.oid, 'MEMBER')
), schemas AS (
	SELECT n.oid, n.nspname, n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1)
)
SELECT 'grant' AS how, me.rolname, 'CREATE', 'schema ' || quote_ident(sc.nspname), 0 AS ord
FROM me CROSS JOIN schemas sc
WHERE has_schema_privilege(me.oid, sc.oid, 'CREATE')
UNION ALL
SELECT 'grant', me.rolname, p.priv, quote_ident(sc.nspname) || '.' || quote_ident(c.relname), p.ord
FROM me CROSS JOIN schemas sc
JOIN pg_catalog.pg_class c ON c.relnamespace = sc.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
CROSS JOIN (VALUES ('INSERT', 1), ('UPDATE', 2), ('DELETE', 3), ('TRUNCATE', 4)) AS p(priv, ord)
WHERE CASE WHEN p.priv IN ('INSERT', 'UPDATE') THEN has_any_column_privilege(me.oid, c.oid, p.priv)
	ELSE has_table_privilege(me.oid, c.oid, p.priv) END
UNION ALL
SELECT 'grant', me.rolname, 'UPDATE', 'sequence ' || quote_ident(sc.nspname) || '.' || quote_ident(c.relname), 5
FROM me CROSS JOIN schemas sc
JOIN pg_catalog.pg_class c ON c.relnamespace = sc.oid AND c.relkind = 'S'
WHERE has_sequence_privilege(me.oid, c.oid, 'UPDATE')
UNION ALL
SELECT 'owner', me.rolname, '', 'schema ' || quote_ident(sc.nspname), 6
FROM schemas sc JOIN me ON me.oid = sc.nspowner
UNION ALL
SELECT 'owner', me.rolname, '', CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'v' THEN 'view '
		WHEN 'm' THEN 'materialized view ' WHEN 'f' THEN 'foreign table ' WHEN 'S' THEN 'sequence '
		WHEN 'i' THEN 'index ' WHEN 'I' THEN 'index ' WHEN 'c' THEN 'type ' ELSE 'relation ' END
	|| quote_ident(sc.nspname) || '.' || quote_ident(c.relname), 7
FROM schemas sc JOIN pg_catalog.pg_class c ON c.relnamespace = sc.oid JOIN me ON me.oid = c.relowner
UNION ALL
SELECT 'owner', me.rolname, '', 'function ' || quote_ident(sc.nspname) || '.' || quote_ident(p.proname)
	|| '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', 8
FROM schemas sc JOIN pg_catalog.pg_proc p ON p.pronamespace = sc.oid JOIN me ON me.oid = p.proowner
UNION ALL
SELECT 'default', coalesce(g.rolname, 'PUBLIC'), a.privilege_type,
	CASE d.defaclobjtype WHEN 'S' THEN 'sequences' ELSE 'tables' END || ' that role ' || quote_ident(o.rolname)
	|| ' creates ' || coalesce('in schema ' || quote_ident(n.nspname), 'in any schema'), 9
FROM pg_catalog.pg_default_acl d
CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a
JOIN pg_catalog.pg_roles o ON o.oid = d.defaclrole
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
LEFT JOIN me g ON g.oid = a.grantee
WHERE (d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM schemas))
	AND (a.grantee = 0 OR g.oid IS NOT NULL) AND a.grantee <> d.defaclrole
	AND ((d.defaclobjtype = 'r' AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'))
		OR (d.defaclobjtype = 'S' AND a.privilege_type = 'UPDATE'))
ORDER BY 5, 4, 2, 3
LIMIT 20`, s.cfg.Schemas)
	if err != nil {
		return nil, s.classify(ctx, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var how, holder, priv, object string
		var ord int
		if err := rows.Scan(&how, &holder, &priv, &object, &ord); err != nil {
			return nil, s.classify(ctx, err)
		}
		var f string
		switch how {
		case "owner":
			f = fmt.Sprintf("role %q owns %s", role, object)
		case "default":
			f = fmt.Sprintf("role %q is granted %s by default privileges on %s", role, priv, object)
		default:
			f = fmt.Sprintf("role %q holds %s on %s", role, priv, object)
		}
		switch {
		case how == "default" && holder == "PUBLIC":
			f += " (through PUBLIC)"
		case holder != role:
			f += fmt.Sprintf(" (through role %q)", holder)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, s.classify(ctx, err)
	}
	return out, nil
}
