package main

import (
	"bytes"
	"context"
	"strings"
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
