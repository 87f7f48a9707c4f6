package main

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestMain(m *testing.M) {
	// Nexus's DuckDB workers are this test binary, started with
	// dataset.WorkerArg.
	dataset.RunIfWorker()
	goleak.VerifyTestMain(m)
}

// TestRunReportsEveryTargetAndGoal runs the whole tool briefly: it must
// measure all four targets without a failed request, print the table and
// the goals, and stop by itself with nothing left running.
func TestRunReportsEveryTargetAndGoal(t *testing.T) {
	// Given a run bounded to a few hundred requests per measurement
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args := []string{"-rounds", "1", "-duration", "200ms", "-warmup", "0", "-max-requests", "300", "-conns", "4", "-latency-conns", "2"}

	// When it runs
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}

	// Then every target and every goal is reported
	for _, want := range []string{
		targetTitles[targetDirect], targetTitles[targetGenerate], targetTitles[targetOpen], targetTitles[targetBare],
		"`/generate` ÷ direct throughput", "`/generate` p50 added over direct", "open circuit ÷ bare throughput",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestHammerStopsAtItsRequestBudget checks the loop's bound by count: with
// a long duration, it sends exactly max requests and no more.
func TestHammerStopsAtItsRequestBudget(t *testing.T) {
	// Given a bare server and a budget of 50 requests over 4 connections
	srv, err := serve(context.Background(), "bare", bareHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	tg := target{name: "bare", method: "GET", url: "http://" + srv.addr + "/", want: 200}

	// When the loop runs with a minute to spare
	r := hammer(context.Background(), tg, phase{conns: 4, max: 50, d: time.Minute, latencies: true})

	// Then it stops after exactly 50 answers, each timed
	if r.done != 50 || r.errs != 0 || len(r.lat) != 50 {
		t.Fatalf("done %d, errors %d (%s), latencies %d; want 50, 0, 50", r.done, r.errs, r.firstErr, len(r.lat))
	}
	if r.percentile(0.5) <= 0 || r.percentile(0.99) < r.percentile(0.5) {
		t.Fatalf("percentiles p50 %s p99 %s", r.percentile(0.5), r.percentile(0.99))
	}
}

// TestFailoverScenarioReportsEveryRow runs -scenario failover in a tiny
// configuration: it must print every row of its three tables, stop by
// itself with nothing left running, and report the success rates, which
// one connection makes exact. Timings are not checked.
func TestFailoverScenarioReportsEveryRow(t *testing.T) {
	// Given a failover run of one round of 40 requests per configuration
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args := []string{"-scenario", "failover", "-rounds", "1", "-requests", "40", "-warmup", "0", "-latency-conns", "2"}

	// When it runs
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}

	// Then each success-rate row says how many of the 40 calls got
	// LLM-written code: none or half without a backup or retries, all
	// with either
	rows := map[string]string{
		"dead primary (always 500), no backup":                  "| 1 | 0.0% (0 of 40) |",
		"dead primary (always 500) + backup":                    "| 1 | 100.0% (40 of 40) |",
		"flapping primary (every other request 500), no backup": "| 1 | 50.0% (20 of 40) |",
		"flapping primary, no backup, retries":                  "| 2 | 100.0% (40 of 40) |",
		"flapping primary + backup":                             "| 1 | 100.0% (40 of 40) |",
		"flapping primary + backup, retries":                    "| 2 | 100.0% (40 of 40) |",
	}
	lines := strings.Split(out.String(), "\n")
	row := func(title string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, "| "+title+" | ") {
				return l
			}
		}
		t.Errorf("report lacks the row %q:\n%s", title, out.String())
		return ""
	}
	for title, want := range rows {
		if l := row(title); l != "" && !strings.Contains(l, want) {
			t.Errorf("row %q: want %q in\n%s", title, want, l)
		}
	}
	// And the latency rows are there, each with its 40 requests
	for _, title := range []string{
		"backup as the circuit's only target (baseline)", "primary forced open, backup second",
		"per round: median (range)", "all requests pooled",
		"hedging off", "hedge_after 0.05 s, hedge_budget_percent 100", "hedge_after 0.05 s, hedge_budget_percent 10",
	} {
		row(title)
	}
	for _, title := range []string{"backup as the circuit's only target (baseline)", "primary forced open, backup second", "hedging off"} {
		if l := row(title); l != "" && !strings.HasPrefix(l, "| "+title+" | 40 | ") {
			t.Errorf("row %q does not count 40 requests:\n%s", title, l)
		}
	}
	// And no request reached the forced-open primary
	if l := row("primary forced open, backup second"); l != "" && !strings.HasSuffix(l, " | 0 |") {
		t.Errorf("the open primary received requests:\n%s", l)
	}
}

