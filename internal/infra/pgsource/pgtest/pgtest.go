// Package pgtest is what the PostgreSQL tests share, in the pgsource
// package and end to end: the DSNs that .ci/postgres-setup.sh exports, an
// admin connection for fixtures, and a loopback TCP proxy that cuts a
// source off from the database without stopping the shared cluster. Only
// tests import it.
package pgtest

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The DSNs that .ci/postgres-setup.sh exports: nexus_admin (a superuser,
// for fixtures and checks), nexus_ro (read-only) and nexus_writer (which
// may also INSERT into public.nexus_writer_target).
const (
	EnvAdminDSN  = "NEXUS_TEST_POSTGRES_DSN"
	EnvRODSN     = "NEXUS_TEST_POSTGRES_RO_DSN"
	EnvWriterDSN = "NEXUS_TEST_POSTGRES_WRITER_DSN"
)

// DSN returns the DSN in the variable name. Without it the test skips,
// except under CI, where it fails: CI cannot pass without PostgreSQL.
func DSN(tb testing.TB, name string) string {
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

// Admin connects as nexus_admin, for fixtures and for checking what a
// test did; the connection is closed when the test ends.
func Admin(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, DSN(tb, EnvAdminDSN))
	if err != nil {
		tb.Fatalf("connect as admin: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Host is the host:port of a URL DSN.
func Host(tb testing.TB, dsn string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Host
}

// Proxy forwards a loopback port to PostgreSQL, so that a test can cut a
// source off from the database, as a server going down does, without
// stopping the cluster that other tests share.
type Proxy struct {
	target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// StartProxy forwards a free loopback port to target (host:port); it is
// stopped when the test ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p := &Proxy{target: target, conns: map[net.Conn]bool{}}
	p.Listen(tb, "127.0.0.1:0")
	tb.Cleanup(p.Stop)
	return p
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Listen (again, after Stop) on addr, as a database coming back does.
func (p *Proxy) Listen(tb testing.TB, addr string) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
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

func (p *Proxy) serve(c net.Conn) {
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

// Stop closes the listener and every connection through it, and waits
// for its goroutines.
func (p *Proxy) Stop() {
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

// Via returns dsn with its host replaced by the proxy's address.
func (p *Proxy) Via(tb testing.TB, dsn string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}
