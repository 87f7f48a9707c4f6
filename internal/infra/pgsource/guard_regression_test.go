package pgsource_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nexus/nexus/internal/infra/pgsource"
)

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
