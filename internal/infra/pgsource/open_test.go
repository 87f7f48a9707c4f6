package pgsource_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// openErr opens a source that must fail, and returns the error.
func openErr(t *testing.T, cfg pgsource.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := pgsource.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		s.Close()
		t.Fatalf("Open(%s) succeeded, want an error", cfg.Name)
	}
	return err
}

// requireNoSecret fails if the error text holds the DSN or its password.
func requireNoSecret(t *testing.T, err error, dsnText, password string) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err)} {
		if strings.Contains(text, dsnText) || (password != "" && strings.Contains(text, password)) {
			t.Fatalf("error leaks the DSN or password: %s", text)
		}
	}
}

func TestOpenShouldRefuseASuperuserNamingThePrivilege(t *testing.T) {
	t.Parallel()
	admin := dsn(t, envAdminDSN)
	err := openErr(t, pgsource.Config{Name: "sales", DSN: admin})
	e := requireKind(t, err, pgsource.KindUnsafeRole, `role "nexus_admin" is a superuser`, "use a read-only role (see README)")
	if got := err.Error(); !strings.HasPrefix(got, `source "sales": role "nexus_admin" is a superuser`) {
		t.Fatalf("Error() = %q", got)
	}
	u, _ := url.Parse(admin)
	pw, _ := u.User.Password()
	requireNoSecret(t, e, admin, pw)
}

func TestOpenShouldRefuseARoleThatCanInsert(t *testing.T) {
	t.Parallel()
	err := openErr(t, pgsource.Config{Name: "sales", DSN: dsn(t, envWriterDSN)})
	requireKind(t, err, pgsource.KindUnsafeRole, `role "nexus_writer" holds INSERT on public.nexus_writer_target`, "use a read-only role")
}

// testRole creates a login role with a random name and password that may
// connect to the test database, dropped when the test ends. It returns the
// role's name and a DSN for it.
func testRole(t *testing.T, admin *pgx.Conn) (string, string) {
	t.Helper()
	role := "nexus_t_" + randomSuffix()
	password := "pw_" + randomSuffix()
	execLocked(t, admin, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT CONNECT ON DATABASE nexus_test TO %[1]s;
GRANT USAGE ON SCHEMA public TO %[1]s`, role, password))
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = admin.Exec(ctx, fmt.Sprintf(`BEGIN; SELECT pg_advisory_xact_lock(7413520); DROP OWNED BY %[1]s; DROP ROLE %[1]s; COMMIT`, role))
	})
	u, err := url.Parse(dsn(t, envRODSN))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	return role, u.String()
}

// Each privilege that lets a role write or leave the database refuses
// Open, named in the error; given to a role the DSN's role belongs to, it
// refuses as well.
func TestOpenShouldRefuseEveryEscapeOrWritePrivilege(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %s (id int); CREATE SEQUENCE %s`, ident(schema, "orders"), ident(schema, "seq")))
	cases := []struct {
		name, grant, want string
	}{
		{"read server files", "GRANT pg_read_server_files TO %s", "is a member of pg_read_server_files"},
		{"write server files", "GRANT pg_write_server_files TO %s", "is a member of pg_write_server_files"},
		{"execute server program", "GRANT pg_execute_server_program TO %s", "is a member of pg_execute_server_program"},
		{"write all data", "GRANT pg_write_all_data TO %s", "is a member of pg_write_all_data"},
		{"execute pg_read_file", "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO %s", "can EXECUTE pg_read_file"},
		{"createrole", "ALTER ROLE %s CREATEROLE", "has CREATEROLE"},
		{"update", "GRANT UPDATE ON " + ident(schema, "orders") + " TO %s", "holds UPDATE on " + schema + ".orders"},
		{"delete", "GRANT DELETE ON " + ident(schema, "orders") + " TO %s", "holds DELETE on " + schema + ".orders"},
		{"truncate", "GRANT TRUNCATE ON " + ident(schema, "orders") + " TO %s", "holds TRUNCATE on " + schema + ".orders"},
		{"column insert", "GRANT INSERT (id) ON " + ident(schema, "orders") + " TO %s", "holds INSERT on " + schema + ".orders"},
		{"sequence update", "GRANT UPDATE ON SEQUENCE " + ident(schema, "seq") + " TO %s", "holds UPDATE on sequence " + schema + ".seq"},
		{"create on schema", "GRANT CREATE ON SCHEMA " + ident(schema) + " TO %s", "holds CREATE on schema " + schema},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			role, roleDSN := testRole(t, admin)
			execLocked(t, admin, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s; ", ident(schema), role)+fmt.Sprintf(tc.grant, role))
			err := openErr(t, pgsource.Config{Name: "s", DSN: roleDSN, Schemas: []string{schema}})
			requireKind(t, err, pgsource.KindUnsafeRole, fmt.Sprintf("role %q ", role), tc.want)
		})
	}
	t.Run("inherited through another role", func(t *testing.T) {
		role, roleDSN := testRole(t, admin)
		group := "nexus_t_group_" + randomSuffix()
		execLocked(t, admin, fmt.Sprintf("CREATE ROLE %[1]s NOLOGIN; GRANT pg_read_server_files TO %[1]s; GRANT %[1]s TO %[2]s", group, role))
		t.Cleanup(func() {
			_, _ = admin.Exec(context.Background(), "BEGIN; SELECT pg_advisory_xact_lock(7413520); DROP ROLE "+group+"; COMMIT")
		})
		err := openErr(t, pgsource.Config{Name: "s", DSN: roleDSN})
		requireKind(t, err, pgsource.KindUnsafeRole, "is a member of pg_read_server_files")
	})
	t.Run("write privilege of a role it can SET ROLE to", func(t *testing.T) {
		role, roleDSN := testRole(t, admin)
		group := "nexus_t_group_" + randomSuffix()
		execLocked(t, admin, fmt.Sprintf("ALTER ROLE %[2]s NOINHERIT; CREATE ROLE %[1]s NOLOGIN; GRANT USAGE ON SCHEMA %[3]s TO %[2]s; GRANT INSERT ON %[4]s TO %[1]s; GRANT %[1]s TO %[2]s",
			group, role, ident(schema), ident(schema, "orders")))
		t.Cleanup(func() {
			_, _ = admin.Exec(context.Background(), "BEGIN; SELECT pg_advisory_xact_lock(7413520); DROP OWNED BY "+group+"; DROP ROLE "+group+"; COMMIT")
		})
		err := openErr(t, pgsource.Config{Name: "s", DSN: roleDSN, Schemas: []string{schema}})
		requireKind(t, err, pgsource.KindUnsafeRole, "holds INSERT on "+schema+".orders", fmt.Sprintf("(through role %q)", group))
	})
	t.Run("a read-only role is accepted", func(t *testing.T) {
		role, roleDSN := testRole(t, admin)
		execLocked(t, admin, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON %s TO %[2]s", ident(schema), role, ident(schema, "orders")))
		s := openRO(t, pgsource.Config{DSN: roleDSN, Schemas: []string{schema}})
		if got := s.Tables(); len(got) != 1 || got[0].Name != "orders" {
			t.Fatalf("Tables() = %+v", got)
		}
	})
}

