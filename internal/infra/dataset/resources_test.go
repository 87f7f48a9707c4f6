package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// mustCreateSeq uploads n datasets; dataset i has 10+i rows.
func mustCreateSeq(tb testing.TB, s *dataset.Store, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = mustCreate(tb, s, fmt.Sprintf("d%d.csv", i), seqCSV(10+i)).ID
	}
	return ids
}

// Each worker keeps at most MaxOpen read-only handles between jobs,
// closing the least recently used; a closed one reopens on its next query.
func TestIdleHandlesShouldBeClosedPastMaxOpen(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{MaxOpen: 2, Workers: 1})
	ids := mustCreateSeq(t, s, 4)
	for round := range 2 {
		for i, id := range ids {
			q := mustSession(t, s, id)
			if n := mustCount(t, q); n != int64(10+i) {
				t.Fatalf("%s: count %d, want %d", id, n, 10+i)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			if got, want := s.Stats().OpenHandles, min(i+1+round*4, 2); got != want {
				t.Fatalf("round %d, after %s: %d handles open, want %d", round, id, got, want)
			}
		}
	}
}

// Every database the Store opens for queries runs under the configured
// memory limit.
func TestMemoryLimitShouldApplyToStoredAndInlineData(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{MemoryLimitMB: 128})
	ds := mustCreate(t, s, "d.csv", seqCSV(5))
	for name, q := range map[string]*dataset.Session{
		"stored": mustSession(t, s, ds.ID),
		"inline": mustInline(t, s, "csv", "a,b\n1,2\n"),
	} {
		// current_setting is refused by the guard, so ask past it.
		res, err := q.QueryUnguarded(context.Background(), "SELECT current_setting('memory_limit') AS m")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := res.Rows[0][0]; got != "128.0 MiB" {
			t.Errorf("%s: memory_limit = %v, want 128.0 MiB", name, got)
		}
	}
}

// Inline data is opened read-only like a stored dataset, so even
// statements that got past the guard fail and change nothing.
func TestInlineDataShouldSurviveWritesThatBypassTheGuard(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	q := mustInline(t, s, "csv", "a,b\n1,2\n3,4\n")
	ctx := context.Background()
	for _, stmt := range []string{
		"DELETE FROM data",
		"INSERT INTO data VALUES (5, 6)",
		"UPDATE data SET a = 0",
		"CREATE TABLE extra AS SELECT 1 AS x",
		"DROP TABLE data",
	} {
		if _, err := q.QueryUnguarded(ctx, stmt); kindOf(err) != dataset.KindSQL || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("%s: got %v, want a read-only refusal", stmt, err)
		}
		res := mustQuery(t, q, "SELECT sum(a) AS s, count(*) AS n FROM data")
		if fmt.Sprint(res.Rows) != "[[4 2]]" {
			t.Fatalf("after %s: %v", stmt, res.Rows)
		}
	}
}

// DuckDB takes a file path and its options as one URL, so a data directory
// that would garble it (a '#' would drop the sandbox options) is refused
// before anything is created.
func TestOpenShouldRefuseADataDirDuckDBCannotAddress(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a#b", "100%", "what?"} {
		dir := filepath.Join(t.TempDir(), name)
		s, err := dataset.Open(dataset.Config{Dir: dir}, nil)
		if err == nil {
			_ = s.Close()
			t.Fatalf("%s: Open succeeded", name)
		}
		if !strings.Contains(err.Error(), "cannot use a path containing") {
			t.Fatalf("%s: %v", name, err)
		}
		if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
			t.Fatalf("%s: directory created anyway (%v)", name, statErr)
		}
	}
}

// Sessions on more datasets than MaxOpen, opened and closed from many
// goroutines at once: every query sees its own data, and once all are
// closed no more than MaxOpen handles stay open (run with -race).
func TestConcurrentSessionsShouldRespectMaxOpen(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{MaxOpen: 2, Workers: 2})
	ids := mustCreateSeq(t, s, 5)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				k := (g + i) % len(ids)
				q, err := s.Session(context.Background(), ids[k])
				if err != nil {
					errs <- err
					return
				}
				res, err := q.Query(context.Background(), "SELECT count(*) AS n FROM data")
				if err == nil && res.Rows[0][0] != int64(10+k) {
					err = fmt.Errorf("%s: count %v, want %d", ids[k], res.Rows[0][0], 10+k)
				}
				if cerr := q.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Stats().OpenHandles; got > 4 {
		t.Fatalf("%d handles open when idle, want at most 2 per worker", got)
	}
}
