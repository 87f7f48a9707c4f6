package pgsource_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

// One huge value is refused before pgx buffers it: the protocol message is
// capped at twice MaxResultBytes (8 MiB at least), the query fails as too
// expensive, and its broken connection is discarded, not reused. Plans
// and the catalog still fit under a tiny result cap.
func TestAHugeRowShouldBeRefusedWithoutBufferingIt(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	s := openRO(t, pgsource.Config{MaxResultBytes: 1 << 20, MaxConnections: 1})
	pid := query(t, s, "SELECT pg_backend_pid()").Rows[0][0]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Query(ctx, "SELECT repeat('x', 64000000) AS a")
	runtime.ReadMemStats(&after)
	requireKind(t, err, pgsource.KindTooExpensive, "a result row (or the plan) is too large")
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Errorf("reading the huge row allocated %d MiB", d>>20)
	}
	if again := query(t, s, "SELECT pg_backend_pid()").Rows[0][0]; again == pid {
		t.Errorf("the connection that failed (backend %v) was reused", pid)
	}
	// Twice the result cap passes the protocol; the cap truncates.
	res := query(t, s, "SELECT repeat('x', 1500000) AS a")
	if !res.Truncated || len(res.Rows) != 0 {
		t.Errorf("a row past MaxResultBytes: truncated %v, %d rows", res.Truncated, len(res.Rows))
	}
	small := openRO(t, pgsource.Config{MaxResultBytes: 1000})
	in := make([]string, 3000)
	for i := range in {
		in[i] = fmt.Sprint(i)
	}
	if res := query(t, small, "SELECT count(*) FROM generate_series(1, 5000) g WHERE g IN ("+strings.Join(in, ", ")+")"); fmt.Sprint(res.Rows) != "[[2999]]" {
		t.Errorf("a large plan under a small result cap: %v", res.Rows)
	}
}

// A query past temp_file_limit (SQLSTATE 53400) is too expensive, not the
// source being unavailable: the LLM may write a cheaper one.
func TestResourceLimitErrorsShouldBeTooExpensiveNotUnavailable(t *testing.T) {
	t.Parallel()
	admin := adminConn(t)
	role, roleDSN := testRole(t, admin)
	execLocked(t, admin, fmt.Sprintf(`ALTER ROLE %[1]s SET temp_file_limit = '64kB'; ALTER ROLE %[1]s SET work_mem = '64kB'`, role))
	s := openRO(t, pgsource.Config{DSN: roleDSN})
	_, err := s.Query(context.Background(), "SELECT g FROM generate_series(1, 500000) g ORDER BY g DESC")
	requireKind(t, err, pgsource.KindTooExpensive, "temp_file_limit")
	query(t, s, "SELECT 1")
}
