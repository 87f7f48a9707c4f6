package dataset_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// bomb is folded while DuckDB prepares it: tens of seconds and gigabytes,
// deaf to the interrupt, the context and memory_limit.
const bomb = "SELECT len(range(20000000)) AS n"

// waitFor polls cond until it holds or a generous bound passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Given a query DuckDB cannot interrupt, when it runs past the statement
// timeout, then its worker is killed, the caller gets
// KindQueryTooExpensive within the timeout plus a second, and the next
// query is served by a replacement worker.
func TestWorkerShouldBeKilledAtTheStatementTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	s := mustOpen(t, dataset.Config{StatementTimeout: timeout, Workers: 1, WorkerMemoryMB: 16 << 10})
	q := mustInline(t, s, "csv", "a\n1\n2\n")
	before := s.WorkerPIDs()

	start := time.Now()
	_, err := q.Query(context.Background(), bomb)
	elapsed := time.Since(start)
	e := requireKind(t, err, dataset.KindQueryTooExpensive)
	if !strings.Contains(e.Message, "time limit of 2s") {
		t.Errorf("message %q does not name the time limit", e.Message)
	}
	if elapsed > timeout+time.Second {
		t.Errorf("answered after %v, want within %v", elapsed, timeout+time.Second)
	}
	if n := mustCount(t, q); n != 2 {
		t.Fatalf("count after the kill: %d", n)
	}
	st := s.Stats().Workers
	if st.Kills[dataset.KillDeadline] != 1 || st.Restarts != 1 || st.LastKillReason != dataset.KillDeadline || st.Size != 1 {
		t.Errorf("stats %+v, want one deadline kill and one restart", st)
	}
	if after := s.WorkerPIDs(); slices.Equal(after, before) {
		t.Errorf("worker pid unchanged (%v): not replaced", after)
	}
}

// Given a worker whose RSS crosses its ceiling, it is killed long before
// the statement timeout, and the error names the memory limit.
func TestWorkerShouldBeKilledAtItsMemoryCeiling(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{StatementTimeout: time.Minute, Workers: 1, WorkerMemoryMB: 256})
	q := mustInline(t, s, "csv", "a\n1\n")
	_, err := q.Query(context.Background(), bomb)
	e := requireKind(t, err, dataset.KindQueryTooExpensive)
	if !strings.Contains(e.Message, "256 MiB") {
		t.Errorf("message %q does not name the memory limit", e.Message)
	}
	if st := s.Stats().Workers; st.Kills[dataset.KillMemory] != 1 || st.LastKillReason != dataset.KillMemory {
		t.Errorf("stats %+v, want one memory kill", st)
	}
	if n := mustCount(t, q); n != 1 {
		t.Fatalf("count after the kill: %d", n)
	}
}

// Given a worker SIGKILLed from outside during a query, that query fails
// cleanly and the next one succeeds.
func TestWorkerKilledFromOutsideShouldFailOnlyItsQuery(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{StatementTimeout: time.Minute, Workers: 1})
	q := mustInline(t, s, "csv", "a\n1\n2\n3\n")
	pids := s.WorkerPIDs()
	if len(pids) != 1 {
		t.Fatalf("workers %v, want 1", pids)
	}
	errc := make(chan error, 1)
	go func() {
		// Interruptible, but minutes long.
		_, err := q.Query(context.Background(), "SELECT count(*) FROM range(100000000) a, range(1000) b")
		errc <- err
	}()
	waitFor(t, "the query to start", func() bool { return s.Stats().Workers.Busy == 1 })
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := requireKind(t, <-errc, dataset.KindQueryTooExpensive)
	if !strings.Contains(e.Message, "crashed") {
		t.Errorf("message %q", e.Message)
	}
	if n := mustCount(t, q); n != 3 {
		t.Fatalf("count after the crash: %d", n)
	}
	if st := s.Stats().Workers; st.Kills[dataset.KillCrash] != 1 {
		t.Errorf("stats %+v, want one crash", st)
	}
}

