package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/config"
)

// The failover scenario (-scenario failover) measures what issue 9's
// closing note asks for, each figure beside its baseline from the same run:
//
//  1. the share of /generate calls answered with LLM-written code when the
//     primary is dead or flapping, with a backup or retries, and without
//     (the "before" figures);
//  2. the p50 added by skipping an open primary, against a circuit whose
//     only target is the backup;
//  3. the p99 against a primary with a slow tail, with hedging off and on.
//
// Every configuration is its own Nexus (app.Run in this process) against
// fake upstreams on loopback. Each measurement stops after -requests
// requests or -phase-timeout, whichever comes first.

// upstreamMode is how a fakeUpstream misbehaves.
type upstreamMode int

const (
	// modeOK answers every chat completion at once.
	modeOK upstreamMode = iota
	// modeDead answers every request 500, /models included.
	modeDead
	// modeFlapping answers the 1st, 3rd, 5th... chat completion 500 and
	// the others at once.
	modeFlapping
	// modeSlowTail holds every slowEvery-th chat completion slowDelay
	// (or until the caller gives up) and answers the others at once.
	modeSlowTail
)

// The slow tail: 5% of requests wait 300 ms.
const (
	slowEvery = 20
	slowDelay = 300 * time.Millisecond
)

// Settings of the failover scenario's circuits.
const (
	// flapRetryBackoff is the retry_backoff of the retrying
	// configurations: the shortest valid one, since the wait only sets
	// how long a call takes, not whether it succeeds, and the default 0.5
	// s would make the run minutes long.
	flapRetryBackoff = 0.001
	hedgeAfter       = 0.05
)

// Names in the failover configurations.
const (
	primaryModel   = "primary-model"
	backupProvider = "backup"
	backupModel    = "backup-model"
	backupKeyEnv   = "BACKUP_API_KEY"
)

// llmCode is the line of the upstream's reply that marks an answer as
// written by the LLM.
const llmCode = "result = df['sales'].sum()"

var modelsReply = []byte(`{"object":"list","data":[{"id":"llama3.1","object":"model","owned_by":"nexus-load"}]}`)

var serverError = []byte(`{"error":{"message":"the upstream is failing on purpose","type":"server_error","code":null}}`)

// fakeUpstream is an OpenAI-compatible upstream on loopback that fails or
// slows down on purpose, and counts the chat completions it receives.
type fakeUpstream struct {
	server
	mode  upstreamMode
	chats atomic.Int64
}

func startUpstream(ctx context.Context, mode upstreamMode) (*fakeUpstream, error) {
	u := &fakeUpstream{mode: mode}
	srv, err := serve(ctx, "upstream", http.HandlerFunc(u.serveHTTP))
	if err != nil {
		return nil, err
	}
	u.server = srv
	return u, nil
}

func (u *fakeUpstream) url() string { return "http://" + u.addr + "/v1" }

