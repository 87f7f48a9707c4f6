package pgsource_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/pgsource"
	"github.com/nexus/nexus/internal/infra/pgsource/pgtest"
)

// A database that goes away gives KindUnavailable, never a SQL error, and
// the source recovers by itself when it comes back.
func TestQueryShouldReportAnUnreachableDatabaseAsUnavailable(t *testing.T) {
	t.Parallel()
	ro, err := url.Parse(dsn(t, envRODSN))
	if err != nil {
		t.Fatal(err)
	}
	p := pgtest.StartProxy(t, ro.Host)
	via := *ro
	via.Host = p.Addr()
	s := openRO(t, pgsource.Config{DSN: via.String(), MaxConnections: 2})
	query(t, s, "SELECT 1")

	p.Stop()
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

	p.Listen(t, p.Addr())
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
