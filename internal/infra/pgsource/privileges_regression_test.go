package pgsource_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// An owner can grant itself what it revoked, alter or drop what it owns,
// and a function it owns runs in the queries that call it; default
// privileges make the next table created in an allowed schema writable.
// Each refuses Open, named in the error, and is found by Refresh.
func TestOpenShouldRefuseOwnersAndDefaultWritePrivileges(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	sch := ident(schema)
	cases := []struct {
		name, setup, undo, want string
	}{
		{"owns a table", "CREATE TABLE %[2]s.owned (id int); ALTER TABLE %[2]s.owned OWNER TO %[1]s; REVOKE ALL ON %[2]s.owned FROM %[1]s", "",
			"owns table " + schema + ".owned"},
		{"owns a view", "CREATE VIEW %[2]s.owned_v AS SELECT 1 AS x; ALTER VIEW %[2]s.owned_v OWNER TO %[1]s; REVOKE ALL ON %[2]s.owned_v FROM %[1]s", "",
			"owns view " + schema + ".owned_v"},
		{"owns a sequence", "CREATE SEQUENCE %[2]s.owned_s; ALTER SEQUENCE %[2]s.owned_s OWNER TO %[1]s; REVOKE ALL ON %[2]s.owned_s FROM %[1]s", "",
			"owns sequence " + schema + ".owned_s"},
		{"owns the schema", "ALTER SCHEMA %[2]s OWNER TO %[1]s; REVOKE CREATE ON SCHEMA %[2]s FROM %[1]s", "ALTER SCHEMA %[2]s OWNER TO nexus_admin",
			"owns schema " + schema},
		{"owns a function", "CREATE FUNCTION %[2]s.owned_f(int) RETURNS int LANGUAGE sql AS 'SELECT 1'; ALTER FUNCTION %[2]s.owned_f(int) OWNER TO %[1]s", "",
			"owns function " + schema + ".owned_f(integer)"},
		{"default privileges in the schema",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s GRANT INSERT ON TABLES TO %[1]s",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s REVOKE ALL ON TABLES FROM %[1]s",
			"is granted INSERT by default privileges on tables that role nexus_admin creates in schema " + schema},
		{"default privileges in every schema",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin GRANT TRUNCATE ON TABLES TO %[1]s",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin REVOKE ALL ON TABLES FROM %[1]s",
			"is granted TRUNCATE by default privileges on tables that role nexus_admin creates in any schema"},
		{"default privileges on sequences",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s GRANT UPDATE ON SEQUENCES TO %[1]s",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s REVOKE ALL ON SEQUENCES FROM %[1]s",
			"is granted UPDATE by default privileges on sequences that role nexus_admin creates in schema " + schema},
		{"default privileges to PUBLIC",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s GRANT DELETE ON TABLES TO PUBLIC",
			"ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s REVOKE ALL ON TABLES FROM PUBLIC",
			"is granted DELETE by default privileges on tables that role nexus_admin creates in schema " + schema + " (through PUBLIC)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			role, roleDSN := testRole(t, admin)
			if tc.undo != "" {
				// Before testRole's cleanup drops the role (cleanups run
				// last in, first out).
				t.Cleanup(func() { _, _ = admin.Exec(context.Background(), fmt.Sprintf(tc.undo, role, sch)) })
			}
			execLocked(t, admin, fmt.Sprintf("GRANT USAGE ON SCHEMA %[2]s TO %[1]s; "+tc.setup, role, sch))
			err := openErr(t, pgsource.Config{Name: "s", DSN: roleDSN, Schemas: []string{schema}})
			requireKind(t, err, pgsource.KindUnsafeRole, fmt.Sprintf("role %q ", role), tc.want)
		})
	}
	t.Run("through a group", func(t *testing.T) {
		role, roleDSN := testRole(t, admin)
		group := "nexus_g_" + randomSuffix()
		execLocked(t, admin, fmt.Sprintf(`GRANT USAGE ON SCHEMA %[2]s TO %[1]s; CREATE ROLE %[3]s NOLOGIN; GRANT %[3]s TO %[1]s;
ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s GRANT UPDATE ON TABLES TO %[3]s`, role, sch, group))
		t.Cleanup(func() {
			_, _ = admin.Exec(context.Background(), fmt.Sprintf(`ALTER DEFAULT PRIVILEGES FOR ROLE nexus_admin IN SCHEMA %[2]s REVOKE ALL ON TABLES FROM %[1]s;
DROP OWNED BY %[1]s; DROP ROLE %[1]s`, group, sch))
		})
		err := openErr(t, pgsource.Config{Name: "s", DSN: roleDSN, Schemas: []string{schema}})
		requireKind(t, err, pgsource.KindUnsafeRole, "is granted UPDATE by default privileges", fmt.Sprintf("(through role %q)", group))
	})
	t.Run("found by Refresh", func(t *testing.T) {
		role, roleDSN := testRole(t, admin)
		execLocked(t, admin, fmt.Sprintf("GRANT USAGE ON SCHEMA %[2]s TO %[1]s", role, sch))
		s := openRO(t, pgsource.Config{DSN: roleDSN, Schemas: []string{schema}})
		execLocked(t, admin, fmt.Sprintf("CREATE TABLE %[2]s.later_owned (id int); ALTER TABLE %[2]s.later_owned OWNER TO %[1]s; REVOKE ALL ON %[2]s.later_owned FROM %[1]s", role, sch))
		requireKind(t, s.Refresh(context.Background()), pgsource.KindUnsafeRole, "owns table "+schema+".later_owned")
		_, err := s.Query(context.Background(), "SELECT 1")
		requireKind(t, err, pgsource.KindUnsafeRole, "owns table")
	})
	// A role's default grant to itself, for what it would create, is no
	// finding: it cannot create in the allowed schema.
	t.Run("its own defaults", func(t *testing.T) {
		role, roleDSN := testRole(t, admin)
		execLocked(t, admin, fmt.Sprintf(`GRANT USAGE ON SCHEMA %[2]s TO %[1]s; ALTER DEFAULT PRIVILEGES FOR ROLE %[1]s GRANT SELECT ON TABLES TO nexus_ro`, role, sch))
		openRO(t, pgsource.Config{DSN: roleDSN, Schemas: []string{schema}})
	})
}
