package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/internal/infra/pgsource/pgtest"
)

// The DSNs that .ci/postgres-setup.sh exports (see pgtest).
const (
	envAdminDSN  = pgtest.EnvAdminDSN
	envRODSN     = pgtest.EnvRODSN
	envWriterDSN = pgtest.EnvWriterDSN
)

// pgDSN returns the DSN in the variable name; see pgtest.DSN.
func pgDSN(tb testing.TB, name string) string { tb.Helper(); return pgtest.DSN(tb, name) }

// pgAdmin connects as nexus_admin; see pgtest.Admin.
func pgAdmin(tb testing.TB) *pgx.Conn { tb.Helper(); return pgtest.Admin(tb) }

// pgExec runs fixture SQL as admin (simple protocol: several statements).
func pgExec(tb testing.TB, c *pgx.Conn, sql string) {
	tb.Helper()
	if _, err := c.Exec(context.Background(), sql); err != nil {
		tb.Fatalf("admin exec %q: %v", sql, err)
	}
}

// pgRows runs a query as admin and returns its rows as Go values.
func pgRows(tb testing.TB, c *pgx.Conn, sql string) [][]any {
	tb.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		tb.Fatalf("admin query %q: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		tb.Fatalf("admin query %q: %v", sql, err)
	}
	return out
}

// pgShop is a test's own shop in the public schema: customers and orders,
// readable by nexus_ro and on the source's allow-list, and secret,
// readable by nexus_ro but left off the allow-list. The names are unique
// to the test; the tables are dropped when it ends.
type pgShop struct {
	admin                     *pgx.Conn
	customers, orders, secret string
}

// newPGShop creates the shop's tables, fills and analyzes them (so that
// the catalog has statistics), and grants SELECT on them to nexus_ro.
func newPGShop(t *testing.T) *pgShop {
	t.Helper()
	admin := pgAdmin(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "e2e_" + hex.EncodeToString(b)
	s := &pgShop{admin: admin, customers: prefix + "_customers", orders: prefix + "_orders", secret: prefix + "_secret"}
	pgExec(t, admin, fmt.Sprintf(`
CREATE TABLE public.%[1]s (customer_id int PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE public.%[2]s (order_id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(10,2));
CREATE TABLE public.%[3]s (id int, secret text);
INSERT INTO public.%[1]s VALUES (1, 'Ada', 'London'), (2, 'Grace', 'New York'), (3, 'Linus', NULL);
INSERT INTO public.%[2]s VALUES (10, 1, 12.50), (11, 1, 7.25), (12, 2, 100.00), (13, 3, 0.99), (14, 2, 3.10);
INSERT INTO public.%[3]s VALUES (1, 'the launch codes');
GRANT SELECT ON public.%[1]s, public.%[2]s, public.%[3]s TO nexus_ro;
ANALYZE public.%[1]s, public.%[2]s;`, s.customers, s.orders, s.secret))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS public.%s, public.%s, public.%s", s.customers, s.orders, s.secret))
	})
	return s
}

// state summarises the shop as admin sees it: each table's row count and
// an md5 of its rows, and how many tables the test's prefix has; a
// refused query must leave it as it was.
func (s *pgShop) state(t *testing.T) string {
	t.Helper()
	var out string
	for _, table := range []string{s.customers, s.orders, s.secret} {
		var n int64
		var sum string
		err := s.admin.QueryRow(context.Background(),
			fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM public.%s t`, table)).Scan(&n, &sum)
		if err != nil {
			t.Fatalf("state of %s: %v", table, err)
		}
		out += fmt.Sprintf("%s: %d rows %s; ", table, n, sum)
	}
	var tables int64
	if err := s.admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_class WHERE relname LIKE $1`,
		s.customers[:len("e2e_")+8]+"%").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	return out + fmt.Sprintf("%d relations", tables)
}

// withSource configures source name over dsn (through the variable
// SHOP_DSN) with the shop's customers and orders on its allow-list, then
// applies tune.
func withSource(name, dsn string, shop *pgShop, tune func(*config.Source)) func(*startOpts) {
	return func(o *startOpts) {
		src := config.Source{Kind: config.SourceKindPostgres, DSNEnv: "SHOP_DSN", Tables: []string{shop.customers, "public." + shop.orders}}
		if tune != nil {
			tune(&src)
		}
		o.cfg.Sources = config.Sources{name: src}
		o.env["SHOP_DSN"] = dsn
	}
}