// TestStreamScenarioReportsEveryRow runs -scenario stream in a tiny
// configuration: every request must get the whole answer (a wrong one
// fails the run), both tables must have their rows, and the open streams
// must cost Nexus goroutines while leaving none behind. Timings are not
// checked.
func TestStreamScenarioReportsEveryRow(t *testing.T) {
	// Given a stream run of one round of 10 requests per path and 50
	// open streams
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args := []string{"-scenario", "stream", "-rounds", "1", "-requests", "10", "-warmup", "0", "-streams", "50"}

	// When it runs
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}

	// Then each path at each first-chunk delay has its row of 10 requests
	lines := strings.Split(out.String(), "\n")
	row := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Errorf("report lacks a row starting %q:\n%s", prefix, out.String())
		return ""
	}
	for _, prefix := range []string{
		"| 0 ms | straight to the upstream | 10 |", "| 0 ms | `POST /analyze` through Nexus | 10 |",
		"| 20 ms | straight to the upstream | 10 |", "| 20 ms | `POST /analyze` through Nexus | 10 |",
	} {
		row(prefix)
	}
	// And the open streams: all 50 held, Nexus's goroutines counted, and
	// none left once the idle connections are closed
	if l := row("| straight to the upstream | "); l != "" && !strings.Contains(l, " | 50 | ") {
		t.Errorf("not all 50 streams were held straight to the upstream:\n%s", l)
	}
	if l := row("| `POST /analyze` through Nexus | "); l != "" && (!strings.Contains(l, " | 50 | ") || strings.Contains(l, " | 3.00 / 0.00 / ")) {
		t.Errorf("not all 50 streams were held through Nexus, or Nexus counted no goroutine:\n%s", l)
	}
	row("| Nexus's share (the difference) |")
	row("| net/http.(*conn).serve | 1.00 |")
	for _, l := range lines {
		if strings.HasPrefix(l, "| then the upstream closed its idle keep-alive connections |") && !strings.HasSuffix(l, "| +0 (+0 / +0 / +0 / +0) |") {
			t.Errorf("goroutines left over once every connection closed:\n%s", l)
		}
	}
}

// TestParseCensusCountsByPartAndEntry takes a real goroutine census with
// goroutines of a known label and entry function parked.
func TestParseCensusCountsByPartAndEntry(t *testing.T) {
	// Given three goroutines labelled part=census-test, parked in
	// parkForCensus
	release := make(chan struct{})
	var started sync.WaitGroup
	var done sync.WaitGroup
	pprof.Do(context.Background(), pprof.Labels("part", "census-test"), func(context.Context) {
		for range 3 {
			started.Add(1)
			done.Add(1)
			go parkForCensus(&started, &done, release)
		}
	})
	started.Wait()
	defer func() { close(release); done.Wait() }()

	// When the census is taken
	c, err := takeCensus()
	if err != nil {
		t.Fatal(err)
	}

	// Then it counts them under their part and entry (a test binary names
	// package main by its path), and in the total
	if got := c.parts["census-test"]; got != 3 {
		t.Errorf("part census-test: %d goroutines, want 3 (parts %v)", got, c.parts)
	}
	if got := c.entries[censusKey{"census-test", "cmd/nexus-load.parkForCensus"}]; got != 3 {
		t.Errorf("entry parkForCensus: %d goroutines, want 3 (entries %v)", got, c.entries)
	}
	if c.total < 4 {
		t.Errorf("total %d, want at least the 3 parked and this one", c.total)
	}
}

func parkForCensus(started, done *sync.WaitGroup, release <-chan struct{}) {
	defer done.Done()
	started.Done()
	<-release
}
