package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/config"
)

// The stream scenario (-scenario stream) measures Nexus's server-sent
// events against a streaming fake upstream (streamUpstream), on loopback
// and in this process, in one run:
//
//  1. the wait for the first event and for the first token of POST
//     /analyze {"stream": true} through Nexus, beside the same waits of a
//     streamed chat completion sent straight to the upstream, in
//     alternating rounds of sequential requests, with the upstream's
//     first content chunk sent at once and after 20 ms;
//  2. what -streams streams open at once cost: goroutines (told apart by
//     their pprof label), heap, stacks and open files, with every stream
//     held by the upstream after its first content chunk, beside the same
//     streams held straight to the upstream; and what is left once they
//     are released.

// firstChunkDelays are the upstream's waits before its first content
// chunk: none, where Nexus's own cost is the whole difference, and one
// like a fast model's, where it is a share of the wait.
var firstChunkDelays = []time.Duration{0, 20 * time.Millisecond}

// heldTimeout is the data_analyst circuit's timeout in the stream
// scenario, in seconds: it bounds the whole LLM call, so the default 30 s
// could cut a stream held while a thousand others open on a slow machine.
// Every phase of the scenario stops itself well before.
const heldTimeout = 300

// Names of the two paths, for the stderr log and profile files.
const (
	pathStraight = "straight"
	pathNexus    = "nexus"
)

// ttftArm is one path of the first-token comparison at one first-chunk
// delay, and what its rounds measured.
type ttftArm struct {
	name   string
	send   streamSender
	client *http.Client
	rounds [][]streamTimes
}

// ttftPair is both paths at one first-chunk delay.
type ttftPair struct {
	delay           time.Duration
	straight, nexus *ttftArm
}

// openRun is one measurement of held streams: the process before any
// stream, with every stream open, once they ended and the client's
// connections closed, and once the upstream closed its idle ones too.
type openRun struct {
	name, title string
	streams     int
	// opened is the time from the first request to the last stream's
	// first token; drained from the release to the last stream's end.
	opened, drained time.Duration
	// held counts the streams the upstream held when the figures were
	// read.
	held                               int64
	before, open, released, idleClosed snapshot
}

// streamReport is everything the scenario measured.
type streamReport struct {
	limit          fileLimit
	maxConnections int
	pairs          []*ttftPair
	straight, thru *openRun
}

