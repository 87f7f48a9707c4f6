package pgsource_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// tcpProxy forwards a loopback port to PostgreSQL, so that a test can cut
// the source off from the database, as a server going down does, without
// stopping the cluster that other tests use.
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

// stop closes the listener and every connection through it.
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

// A database that goes away gives KindUnavailable, never a SQL error, and
// the source recovers by itself when it comes back.
func TestQueryShouldReportAnUnreachableDatabaseAsUnavailable(t *testing.T) {
	t.Parallel()
	ro, err := url.Parse(dsn(t, envRODSN))
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, ro.Host)
	via := *ro
	via.Host = p.addr
	s := openRO(t, pgsource.Config{DSN: via.String(), MaxConnections: 2})
	query(t, s, "SELECT 1")

	p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, call := range []func() error{
		func() error { _, err := s.Query(ctx, "SELECT 1"); return err },
		func() error { _, err := s.Query(ctx, "SELECT 1"); return err },
		func() error { _, err := s.Ping(ctx); return err },
		func() error { return s.Refresh(ctx) },
		func() error { _, err := s.Profile(ctx, "nexus_writer_target"); return err },
	} {
		start := time.Now()
		err := call()
		e := requireKind(t, err, pgsource.KindUnavailable, "unavailable")
		t.Logf("%s (after %v)", e.Message, time.Since(start).Round(time.Millisecond))
		if time.Since(start) > 12*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
	}

	p.listen(t, p.addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Query(ctx, "SELECT 1")
		if err == nil {
			break
		}
		var e *pgsource.Error
		if !errors.As(err, &e) || e.Kind != pgsource.KindUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