// answerRoutine answers what both fake upstreams answer alike: the models
// list, an unknown path and a wrong key. It reports whether it answered;
// if not, the request is a chat completion with the right key.
func answerRoutine(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(modelsReply)
		return true
	case r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions":
		http.NotFound(w, r)
		return true
	case r.Header.Get("Authorization") != "Bearer "+llmKey:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}`))
		return true
	}
	return false
}

func (u *fakeUpstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	fail := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(serverError)
	}
	if u.mode == modeDead && r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		fail()
		return
	}
	if answerRoutine(w, r) {
		return
	}
	n := u.chats.Add(1)
	switch u.mode {
	case modeDead:
		fail()
		return
	case modeFlapping:
		if n%2 == 1 {
			fail()
			return
		}
	case modeSlowTail:
		if n%slowEvery == 0 {
			t := time.NewTimer(slowDelay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(upstreamReply)
}

// generateAnswer is the part of /generate's answer that the scenario
// judges.
type generateAnswer struct {
	Code         string `json:"code"`
	IsValid      bool   `json:"is_valid"`
	FallbackUsed bool   `json:"fallback_used"`
	Provider     string `json:"provider"`
	Attempts     int    `json:"attempts"`
	Failover     bool   `json:"failover"`
}

// llmWritten decodes a 200 answer of /generate and fails unless it holds
// valid code that the LLM wrote.
func llmWritten(body []byte) (generateAnswer, error) {
	var a generateAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("undecodable answer: %w", err)
	}
	if !a.IsValid || a.FallbackUsed || !strings.Contains(a.Code, llmCode) {
		return a, fmt.Errorf("no LLM-written code in %s", body)
	}
	return a, nil
}

// layout is the code_generator circuit's list of targets.
type layout int

const (
	primaryOnly      layout = iota // [default/primary-model]
	primaryAndBackup               // [default/primary-model, backup/backup-model]
	backupOnly                     // [backup/backup-model]
)

// failoverRun holds what every configuration of the scenario shares.
type failoverRun struct {
	ctx    context.Context
	s      settings
	dir    string
	logs   io.Writer
	backup *fakeUpstream // a fast upstream, the backup of every configuration
	n      int           // Nexus instances started, to name their directories
}

// start runs a Nexus whose default provider is primary, with the backup
// provider declared, the code_generator circuit's targets as lay says and
// its settings changed by tune.
func (f *failoverRun) start(primary *fakeUpstream, lay layout, tune func(*config.Circuit)) (*nexus, error) {
	f.n++
	dir := filepath.Join(f.dir, fmt.Sprintf("nexus-%d", f.n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	mutate := func(cfg *config.Config) {
		cfg.LLM.BaseURL = primary.url()
		cfg.LLM.Providers = map[string]config.Provider{backupProvider: {BaseURL: f.backup.url(), APIKeyEnv: backupKeyEnv}}
		primaryT := config.Target{Provider: config.DefaultProvider, Model: primaryModel}
		backupT := config.Target{Provider: backupProvider, Model: backupModel}
		switch lay {
		case primaryOnly:
			cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{primaryT}
		case primaryAndBackup:
			cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{primaryT, backupT}
		case backupOnly:
			cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{backupT}
		}
		c := cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
		if tune != nil {
			tune(&c)
		}
		cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = c
	}
	return startNexusWith(f.ctx, dir, mutate, map[string]string{backupKeyEnv: llmKey}, f.logs, f.s.stderr)
}

// generateTarget is POST /generate on n; check, if set, judges each 200.
func generateTarget(name string, n *nexus, check func([]byte) error) target {
	return target{name: name, method: http.MethodPost, url: n.url + "/generate",
		body:   []byte(`{"prompt":"sum the sales column","language":"python"}`),
		header: http.Header{"Content-Type": {"application/json"}}, want: http.StatusOK, check: check}
}

// generateOnce makes one /generate call and returns its LLM-written answer.
func generateOnce(ctx context.Context, n *nexus) (generateAnswer, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/generate",
		bytes.NewReader([]byte(`{"prompt":"sum the sales column","language":"python"}`)))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return generateAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return generateAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return generateAnswer{}, fmt.Errorf("/generate: status %d: %s", resp.StatusCode, body)
	}
	return llmWritten(body)
}

// rateRow is one success-rate configuration and what it measured.
type rateRow struct {
	title       string
	mode        upstreamMode
	lay         layout
	maxAttempts int
	before      bool // a configuration without what issue 9 adds

	calls, ok       int64
	byBackup        int64 // successes answered by the backup
	primaryRequests int64
	backupRequests  int64
	elapsed         time.Duration
	firstErr        string
}

// latencyArm is one configuration of an alternating latency comparison.
type latencyArm struct {
	title string
	t     target
	// count reads an upstream counter around each measurement (not the
	// warm-up): requests to the primary, or hedged requests.
	count func() int64

	lat      []time.Duration // pooled over rounds, sorted
	p50, p99 []time.Duration // per round
	done     int64
	counted  int64
}

func (a *latencyArm) pooled(p float64) time.Duration { return result{lat: a.lat}.percentile(p) }

// failoverReport is everything the scenario measured.
type failoverReport struct {
	rates []*rateRow
	skip  []*latencyArm // baseline, then open primary
	hedge []*latencyArm // off, budget 100%, budget 10%
}

func runFailover(ctx context.Context, s settings, dir string, logs io.Writer, stdout io.Writer) error {
	fmt.Fprintf(s.stderr, "nexus-load failover: %s, GOMAXPROCS %d, %d round(s) of %d requests per configuration (at most %s each), log in %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), s.rounds, s.requests, s.phaseTimeout, s.logPath)
	backup, err := startUpstream(ctx, modeOK)
	if err != nil {
		return err
	}
	defer backup.close()
	f := &failoverRun{ctx: ctx, s: s, dir: dir, logs: logs, backup: backup}
	var rep failoverReport
	started := time.Now()
	if rep.rates, err = f.successRates(); err != nil {
		return err
	}
	if rep.skip, err = f.skipOpenPrimary(); err != nil {
		return err
	}
	if rep.hedge, err = f.hedging(); err != nil {
		return err
	}
	reportFailover(stdout, s, rep, time.Since(started))
	return nil
}

// successRates runs each configuration of part 1 on its own Nexus: one
// connection, so that "every other request" alternates call by call, and
// rounds × requests calls, none unmeasured: the first calls, which open
// the primary's breaker, count too.
func (f *failoverRun) successRates() ([]*rateRow, error) {
	rows := []*rateRow{
		{title: "dead primary (always 500), no backup", mode: modeDead, lay: primaryOnly, maxAttempts: 1, before: true},
		{title: "dead primary (always 500) + backup", mode: modeDead, lay: primaryAndBackup, maxAttempts: 1},
		{title: "flapping primary (every other request 500), no backup", mode: modeFlapping, lay: primaryOnly, maxAttempts: 1, before: true},
		{title: "flapping primary, no backup, retries", mode: modeFlapping, lay: primaryOnly, maxAttempts: 2},
		{title: "flapping primary + backup", mode: modeFlapping, lay: primaryAndBackup, maxAttempts: 1},
		{title: "flapping primary + backup, retries", mode: modeFlapping, lay: primaryAndBackup, maxAttempts: 2},
	}
	calls := int64(f.s.rounds) * f.s.requests
	for _, row := range rows {
		if err := f.ctx.Err(); err != nil {
			return nil, err
		}
		if err := f.successRate(row, calls); err != nil {
			return nil, fmt.Errorf("%s: %w", row.title, err)
		}
		fmt.Fprintf(f.s.stderr, "success  %-55s max_attempts %d: %d of %d (%.1f%%), %d by the backup, %d+%d upstream requests, %s\n",
			row.title, row.maxAttempts, row.ok, row.calls, percent(row.ok, row.calls), row.byBackup,
			row.primaryRequests, row.backupRequests, row.elapsed.Round(time.Millisecond))
	}
	return rows, nil
}

func (f *failoverRun) successRate(row *rateRow, calls int64) error {
	primary, err := startUpstream(f.ctx, row.mode)
	if err != nil {
		return err
	}
	defer primary.close()
	n, err := f.start(primary, row.lay, func(c *config.Circuit) {
		c.MaxAttempts = row.maxAttempts
		if row.maxAttempts > 1 {
			c.RetryBackoff = flapRetryBackoff
		}
	})
	if err != nil {
		return err
	}
	defer n.stop()
	var byBackup atomic.Int64
	t := generateTarget("generate", n, func(body []byte) error {
		a, err := llmWritten(body)
		if err == nil && a.Provider == backupProvider {
			byBackup.Add(1)
		}
		return err
	})
	b0 := f.backup.chats.Load()
	r := hammer(f.ctx, t, phase{conns: 1, max: calls, d: f.s.phaseTimeout})
	row.calls, row.ok, row.elapsed, row.firstErr = r.done+r.errs, r.done, r.elapsed, r.firstErr
	row.byBackup = byBackup.Load()
	row.primaryRequests = primary.chats.Load()
	row.backupRequests = f.backup.chats.Load() - b0
	return f.ctx.Err()
}

// skipOpenPrimary compares, in alternating rounds, a circuit whose only
// target is the backup with one whose first target, the primary, is
// forced open through the admin API, so that every call skips it and
// fails over to the same backup.
func (f *failoverRun) skipOpenPrimary() ([]*latencyArm, error) {
	primary, err := startUpstream(f.ctx, modeOK)
	if err != nil {
		return nil, err
	}
	defer primary.close()
	base, err := f.start(primary, backupOnly, nil)
	if err != nil {
		return nil, err
	}
	defer base.stop()
	skip, err := f.start(primary, primaryAndBackup, nil)
	if err != nil {
		return nil, err
	}
	defer skip.stop()
	if err := skip.targetAction(f.ctx, "open", "provider="+config.DefaultProvider+"&model="+primaryModel); err != nil {
		return nil, err
	}
	// Both must answer from the backup, and only the second by failover.
	a, err := generateOnce(f.ctx, base)
	if err != nil {
		return nil, fmt.Errorf("backup-only circuit: %w", err)
	}
	if a.Provider != backupProvider || a.Failover || a.Attempts != 1 {
		return nil, fmt.Errorf("backup-only circuit answered from %q, failover %t, attempts %d", a.Provider, a.Failover, a.Attempts)
	}
	if a, err = generateOnce(f.ctx, skip); err != nil {
		return nil, fmt.Errorf("open-primary circuit: %w", err)
	}
	if a.Provider != backupProvider || !a.Failover || a.Attempts != 1 {
		return nil, fmt.Errorf("open-primary circuit answered from %q, failover %t, attempts %d", a.Provider, a.Failover, a.Attempts)
	}
	arms := []*latencyArm{
		{title: "backup as the circuit's only target (baseline)", t: generateTarget("backup-only", base, nil), count: primary.chats.Load},
		{title: "primary forced open, backup second", t: generateTarget("skip-open", skip, nil), count: primary.chats.Load},
	}
	if err := f.alternate("skip", arms); err != nil {
		return nil, err
	}
	return arms, nil
}

// hedging compares, in alternating rounds, hedging off and on (budget 100%
// and 10%) against a primary whose every 20th request is 300 ms slow, with
// a fast backup. Each configuration has its own primary, so that each
// sees exactly one slow request in 20.
func (f *failoverRun) hedging() ([]*latencyArm, error) {
	configs := []struct {
		title  string
		after  config.Seconds
		budget float64
	}{
		{"hedging off", 0, 10},
		{fmt.Sprintf("hedge_after %g s, hedge_budget_percent 100", hedgeAfter), hedgeAfter, 100},
		{fmt.Sprintf("hedge_after %g s, hedge_budget_percent 10", hedgeAfter), hedgeAfter, 10},
	}
	var arms []*latencyArm
	for i, st := range configs {
		primary, err := startUpstream(f.ctx, modeSlowTail)
		if err != nil {
			return nil, err
		}
		defer primary.close()
		n, err := f.start(primary, primaryAndBackup, func(c *config.Circuit) {
			c.HedgeAfter = st.after
			c.HedgeBudgetPercent = st.budget
		})
		if err != nil {
			return nil, err
		}
		defer n.stop()
		if _, err := generateOnce(f.ctx, n); err != nil {
			return nil, fmt.Errorf("%s: %w", st.title, err)
		}
		// The backup is shared, and the arms are measured one at a time:
		// its requests during an arm's measurement are that arm's hedges.
		arms = append(arms, &latencyArm{title: st.title, t: generateTarget(fmt.Sprintf("hedge-%d", i), n, nil), count: f.backup.chats.Load})
	}
	if err := f.alternate("hedge", arms); err != nil {
		return nil, err
	}
	return arms, nil
}

// alternate measures every arm s.rounds times at -latency-conns
// connections, each after a warm-up, rotating the order every round so
// that drift on the machine weighs on all arms alike. A failed request is
// an error.
func (f *failoverRun) alternate(label string, arms []*latencyArm) error {
	s := f.s
	for r := range s.rounds {
		for k := range arms {
			if err := f.ctx.Err(); err != nil {
				return err
			}
			a := arms[(k+r)%len(arms)]
			if s.warmup > 0 {
				hammer(f.ctx, a.t, phase{conns: s.latencyConns, max: s.requests, d: s.warmup})
			}
			c0 := a.count()
			res := hammer(f.ctx, a.t, phase{conns: s.latencyConns, max: s.requests, d: s.phaseTimeout, latencies: true})
			a.counted += a.count() - c0
			if res.errs > 0 {
				return fmt.Errorf("%s: %d of %d requests failed, first: %s", a.title, res.errs, res.errs+res.done, res.firstErr)
			}
			if err := f.ctx.Err(); err != nil {
				return err
			}
			a.done += res.done
			a.lat = append(a.lat, res.lat...)
			a.p50 = append(a.p50, res.percentile(0.50))
			a.p99 = append(a.p99, res.percentile(0.99))
			fmt.Fprintf(s.stderr, "round %d %-5s %-46s %5d requests  p50 %7.3f ms  p99 %7.3f ms\n",
				r+1, label, a.title, res.done, ms(res.percentile(0.50)), ms(res.percentile(0.99)))
		}
	}
	for _, a := range arms {
		slices.Sort(a.lat)
	}
	return nil
}

// reportFailover prints the three tables in Markdown.
func reportFailover(w io.Writer, s settings, rep failoverReport, took time.Duration) {
	fmt.Fprintf(w, "### 1. Success rate of `/generate` (200 with LLM-written code)\n\n")
	fmt.Fprintf(w, "One connection, %d calls per configuration, all counted (the calls that open the primary's breaker too); code_generator defaults otherwise (failure_threshold 2, recovery_timeout 45 s); with max_attempts 2, retry_backoff %g s.\n\n",
		int64(s.rounds)*s.requests, flapRetryBackoff)
	fmt.Fprintf(w, "| configuration | max_attempts | success | answered by the backup | LLM requests per call (primary + backup) | |\n|---|---|---|---|---|---|\n")
	for _, r := range rep.rates {
		note := ""
		if r.before {
			note = "before: one target"
		}
		if r.firstErr != "" && r.ok < r.calls {
			if note != "" {
				note += "; "
			}
			note += "first failure: " + shorten(r.firstErr, 60)
		}
		fmt.Fprintf(w, "| %s | %d | %.1f%% (%d of %d) | %.1f%% | %.2f (%.2f + %.2f) | %s |\n",
			r.title, r.maxAttempts, percent(r.ok, r.calls), r.ok, r.calls, percent(r.byBackup, r.calls),
			ratio(r.primaryRequests+r.backupRequests, r.calls), ratio(r.primaryRequests, r.calls), ratio(r.backupRequests, r.calls), note)
	}

	fmt.Fprintf(w, "\n### 2. Added latency of skipping an open primary\n\n")
	fmt.Fprintf(w, "%d connections, %d round(s) of %d requests per configuration, alternating; both configurations call the same backup upstream.\n\n",
		s.latencyConns, s.rounds, s.requests)
	fmt.Fprintf(w, "| configuration | requests | p50 | p99 | requests to the primary |\n|---|---|---|---|---|\n")
	for _, a := range rep.skip {
		fmt.Fprintf(w, "| %s | %d | %.3f ms | %.3f ms | %d |\n", a.title, a.done, ms(a.pooled(0.50)), ms(a.pooled(0.99)), a.counted)
	}
	base, open := rep.skip[0], rep.skip[1]
	diffs := make([]float64, len(base.p50))
	for i := range diffs {
		diffs[i] = msf(open.p50[i] - base.p50[i])
	}
	med, lo, hi := medianRange(diffs)
	pooled := msf(open.pooled(0.50) - base.pooled(0.50))
	met := "NOT met"
	if med < 0.1 {
		met = "met"
	}
	fmt.Fprintf(w, "\n| added p50, open primary over baseline | ms | goal | |\n|---|---|---|---|\n")
	fmt.Fprintf(w, "| per round: median (range) | %.3f (%.3f to %.3f) | < 0.1 ms | %s |\n", med, lo, hi, met)
	fmt.Fprintf(w, "| all requests pooled | %.3f | | |\n", pooled)

	fmt.Fprintf(w, "\n### 3. p99 against a primary with a slow tail\n\n")
	fmt.Fprintf(w, "The primary holds every %dth request (%.0f%%) %s and answers the rest at once; the backup is fast. %d connections, %d round(s) of %d requests per configuration, alternating.\n\n",
		slowEvery, 100.0/slowEvery, slowDelay, s.latencyConns, s.rounds, s.requests)
	fmt.Fprintf(w, "| configuration | requests | p50 | p99 | p99 per round: median (range) | hedged requests |\n|---|---|---|---|---|---|\n")
	for _, a := range rep.hedge {
		p99s := make([]float64, len(a.p99))
		for i, d := range a.p99 {
			p99s[i] = ms(d)
		}
		m, l, h := medianRange(p99s)
		fmt.Fprintf(w, "| %s | %d | %.3f ms | %.3f ms | %.3f ms (%.3f to %.3f) | %d (%.1f%%) |\n",
			a.title, a.done, ms(a.pooled(0.50)), ms(a.pooled(0.99)), m, l, h, a.counted, percent(a.counted, a.done))
	}
	fmt.Fprintf(w, "\nfailover scenario measured in %s\n", took.Round(100*time.Millisecond))
}

func percent(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

func ratio(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// msf is d in milliseconds, without ms's rounding to the microsecond.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// medianRange returns the median, least and greatest of v (not empty).
func medianRange(v []float64) (median, lo, hi float64) {
	v = slices.Clone(v)
	slices.Sort(v)
	median = v[len(v)/2]
	if len(v)%2 == 0 {
		median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return median, v[0], v[len(v)-1]
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
