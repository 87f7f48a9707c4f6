package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/config"
)

// The DSNs that .ci/postgres-setup.sh exports: nexus_admin (a superuser,
// for fixtures and checks), nexus_ro (read-only) and nexus_writer (which
// may also INSERT into public.nexus_writer_target).
const (
	envAdminDSN  = "NEXUS_TEST_POSTGRES_DSN"
	envRODSN     = "NEXUS_TEST_POSTGRES_RO_DSN"
	envWriterDSN = "NEXUS_TEST_POSTGRES_WRITER_DSN"
)

// pgDSN returns the DSN in the variable name. Without it the test skips,
// except under CI, where it fails: CI cannot pass without PostgreSQL.
func pgDSN(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set (CI is set, so the PostgreSQL tests must run: source .ci/postgres-setup.sh)", name)
		}
		tb.Skipf("%s is not set; run `source .ci/postgres-setup.sh` (as root) to run the PostgreSQL tests", name)
	}
	return v
}

// pgAdmin connects as nexus_admin; the connection is closed when the test
// ends.
func pgAdmin(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgDSN(tb, envAdminDSN))
	if err != nil {
		tb.Fatalf("connect as admin: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

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

// tcpProxy forwards a loopback port to PostgreSQL, so that a test can cut
// a source off from the database, as a server going down does, without
// stopping the cluster that other tests share.
type tcpProxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]bool{}}
	p.listen(t, "127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) listen(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
}

func (p *tcpProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // stopped meanwhile
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// stop closes the listener and every connection through it, and waits
// for its goroutines.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// via returns dsn with its host replaced by the proxy's address.
func (p *tcpProxy) via(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.addr
	return u.String()
}

// pgHost is the host:port of a URL DSN.
func pgHost(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
