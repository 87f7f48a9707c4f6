// Command nexus-load measures Nexus's request path against the network's
// own limit, all on loopback and in one process, in one run:
//
//   - direct: straight to a fast OpenAI-compatible upstream;
//   - generate: POST /generate through Nexus (Python; the upstream answers a
//     short ```python block at once);
//   - open: the same /generate with the code_generator circuit forced open
//     through the admin API (a 503);
//   - bare: a bare net/http server answering a fixed JSON body.
//
// For each it prints the throughput at -conns connections and p50/p99 at
// -latency-conns connections, then the ratios that issue 8's goals use.
// Every measurement stops after -duration or -max-requests, whichever comes
// first; -rounds repeats the set and reports medians, so that noise from
// other work on the machine shows as spread rather than as a wrong figure.
//
//	go run ./cmd/nexus-load -rounds 3 -duration 2s
//
// -cpuprofile DIR writes one CPU profile per target, taken in the first
// round's throughput measurement. Goroutines carry the pprof label part
// (nexus, upstream, bare or client), so the server alone reads as
//
//	go tool pprof -tagfocus=part=nexus -top DIR/generate.pprof
//
// -scenario failover measures issue 9's failover instead, each figure
// beside its baseline from the same run, every configuration on its own
// Nexus against fake upstreams:
//
//   - the share of /generate calls answered with LLM-written code with a
//     dead primary (always 500) or a flapping one (every other request
//     500), with a backup, with max_attempts 2, and with neither (before);
//   - the p50 of calls that skip a primary forced open through the admin
//     API, against calls through a circuit whose only target is the same
//     backup, in alternating rounds;
//   - p50 and p99 against a primary that holds every 20th request 300 ms,
//     with hedging off and with hedge_after 0.05 s at budgets of 100% and
//     10%, in alternating rounds.
//
// There each measurement stops after -requests requests (per round) or
// -phase-timeout, whichever comes first; -rounds, -warmup and
// -latency-conns apply as above. The defaults take about a minute:
//
//	go run ./cmd/nexus-load -scenario failover
//
// -scenario stream measures streamed answers (server-sent events) against
// a fake upstream that streams, in one run: the wait for the first event
// and the first token of POST /analyze {"stream": true} through Nexus
// beside a streamed chat completion straight to the upstream (alternating
// rounds of -requests sequential requests, default 200, with the first
// chunk at once and after 20 ms), then the goroutines, heap, stacks and
// open files per stream with -streams (1000) streams held open at once,
// and what is left once they end. It takes about two minutes:
//
//	go run ./cmd/nexus-load -scenario stream
//
// There -cpuprofile DIR writes a CPU profile of the first part and heap
// and goroutine profiles with every stream open.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func main() {
	// Nexus's dataset store runs DuckDB in worker processes that re-execute
	// this binary.
	dataset.RunIfWorker()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nexus-load:", err)
		os.Exit(1)
	}
}
