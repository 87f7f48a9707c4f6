package pgsource_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/pgsource/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The DSNs that .ci/postgres-setup.sh exports (see pgtest).
const (
	envAdminDSN  = pgtest.EnvAdminDSN
	envRODSN     = pgtest.EnvRODSN
	envWriterDSN = pgtest.EnvWriterDSN
)

// dsn returns the DSN in the variable name; see pgtest.DSN.
func dsn(tb testing.TB, name string) string { tb.Helper(); return pgtest.DSN(tb, name) }

// adminConn connects as nexus_admin; see pgtest.Admin.
func adminConn(tb testing.TB) *pgx.Conn { tb.Helper(); return pgtest.Admin(tb) }

// exec runs fixture SQL as admin (simple protocol: several statements).
func exec(tb testing.TB, c *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("admin exec %q: %v", sql, err)
	}
}

// execLocked runs fixture SQL as admin while holding a lock that every
// test's role and grant changes share: PostgreSQL fails concurrent updates
// of one catalog row (GRANT CONNECT ON DATABASE from parallel tests) with
// "tuple concurrently updated".
func execLocked(tb testing.TB, c *pgx.Conn, sql string) {
	tb.Helper()
	exec(tb, c, "BEGIN; SELECT pg_advisory_xact_lock(7413520); "+sql+"; COMMIT")
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// fixtureSchema creates a schema of the test's own, readable by nexus_ro
// (USAGE, SELECT on its tables now and later), dropped when the test ends.
func fixtureSchema(tb testing.TB, admin *pgx.Conn) string {
	tb.Helper()
	name := nonIdent.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	schema := "t_" + name + "_" + randomSuffix()
	q := pgx.Identifier{schema}.Sanitize()
	exec(tb, admin, fmt.Sprintf(`CREATE SCHEMA %[1]s;
GRANT USAGE ON SCHEMA %[1]s TO nexus_ro;
ALTER DEFAULT PRIVILEGES IN SCHEMA %[1]s GRANT SELECT ON TABLES TO nexus_ro;`, q))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.Exec(ctx, fmt.Sprintf(`ALTER DEFAULT PRIVILEGES IN SCHEMA %[1]s REVOKE SELECT ON TABLES FROM nexus_ro;
DROP SCHEMA %[1]s CASCADE`, q))
	})
	return schema
}

// openRO opens a source as nexus_ro over cfg (Name and DSN filled in when
// empty), closed when the test ends.
func openRO(tb testing.TB, cfg pgsource.Config) *pgsource.Source {
	tb.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.DSN == "" {
		cfg.DSN = dsn(tb, envRODSN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := pgsource.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// requireKind fails unless err is a *pgsource.Error of kind want whose
// message contains every fragment.
func requireKind(tb testing.TB, err error, want pgsource.Kind, fragments ...string) *pgsource.Error {
	tb.Helper()
	var e *pgsource.Error
	if !errors.As(err, &e) {
		tb.Fatalf("got error %v (%T), want *pgsource.Error of kind %s", err, err, want)
	}
	if e.Kind != want {
		tb.Fatalf("got kind %s (%q), want %s", e.Kind, e.Message, want)
	}
	for _, f := range fragments {
		if !strings.Contains(e.Message, f) {
			tb.Fatalf("message %q lacks %q", e.Message, f)
		}
	}
	return e
}

// digest summarises a table's content as admin sees it: its row count and
// an md5 of its rows in order.
func digest(tb testing.TB, admin *pgx.Conn, table string) string {
	tb.Helper()
	var n int64
	var sum *string
	err := admin.QueryRow(context.Background(),
		fmt.Sprintf(`SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM %s t`, table)).Scan(&n, &sum)
	if err != nil {
		tb.Fatalf("digest %s: %v", table, err)
	}
	if sum == nil {
		return fmt.Sprintf("%d rows", n)
	}
	return fmt.Sprintf("%d rows, md5 %s", n, *sum)
}

// query runs SQL through the source, which must succeed.
func query(tb testing.TB, s *pgsource.Source, sql string) pgsource.Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Query(ctx, sql)
	if err != nil {
		tb.Fatalf("Query(%q): %v", sql, err)
	}
	return res
}

func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }
