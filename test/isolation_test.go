package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/nexus/nexus/test/fakellm"
)

// planBomb is SQL that DuckDB folds while preparing: tens of seconds and
// gigabytes, deaf to the interrupt and to memory_limit.
const planBomb = "SELECT len(range(20000000)) AS n FROM data"

// selfRSSMB is this test process's resident set size in MiB: the server
// under test runs in it.
func selfRSSMB(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize()) >> 20
}

// watchRSS samples this process's RSS until stop is called, and returns
// the peak.
func watchRSS(t testing.TB) (stop func() int64) {
	var peak atomic.Int64
	peak.Store(selfRSSMB(t))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if v := selfRSSMB(t); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	})
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}

// healthzWhile polls /healthz until stop is called and returns how many
// polls failed.
func (n *nexus) healthzWhile(t testing.TB) (stop func() (ok, failed int)) {
	var okN, failN atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, n.URL+"/healthz", nil)
			resp, err := n.client.Do(req)
			if err == nil && resp.StatusCode == http.StatusOK {
				okN.Add(1)
			} else {
				failN.Add(1)
			}
			if resp != nil {
				_ = resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return func() (int, int) { close(done); wg.Wait(); return int(okN.Load()), int(failN.Load()) }
}

// deepJSON is a 20 KB document nested 10,000 deep, which crashes DuckDB's
// JSON reader.
func deepJSON() string {
	return `[{"a": ` + strings.Repeat("[", 10000) + "1" + strings.Repeat("]", 10000) + `}]`
}

// Given JSON nested 10,000 deep, inline or uploaded, when it arrives,
// then it is refused with 422 naming the depth limit before DuckDB reads
// it, the LLM is never asked, and /healthz answers the whole time.
func TestNestedJSONShouldBeRefusedWhileTheServerStaysUp(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	stop := n.healthzWhile(t)
	r := n.post(t, "/analyze", map[string]any{"query": "q", "data": map[string]any{"format": "json", "content": deepJSON()}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	e := r.Body["error"].(map[string]any)
	if e["code"] != "input_too_complex" || e["field"] != "data.content" || !strings.Contains(e["message"].(string), "64 levels") {
		t.Fatalf("inline: %s", r.Raw)
	}
	u := n.upload(t, "deep.json", []byte(deepJSON()), "")
	expectStatus(t, u, http.StatusUnprocessableEntity)
	if e := u.Body["error"].(map[string]any); e["code"] != "input_too_complex" || e["field"] != "file" {
		t.Fatalf("upload: %s", u.Raw)
	}
	ok, failed := stop()
	if failed != 0 || ok == 0 {
		t.Fatalf("/healthz: %d ok, %d failed", ok, failed)
	}
	if got := len(n.LLM.Received()); got != 0 {
		t.Fatalf("%d LLM requests, want 0", got)
	}
	if l := n.get(t, "/datasets"); len(l.Body["datasets"].([]any)) != 0 {
		t.Fatalf("datasets after the refusal: %s", l.Raw)
	}
}

// withBombLimits sets a short statement timeout, one SQL attempt and a
// memory ceiling high enough that the deadline is what stops a bomb.
func withBombLimits(o *startOpts) {
	o.cfg.Datasets.StatementTimeout = 2
	o.cfg.Datasets.MaxSQLAttempts = 1
	o.cfg.Datasets.WorkerMemoryMB = 16 << 10
	o.cfg.Datasets.Workers = 2
}

// Given a planner that writes SQL DuckDB cannot interrupt, when the
// analyst runs it, then its worker is killed at the statement timeout,
// the run step degrades (no LLM circuit counts it), the server's own
// memory stays flat, and the kill shows in metrics and health.
func TestPlannerBombShouldBeKilledAndTheAnalystDegrade(t *testing.T) {
	// Not parallel: the RSS it bounds is this whole test process's, so
	// no other test may be running (Go runs sequential tests before it
	// releases the parallel ones).
	n := startNexus(t, withBombLimits)
	baseline := selfRSSMB(t)
	peak := watchRSS(t)
	n.LLM.EnqueueFor(codegenModel, sqlReply(planBomb))
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("Could not compute it."))
	r := n.post(t, "/analyze", map[string]any{"query": "how long?", "data": map[string]any{"format": "csv", "content": "a\n1\n"}})
	top := peak()
	t.Logf("server RSS: baseline %d MiB, peak %d MiB during the bomb", baseline, top)
	expectStatus(t, r, http.StatusOK)
	steps := stepsOf(t, r)
	run := steps["run"]
	if run["outcome"] != "fallback" || !strings.Contains(fmt.Sprint(run["detail"]), "time limit of 2s") {
		t.Fatalf("run step: %v", run)
	}
	if d := run["duration_ms"].(float64); d > 3000 {
		t.Errorf("run step took %v ms, want within the 2 s timeout plus 1 s", d)
	}
	if top > baseline+200 {
		t.Errorf("server RSS peaked at %d MiB from %d MiB", top, baseline)
	}
	expectMetric(t, n.scrape(t), "nexus_worker_kills_total", map[string]string{"reason": "deadline"}, 1)
	expectStats(t, n, "code_generator", map[string]float64{"failure_count": 0, "success_count": 1})
	eventually(t, 30*time.Second, "the worker to be replaced", func() bool {
		w, _ := n.get(t, "/api/health/status").Body["workers"].(map[string]any)
		return w["restarts"] == 1.0 && w["size"] == 2.0 && w["last_kill_reason"] == "deadline" && w["busy"] == 0.0
	})
}

// Given a dataset, when /generate's SQL check meets a bomb, then the
// check's worker is killed and the answer says the SQL is not valid.
func TestGenerateSQLCheckBombShouldBeKilled(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withBombLimits)
	id := n.mustUpload(t, "sales.csv", []byte(salesCSV))
	n.LLM.EnqueueFor(codegenModel, sqlReply(planBomb))
	r := n.post(t, "/generate", map[string]any{"prompt": "count", "language": "sql", "dataset_id": id})
	expectStatus(t, r, http.StatusOK)
	if r.Body["is_valid"] != false || !strings.Contains(fmt.Sprint(r.Body["error_message"]), "time limit") {
		t.Fatalf("body: %s", r.Raw)
	}
	expectMetric(t, n.scrape(t), "nexus_worker_kills_total", map[string]string{"reason": "deadline"}, 1)
}