func runStream(ctx context.Context, s settings, dir string, logs io.Writer, stdout io.Writer) error {
	fmt.Fprintf(s.stderr, "nexus-load stream: %s, GOMAXPROCS %d, %d round(s) of %d sequential requests per path and first-chunk delay (at most %s each), then %d open streams; log in %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), s.rounds, s.requests, s.phaseTimeout, s.streams, s.logPath)
	rep := streamReport{}
	var err error
	// Each held stream takes four descriptors in this process: the
	// client's socket, Nexus's, Nexus's to the upstream and the
	// upstream's.
	if rep.limit, err = ensureFiles(uint64(4*s.streams + 1024)); err != nil {
		return err
	}
	up, err := startStreamUpstream(ctx)
	if err != nil {
		return err
	}
	defer up.close()
	defer up.release()
	rep.maxConnections = max(config.Default().Server.MaxConnections, s.streams+256)
	nx, err := startNexusWith(ctx, dir, func(cfg *config.Config) {
		cfg.LLM.BaseURL = up.url()
		cfg.Server.MaxConnections = rep.maxConnections
		c := cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
		c.MaxConcurrent = 0
		c.Timeout = heldTimeout
		cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	}, nil, logs, s.stderr)
	if err != nil {
		return err
	}
	defer nx.stop()

	started := time.Now()
	stopProfile, err := startCPUProfile(s, "stream-first-token")
	if err != nil {
		return err
	}
	rep.pairs, err = firstTokens(ctx, s, up, nx)
	stopProfile()
	if err != nil {
		return err
	}
	up.setFirstDelay(0)
	if rep.straight, err = openStreams(ctx, s, up, pathStraight, "straight to the upstream", upstreamStream(up.url())); err != nil {
		return err
	}
	if rep.thru, err = openStreams(ctx, s, up, pathNexus, "`POST /analyze` through Nexus", nexusStream(nx.url)); err != nil {
		return err
	}
	reportStream(stdout, s, rep, time.Since(started))
	return nil
}

// firstTokens measures part 1: for each first-chunk delay, both paths
// s.rounds times, s.requests sequential requests each after a warm-up,
// the order of the paths swapped every round, so that drift on the
// machine weighs on both alike. Each path keeps one keep-alive
// connection, as does Nexus to the upstream.
func firstTokens(ctx context.Context, s settings, up *streamUpstream, nx *nexus) ([]*ttftPair, error) {
	newClient := func() *http.Client {
		return &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	}
	var pairs []*ttftPair
	for _, d := range firstChunkDelays {
		pairs = append(pairs, &ttftPair{delay: d,
			straight: &ttftArm{name: pathStraight, send: upstreamStream(up.url()), client: newClient()},
			nexus:    &ttftArm{name: pathNexus, send: nexusStream(nx.url), client: newClient()},
		})
	}
	defer func() {
		for _, p := range pairs {
			p.straight.client.CloseIdleConnections()
			p.nexus.client.CloseIdleConnections()
		}
	}()
	for r := range s.rounds {
		for _, p := range pairs {
			up.setFirstDelay(p.delay)
			arms := []*ttftArm{p.straight, p.nexus}
			if r%2 == 1 {
				arms[0], arms[1] = arms[1], arms[0]
			}
			for _, a := range arms {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				// The warm-up sends at least one request, which checks
				// the answer before anything is measured.
				if _, err := sequential(ctx, up, a, 0, s.warmup); err != nil {
					return nil, fmt.Errorf("%s, first chunk after %s, warm-up: %w", a.name, p.delay, err)
				}
				got, err := sequential(ctx, up, a, s.requests, s.phaseTimeout)
				if err != nil {
					return nil, fmt.Errorf("%s, first chunk after %s: %w", a.name, p.delay, err)
				}
				a.rounds = append(a.rounds, got)
				fmt.Fprintf(s.stderr, "round %d  first chunk after %2.0f ms  %-8s %4d requests  first event p50 %7.3f ms  first token p50 %7.3f ms  p99 %7.3f ms  relay p50 %6.3f ms\n",
					r+1, msf(p.delay), a.name, len(got), msf(pctOf(got, first, 0.5)), msf(pctOf(got, token, 0.5)), msf(pctOf(got, token, 0.99)), msf(pctOf(got, relay, 0.5)))
			}
		}
	}
	return pairs, nil
}

// sequential sends a's requests one after another until n have been
// answered (0: no count) or d has passed, whichever comes first, but at
// least one. A failed request is an error. One request at a time, the
// upstream's latest first chunk is the request's own: its relay is timed.
func sequential(ctx context.Context, up *streamUpstream, a *ttftArm, n int64, d time.Duration) ([]streamTimes, error) {
	var out []streamTimes
	if n > 0 {
		out = make([]streamTimes, 0, n)
	}
	deadline := time.Now().Add(d)
	for i := int64(0); i == 0 || ((n == 0 || i < n) && time.Now().Before(deadline)); i++ {
		var relay time.Duration
		t, err := a.send(ctx, a.client, func() { relay = up.sinceFirst() })
		t.relay = relay
		if err != nil {
			return out, fmt.Errorf("request %d: %w", i+1, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func first(t streamTimes) time.Duration { return t.first }
func relay(t streamTimes) time.Duration { return t.relay }
func token(t streamTimes) time.Duration { return t.token }

// pctOf is the p-th (0..1) of the waits that f picks from ts.
func pctOf(ts []streamTimes, f func(streamTimes) time.Duration, p float64) time.Duration {
	v := make([]time.Duration, len(ts))
	for i, t := range ts {
		v[i] = f(t)
	}
	slices.Sort(v)
	return result{lat: v}.percentile(p)
}

func (a *ttftArm) pooled() []streamTimes { return slices.Concat(a.rounds...) }

// openStreams measures part 2 for one path: it opens s.streams streams at
// once, one connection each (no keep-alive, so that their end closes
// them), waits until every one has had its first token while the upstream
// holds them, reads the figures, releases them and reads the figures
// again. Failing to open them all within -phase-timeout, or to end them
// within another, is an error; either way nothing is left running.
func openStreams(ctx context.Context, s settings, up *streamUpstream, name, title string, send streamSender) (*openRun, error) {
	run := &openRun{name: name, title: title, streams: s.streams}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	defer client.CloseIdleConnections()

	// The figures before: no connection left over from before.
	up.closeIdle()
	settle(ctx, 5*time.Second)
	var err error
	if run.before, err = takeSnapshot(); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		firsts   atomic.Int64
		fails    atomic.Int64
		firstErr atomic.Pointer[string]
	)
	defer func() {
		// On every return: nothing held, nothing running.
		up.release()
		cancel()
		wg.Wait()
	}()
	up.hold()
	start := time.Now()
	for range s.streams {
		wg.Add(1)
		go pprof.Do(runCtx, pprof.Labels("part", "client"), func(ctx context.Context) {
			defer wg.Done()
			if _, err := send(ctx, client, func() { firsts.Add(1) }); err != nil {
				fails.Add(1)
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
			}
		})
	}
	failed := func(when string) error {
		msg := ""
		if p := firstErr.Load(); p != nil {
			msg = ": first: " + *p
		}
		return fmt.Errorf("%s: %s: %d of %d streams had their first token, %d failed%s", title, when, firsts.Load(), s.streams, fails.Load(), msg)
	}
	deadline := start.Add(s.phaseTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	for firsts.Load() < int64(s.streams) {
		if fails.Load() > 0 {
			tick.Stop()
			return nil, failed("while opening")
		}
		if time.Now().After(deadline) {
			tick.Stop()
			return nil, failed(fmt.Sprintf("not all open within %s", s.phaseTimeout))
		}
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	tick.Stop()
	run.opened = time.Since(start)
	settle(ctx, 5*time.Second)
	run.held = up.waiting.Load()
	if run.open, err = takeSnapshot(); err != nil {
		return nil, err
	}
	if err := writeOpenProfiles(s, name); err != nil {
		return nil, err
	}
	fmt.Fprintf(s.stderr, "open     %-8s %d streams open in %s: %d goroutines (%+d), live heap %+.1f MiB, stacks %+.1f MiB, %d held by the upstream\n",
		name, s.streams, run.opened.Round(time.Millisecond), run.open.census.total, run.open.census.total-run.before.census.total,
		mib(int64(run.open.heapLive)-int64(run.before.heapLive)), mib(int64(run.open.stacks)-int64(run.before.stacks)), run.held)

	released := time.Now()
	up.release()
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(s.phaseTimeout):
		cancel()
		<-ended
		return nil, failed(fmt.Sprintf("not all ended within %s of their release", s.phaseTimeout))
	}
	run.drained = time.Since(released)
	if fails.Load() > 0 {
		return nil, failed("after their release")
	}
	client.CloseIdleConnections()
	settle(ctx, 10*time.Second)
	if run.released, err = takeSnapshot(); err != nil {
		return nil, err
	}
	up.closeIdle()
	settle(ctx, 10*time.Second)
	if run.idleClosed, err = takeSnapshot(); err != nil {
		return nil, err
	}
	fmt.Fprintf(s.stderr, "released %-8s all ended %s after their release: %+d goroutines over before, %+d once the upstream closed its idle connections\n",
		name, run.drained.Round(time.Millisecond), run.released.census.total-run.before.census.total, run.idleClosed.census.total-run.before.census.total)
	return run, ctx.Err()
}

// startCPUProfile starts a CPU profile DIR/name.pprof when -cpuprofile
// names a directory, and returns what stops it.
func startCPUProfile(s settings, name string) (stop func(), err error) {
	if s.profileDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(s.profileDir, name+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		fmt.Fprintf(s.stderr, "profile %s\n", f.Name())
	}, nil
}

// writeOpenProfiles writes the heap and goroutine profiles with every
// stream of path name open, when -cpuprofile names a directory.
func writeOpenProfiles(s settings, name string) error {
	if s.profileDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
		return err
	}
	for _, kind := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(s.profileDir, "stream-open-"+name+"-"+kind+".pprof"))
		if err != nil {
			return err
		}
		err = pprof.Lookup(kind).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "profile %s\n", f.Name())
	}
	return nil
}

// Parts of the process, as the pprof label part names them.
var parts = []string{"client", "nexus", "upstream"}

// reportStream prints the scenario's tables in Markdown.
func reportStream(w io.Writer, s settings, rep streamReport, took time.Duration) {
	fmt.Fprintf(w, "### 1. Time to the first event and the first token\n\n")
	fmt.Fprintf(w, "Sequential requests on one keep-alive connection per path, %d round(s) of %d per path and first-chunk delay, the order of the paths swapped every round. "+
		"Straight: a streamed chat completion to the fake upstream; its first event is the role chunk, sent with the headers, and its first token the first content chunk. "+
		"Through Nexus: `POST /analyze` `{\"query\": ..., \"stream\": true}` without data (only data_analyst answers, one streamed LLM call); its first event is the first `step` event, and its first token the first `token` event. "+
		"The upstream sends the first content chunk after the delay, then %d more %s apart.\n\n", s.rounds, s.requests, len(streamPieces)-1, chunkGap)
	fmt.Fprintf(w, "| first chunk after | path | requests | first event p50 / p90 / p99 | first token p50 / p90 / p99 | first token's relay p50 / p99 |\n|---|---|---|---|---|---|\n")
	for _, p := range rep.pairs {
		for _, a := range []struct {
			title string
			arm   *ttftArm
		}{{"straight to the upstream", p.straight}, {"`POST /analyze` through Nexus", p.nexus}} {
			all := a.arm.pooled()
			fmt.Fprintf(w, "| %g ms | %s | %d | %.3f / %.3f / %.3f ms | %.3f / %.3f / %.3f ms | %.3f / %.3f ms |\n", msf(p.delay), a.title, len(all),
				msf(pctOf(all, first, 0.5)), msf(pctOf(all, first, 0.9)), msf(pctOf(all, first, 0.99)),
				msf(pctOf(all, token, 0.5)), msf(pctOf(all, token, 0.9)), msf(pctOf(all, token, 0.99)),
				msf(pctOf(all, relay, 0.5)), msf(pctOf(all, relay, 0.99)))
		}
	}
	fmt.Fprintf(w, "\nThe relay is the time from the upstream's write of its first content chunk to the client's read of the first token (one request in flight, one clock): what the path adds after the upstream has answered.\n")
	fmt.Fprintf(w, "\n| first chunk after | added by Nexus, per round: median (range) of the differences | first event p50 | first token p50 | first token p99 | first token's relay p50 | first event p50, Nexus ÷ straight | first token p50, Nexus ÷ straight |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range rep.pairs {
		perRound := func(f func(nx, st []streamTimes) float64, prec int) string {
			v := make([]float64, len(p.nexus.rounds))
			for i := range v {
				v[i] = f(p.nexus.rounds[i], p.straight.rounds[i])
			}
			m, lo, hi := medianRange(v)
			return fmt.Sprintf("%.*f (%.*f to %.*f)", prec, m, prec, lo, prec, hi)
		}
		added := func(pick func(streamTimes) time.Duration, q float64) func(nx, st []streamTimes) float64 {
			return func(nx, st []streamTimes) float64 { return msf(pctOf(nx, pick, q) - pctOf(st, pick, q)) }
		}
		ratio := func(pick func(streamTimes) time.Duration) func(nx, st []streamTimes) float64 {
			return func(nx, st []streamTimes) float64 {
				return float64(pctOf(nx, pick, 0.5)) / float64(pctOf(st, pick, 0.5))
			}
		}
		fmt.Fprintf(w, "| %g ms | | %s ms | %s ms | %s ms | %s ms | %s | %s |\n", msf(p.delay),
			perRound(added(first, 0.5), 3), perRound(added(token, 0.5), 3), perRound(added(token, 0.99), 3), perRound(added(relay, 0.5), 3),
			perRound(ratio(first), 2), perRound(ratio(token), 2))
	}

	st, nx := rep.straight, rep.thru
	n := float64(nx.streams)
	fmt.Fprintf(w, "\n### 2. %d streams open at once\n\n", nx.streams)
	fmt.Fprintf(w, "All %d opened together, one connection each; the upstream holds each after its first content chunk. Once every stream has had its first token (through Nexus: its first `token` event), "+
		"the figures are read after a garbage collection, the streams released, and the figures read again. "+
		"The load client, the fake upstream and Nexus share this process: goroutines are told apart by their pprof label (part=client, nexus, upstream), "+
		"but heap, stacks and open files are the process's, so Nexus's share of them is the difference between the two rows, whose client and upstream do the same per stream. "+
		"Open-file limit %d (hard %d)%s. Nexus: server.max_connections %d (default %d), ratelimit per_minute and per_hour 0 (off), "+
		"data_analyst max_concurrent 0 (no limit) and timeout %d s (default 30), llm.max_idle_conns_per_host %d (default; it caps the idle pool, not the connections open).\n\n",
		nx.streams, rep.limit.after, rep.limit.hard, raisedNote(rep.limit), rep.maxConnections, config.Default().Server.MaxConnections,
		heldTimeout, config.Default().LLM.MaxIdleConnsPerHost)
	fmt.Fprintf(w, "| path | all open after | held by the upstream | goroutines | per stream: client / Nexus / upstream / other | live heap per stream | heap in use per stream | stacks per stream | open files per stream |\n|---|---|---|---|---|---|---|---|---|\n")
	row := func(r *openRun) {
		fmt.Fprintf(w, "| %s | %s | %d | %+d | %s | %.1f KiB | %.1f KiB | %.1f KiB | %s |\n", r.title, r.opened.Round(time.Millisecond), r.held,
			r.open.census.total-r.before.census.total, partsPer(r.before.census, r.open.census, n),
			kib(int64(r.open.heapLive)-int64(r.before.heapLive))/n, kib(int64(r.open.heapInuse)-int64(r.before.heapInuse))/n,
			kib(int64(r.open.stacks)-int64(r.before.stacks))/n, fdsPer(r.before.fds, r.open.fds, n))
	}
	row(st)
	row(nx)
	diff := func(f func(snapshot) int64) float64 {
		return (float64(f(nx.open)-f(nx.before)) - float64(f(st.open)-f(st.before))) / n
	}
	fdDiff := "n/a"
	if nx.open.fds >= 0 && st.open.fds >= 0 {
		fdDiff = fmt.Sprintf("%.2f", diff(func(s snapshot) int64 { return int64(s.fds) }))
	}
	fmt.Fprintf(w, "| Nexus's share (the difference) | | | %+.0f | %.2f Nexus goroutines | %.1f KiB | %.1f KiB | %.1f KiB | %s |\n",
		diff(func(s snapshot) int64 { return int64(s.census.total) })*n,
		float64(nx.open.census.parts["nexus"]-nx.before.census.parts["nexus"])/n,
		diff(func(s snapshot) int64 { return int64(s.heapLive) })/1024, diff(func(s snapshot) int64 { return int64(s.heapInuse) })/1024,
		diff(func(s snapshot) int64 { return int64(s.stacks) })/1024, fdDiff)

	fmt.Fprintf(w, "\nNexus's goroutines per open stream, by the function each runs:\n\n| function | per stream |\n|---|---|\n")
	for _, e := range entryDeltas(nx.before.census, nx.open.census, "nexus", nx.streams) {
		fmt.Fprintf(w, "| %s | %.2f |\n", e.entry, float64(e.delta)/n)
	}

	fmt.Fprintf(w, "\n| after release | path | streams ended within | goroutines over before: all (client / Nexus / upstream / other) |\n|---|---|---|---|\n")
	for _, r := range []*openRun{st, nx} {
		fmt.Fprintf(w, "| every stream ended, the client's connections closed | %s | %s | %s |\n", r.title, r.drained.Round(time.Millisecond), residue(r.before.census, r.released.census))
		fmt.Fprintf(w, "| then the upstream closed its idle keep-alive connections | %s | | %s |\n", r.title, residue(r.before.census, r.idleClosed.census))
	}
	fmt.Fprintf(w, "\nstream scenario measured in %s\n", took.Round(100*time.Millisecond))
}

func raisedNote(l fileLimit) string {
	if l.after == l.before {
		return ", not raised"
	}
	return fmt.Sprintf(", raised from %d", l.before)
}

// partsPer is the goroutines each part gained from before to after, per
// stream.
func partsPer(before, after census, n float64) string {
	other := func(c census) int {
		o := c.total
		for _, p := range parts {
			o -= c.parts[p]
		}
		return o
	}
	out := ""
	for _, p := range parts {
		out += fmt.Sprintf("%.2f / ", float64(after.parts[p]-before.parts[p])/n)
	}
	return out + fmt.Sprintf("%.2f", float64(other(after)-other(before))/n)
}

// residue is the goroutines left over from before to after, all and by
// part.
func residue(before, after census) string {
	out := fmt.Sprintf("%+d (", after.total-before.total)
	other := after.total - before.total
	for _, p := range parts {
		d := after.parts[p] - before.parts[p]
		other -= d
		out += fmt.Sprintf("%+d / ", d)
	}
	return out + fmt.Sprintf("%+d)", other)
}

func fdsPer(before, after int, n float64) string {
	if before < 0 || after < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(after-before)/n)
}

type entryDelta struct {
	entry string
	delta int
}

// entryDeltas are the entry functions of part whose goroutines grew by at
// least a tenth of a goroutine per stream, most first.
func entryDeltas(before, after census, part string, streams int) []entryDelta {
	var out []entryDelta
	for k, v := range after.entries {
		if k.part != part {
			continue
		}
		if d := v - before.entries[k]; d*10 >= streams {
			out = append(out, entryDelta{k.entry, d})
		}
	}
	slices.SortFunc(out, func(a, b entryDelta) int {
		return cmp.Or(cmp.Compare(b.delta, a.delta), cmp.Compare(a.entry, b.entry))
	})
	return out
}

func kib(b int64) float64 { return float64(b) / 1024 }
func mib(b int64) float64 { return float64(b) / (1 << 20) }