// A privilege granted after Open is found by Refresh, and queries are
// refused until it is revoked.
func TestRefreshShouldRefuseARoleThatGainedAWritePrivilege(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	schema := fixtureSchema(t, admin)
	exec(t, admin, fmt.Sprintf(`CREATE TABLE %s (id int)`, ident(schema, "t")))
	role, roleDSN := testRole(t, admin)
	execLocked(t, admin, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON %s TO %[2]s", ident(schema), role, ident(schema, "t")))
	s := openRO(t, pgsource.Config{DSN: roleDSN, Schemas: []string{schema}})
	ctx := context.Background()
	execLocked(t, admin, fmt.Sprintf("GRANT DELETE ON %s TO %s", ident(schema, "t"), role))
	requireKind(t, s.Refresh(ctx), pgsource.KindUnsafeRole, "holds DELETE on "+schema+".t")
	_, err := s.Query(ctx, "SELECT 1")
	requireKind(t, err, pgsource.KindUnsafeRole, "holds DELETE")
	execLocked(t, admin, fmt.Sprintf("REVOKE DELETE ON %s FROM %s", ident(schema, "t"), role))
	if err := s.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after REVOKE: %v", err)
	}
	query(t, s, "SELECT 1")
}

// A DSN that does not parse, a server that does not answer and a wrong
// password each fail Open with an error that names the source and holds
// neither the DSN nor the password.
func TestOpenShouldNameTheSourceAndHideTheDSN(t *testing.T) {
	t.Parallel()
	ro := dsn(t, envRODSN)
	u, err := url.Parse(ro)
	if err != nil {
		t.Fatal(err)
	}
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "not-the-password-123")
	down := *u
	down.Host = "127.0.0.1:1"
	cases := []struct {
		name, dsn, password string
		kind                pgsource.Kind
		fragment            string
	}{
		{"unparseable", "host=127.0.0.1 password=s3cret-pw port=notaport", "s3cret-pw", pgsource.KindInvalidConfig, "the DSN is not valid"},
		{"unparseable url", "postgres://u:s3cret-pw@127.0.0.1:99999999/db", "s3cret-pw", pgsource.KindInvalidConfig, "the DSN is not valid"},
		{"server down", down.String(), "nexus_ro_test", pgsource.KindUnavailable, "unavailable"},
		{"wrong password", wrong.String(), "not-the-password-123", pgsource.KindUnavailable, "password authentication failed"},
		{"empty", "", "", pgsource.KindInvalidConfig, "the DSN is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := openErr(t, pgsource.Config{Name: "sales", DSN: tc.dsn})
			requireKind(t, err, tc.kind, tc.fragment)
			if !strings.HasPrefix(err.Error(), `source "sales": `) {
				t.Fatalf("error does not name the source: %v", err)
			}
			if tc.dsn != "" {
				requireNoSecret(t, err, tc.dsn, tc.password)
			}
			t.Logf("%v", err)
		})
	}
}

func TestPingShouldMeasureARoundTrip(t *testing.T) {
	t.Parallel()
	s := openRO(t, pgsource.Config{})
	d, err := s.Ping(context.Background())
	if err != nil || d <= 0 || d > 5*time.Second {
		t.Fatalf("Ping = %v, %v", d, err)
	}
	s.Close()
	_, err = s.Ping(context.Background())
	requireKind(t, err, pgsource.KindUnavailable, "closed")
}