// Given eight bombs at once on two workers, every answer comes within
// its request deadline, the server's own memory stays bounded, and
// /generate for another user is served meanwhile.
func TestConcurrentBombsShouldNotStarveOtherUsers(t *testing.T) {
	// Not parallel: the RSS it bounds is this whole test process's, so
	// no other test may be running (Go runs sequential tests before it
	// releases the parallel ones).
	n := startNexus(t, withBombLimits, func(o *startOpts) {
		o.cfg.Datasets.StatementTimeout = 1
		o.cfg.Datasets.MaxInlineLoads = 8
	})
	baseline := selfRSSMB(t)
	peak := watchRSS(t)
	n.LLM.SetHandler(func(req fakellm.Request) fakellm.Step {
		switch {
		case req.Model != codegenModel:
			return fakellm.Reply("no answer")
		case strings.Contains(req.Messages[len(req.Messages)-1].Content, "python"):
			return fakellm.Reply("```python\nprint(1)\n```")
		}
		return sqlReply(planBomb)
	})
	var wg sync.WaitGroup
	statuses := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r := n.postCtx(t, ctx, "/analyze", map[string]any{"query": "q", "data": map[string]any{"format": "csv", "content": "a\n1\n"}})
			statuses <- r.Status
		})
	}
	eventually(t, 30*time.Second, "both workers busy with bombs", func() bool {
		w, _ := n.get(t, "/api/health/status").Body["workers"].(map[string]any)
		return w["busy"] == 2.0
	})
	g := n.post(t, "/generate", map[string]any{"prompt": "print one in python", "language": "python"})
	expectStatus(t, g, http.StatusOK)
	if g.Body["is_valid"] != true {
		t.Fatalf("generate: %s", g.Raw)
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a bombed /analyze answered %d, want 200 (degraded)", s)
		}
	}
	top := peak()
	t.Logf("server RSS: baseline %d MiB, peak %d MiB during eight bombs", baseline, top)
	if top > baseline+200 {
		t.Errorf("server RSS peaked at %d MiB from %d MiB", top, baseline)
	}
	body := n.scrape(t)
	if v, _ := metric(body, "nexus_worker_kills_total", map[string]string{"reason": "deadline"}); v < 8 {
		t.Errorf("deadline kills %v, want 8", v)
	}
}

// Given a CSV 2,000 columns wide, the upload is refused with 422 before
// DuckDB loads it, and nothing is left in the data dir.
func TestWideCSVShouldBeRefused(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	n := startNexus(t, func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dataDir })
	var b strings.Builder
	for i := range 2000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "c%d", i)
	}
	b.WriteString("\n")
	b.WriteString(strings.Repeat("1,", 1999) + "1\n")
	r := n.upload(t, "wide.csv", []byte(b.String()), "")
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if e := r.Body["error"].(map[string]any); e["code"] != "input_too_complex" || !strings.Contains(e["message"].(string), "2000 columns; the limit is 1024") {
		t.Fatalf("body: %s", r.Raw)
	}
	left, _ := filepath.Glob(filepath.Join(dataDir, "*"))
	if len(left) != 0 {
		t.Fatalf("left in the data dir: %v", left)
	}
}

// streamedXLSX builds a workbook with excelize's stream writer: rows maps
// a row number to its cells from column A.
func streamedXLSX(t *testing.T, rows map[int][]any) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range slices.Sorted(maps.Keys(rows)) {
		if err := sw.SetRow("A"+strconv.Itoa(r), rows[r]); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Given workbooks that inflate far past their size (2 MiB of text from a
// few KB) or that are sparse (one cell in the last column), the upload is
// refused with 422 input_too_complex naming the limit, and nothing is
// left in the data dir.
func TestXLSXBombsShouldBeRefused(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	n := startNexus(t, func(o *startOpts) {
		o.env["NEXUS_DATA_DIR"] = dataDir
		o.cfg.Datasets.MaxUploadBytes = 100_000 // workbooks may inflate to 400,000 bytes
	})
	bomb := map[int][]any{}
	for i := range 64 {
		bomb[i+1] = []any{strings.Repeat("x", 32_000)}
	}
	sparse := map[int][]any{1: append(make([]any, 16_383), "far")}
	for name, tc := range map[string]struct {
		rows map[int][]any
		want string
	}{
		"inflated": {bomb, "inflates past the limit of 400000 bytes"},
		"sparse":   {sparse, "columns; the limit is 1024"},
	} {
		body := streamedXLSX(t, tc.rows)
		r := n.upload(t, name+".xlsx", body, "")
		expectStatus(t, r, http.StatusUnprocessableEntity)
		if e := r.Body["error"].(map[string]any); e["code"] != "input_too_complex" || !strings.Contains(e["message"].(string), tc.want) {
			t.Fatalf("%s (%d bytes): %s", name, len(body), r.Raw)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dataDir, "*"))
	if len(left) != 0 {
		t.Fatalf("left in the data dir: %v", left)
	}
}