// Given a caller that goes away during a query DuckDB cannot interrupt,
// the call returns the caller's error, and the worker is killed and
// replaced rather than left busy.
func TestWorkerShouldBeKilledWhenItsCallerGoesAway(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{StatementTimeout: time.Minute, Workers: 1, WorkerMemoryMB: 16 << 10})
	q := mustInline(t, s, "csv", "a\n1\n")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := q.Query(ctx, bomb); errc <- err }()
	// Cancelled before DuckDB starts, the job would just stop; wait until
	// the bomb is inside DuckDB, growing.
	pid := s.WorkerPIDs()[0]
	waitFor(t, "the bomb to start", func() bool { return dataset.RSSBytes(pid) > 200<<20 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || kindOf(err) != "" {
		t.Fatalf("got %v, want the caller's context.Canceled", err)
	}
	waitFor(t, "the replacement", func() bool { return s.Stats().Workers.Restarts == 1 })
	if st := s.Stats().Workers; st.Kills[dataset.KillCancelled] != 1 {
		t.Errorf("stats %+v, want one cancelled kill", st)
	}
	if n := mustCount(t, q); n != 1 {
		t.Fatalf("count afterwards: %d", n)
	}
}

// A worker's environment is built from nothing: no secret of the
// server's reaches it.
func TestWorkerEnvironmentShouldHoldOnlyWhatItNeeds(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{Workers: 2})
	pids := s.WorkerPIDs()
	if len(pids) != 2 {
		t.Fatalf("workers %v, want 2", pids)
	}
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			k, _, _ := strings.Cut(kv, "=")
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"HOME", "LANG", "PATH", "TMPDIR"}; !slices.Equal(keys, want) {
			t.Errorf("worker %d environment keys %v, want %v", pid, keys, want)
		}
	}
}

// The guard allows only the dataset's tables and generator table
// functions: DuckDB's metadata and settings functions, which reveal
// server paths, are refused before anything runs, on both the query path
// and the parse-only check.
func TestGuardShouldRefuseMetadataAndSettingsFunctions(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{})
	q := mustInline(t, s, "csv", "a\n1\n")
	ctx := context.Background()
	for _, text := range []string{
		"SELECT [path] FROM duckdb_databases()",
		"SELECT reverse(path) FROM duckdb_databases()",
		"SELECT * FROM duckdb_settings()",
		"SELECT * FROM duckdb_settings",
		"SELECT * FROM duckdb_extensions()",
		"SELECT * FROM duckdb_secrets()",
		"SELECT * FROM pragma_database_list",
		"SELECT * FROM pragma_table_info('data')",
		"SELECT current_setting('home_directory')",
		"SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
		"SELECT * FROM information_schema.tables",
		"SELECT * FROM sqlite_master",
		"SELECT * FROM system.main.duckdb_tables",
		"SELECT (SELECT count(*) FROM duckdb_tables()) FROM data",
		"WITH x AS (SELECT * FROM duckdb_databases()) SELECT * FROM x",
	} {
		if _, err := q.Query(ctx, text); kindOf(err) != dataset.KindUnsafeSQL {
			t.Errorf("Query(%q): got %v, want KindUnsafeSQL", text, err)
		}
		if err := s.ValidateSQL(ctx, text); kindOf(err) != dataset.KindUnsafeSQL {
			t.Errorf("ValidateSQL(%q): got %v, want KindUnsafeSQL", text, err)
		}
	}
	for _, text := range []string{
		"SELECT * FROM range(3)",
		"SELECT * FROM generate_series(1, 3)",
		"SELECT unnest([1, 2])",
		"WITH t AS (SELECT a FROM data) SELECT * FROM t",
		"SELECT * FROM main.data",
	} {
		if _, err := q.Query(ctx, text); err != nil {
			t.Errorf("Query(%q): %v", text, err)
		}
	}
}

// Given the only worker busy and MaxInlineLoads inline loads already
// waiting for it, one more inline load is refused at once with KindBusy
// rather than queued.
func TestInlineLoadsPastTheCapShouldBeBusy(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, dataset.Config{StatementTimeout: 3 * time.Second, Workers: 1, MaxInlineLoads: 1, WorkerMemoryMB: 16 << 10})
	q := mustInline(t, s, "csv", "a\n1\n")
	bombed := make(chan error, 1)
	go func() { _, err := q.Query(context.Background(), bomb); bombed <- err }()
	waitFor(t, "the bomb to hold the worker", func() bool { return s.Stats().Workers.Busy == 1 })
	loaded := make(chan error, 1)
	go func() {
		q2, err := s.OpenInline(context.Background(), "csv", "b\n2\n")
		if err == nil {
			err = q2.Close()
		}
		loaded <- err
	}()
	// The waiting load holds the one slot: a second is refused.
	waitFor(t, "the first load to wait", func() bool { return s.Stats().InlineLoads == 1 })
	_, err := s.OpenInline(context.Background(), "csv", "c\n3\n")
	if e := requireKind(t, err, dataset.KindBusy); !strings.Contains(e.Message, "max_inline_loads is 1") {
		t.Errorf("message %q", e.Message)
	}
	requireKind(t, <-bombed, dataset.KindQueryTooExpensive)
	if err := <-loaded; err != nil {
		t.Fatalf("the waiting load: %v", err)
	}
}
