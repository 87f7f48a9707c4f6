package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/nexus/nexus/cmd/server/app"
	"github.com/nexus/nexus/config"
)

// settings are the command line.
type settings struct {
	duration     time.Duration
	warmup       time.Duration
	maxRequests  int64
	rounds       int
	conns        int
	latencyConns int
	profileDir   string
	logPath      string
	stderr       io.Writer
	// scenario is scenarioPaths (the four request paths),
	// scenarioFailover or scenarioStream.
	scenario string
	// requests and phaseTimeout bound each measurement of the failover
	// and stream scenarios, which count requests instead of running for
	// -duration.
	requests     int64
	phaseTimeout time.Duration
	// streams is how many streams the stream scenario holds open at once.
	streams int
}

// Scenarios, chosen with -scenario.
const (
	scenarioPaths    = "paths"
	scenarioFailover = "failover"
	scenarioStream   = "stream"
)

// streamRequests is -requests in the stream scenario when not given: its
// measurements are sequential and some wait 20 ms for their first token.
const streamRequests = 200

func parseSettings(args []string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("nexus-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := settings{stderr: stderr}
	fs.DurationVar(&s.duration, "duration", time.Second, "length of each measurement")
	fs.DurationVar(&s.warmup, "warmup", 200*time.Millisecond, "unmeasured load before each measurement")
	fs.Int64Var(&s.maxRequests, "max-requests", 1_000_000, "most requests per measurement")
	fs.IntVar(&s.rounds, "rounds", 5, "measure every target this many times; medians are reported")
	fs.IntVar(&s.conns, "conns", 32, "connections for the throughput figure")
	fs.IntVar(&s.latencyConns, "latency-conns", 4, "connections for the latency figures")
	fs.StringVar(&s.profileDir, "cpuprofile", "", "directory for one CPU profile per target (first round, throughput); in the stream scenario, a CPU profile of the first-token part and heap and goroutine profiles with every stream open")
	fs.StringVar(&s.logPath, "log", "", "file for Nexus's log (default: a temporary file, removed at the end)")
	fs.StringVar(&s.scenario, "scenario", scenarioPaths, `what to measure: "paths" (direct, /generate, open circuit, bare), "failover" (success rates with a failing primary, the cost of skipping an open primary, hedging against a slow tail) or "stream" (time to the first event and first token of a streamed /analyze against straight to the upstream; the cost of -streams open streams)`)
	fs.Int64Var(&s.requests, "requests", 500, fmt.Sprintf("failover and stream scenarios: requests per configuration per round (the success rates use -rounds × -requests calls; the stream scenario's default is %d)", streamRequests))
	fs.DurationVar(&s.phaseTimeout, "phase-timeout", 30*time.Second, "failover and stream scenarios: longest time one measurement may take; it stops early with the requests made so far (opening or releasing the open streams past it is an error)")
	fs.IntVar(&s.streams, "streams", 1000, "stream scenario: streams held open at once")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if s.duration <= 0 || s.rounds < 1 || s.conns < 1 || s.latencyConns < 1 || s.maxRequests < 1 || s.requests < 1 || s.phaseTimeout <= 0 || s.streams < 1 {
		return s, errors.New("-duration, -rounds, -conns, -latency-conns, -max-requests, -requests, -phase-timeout and -streams must be positive")
	}
	if s.scenario != scenarioPaths && s.scenario != scenarioFailover && s.scenario != scenarioStream {
		return s, fmt.Errorf(`-scenario must be %q, %q or %q, got %q`, scenarioPaths, scenarioFailover, scenarioStream, s.scenario)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if s.scenario == scenarioStream && !given["requests"] {
		s.requests = streamRequests
	}
	return s, nil
}

// Names of the four targets, in the order they are measured.
const (
	targetBare     = "bare"
	targetDirect   = "direct"
	targetGenerate = "generate"
	targetOpen     = "open"
)

// targetOrder measures each goal's pair back to back, so that the
// machine's other work weighs on both sides of a ratio alike.
var targetOrder = []string{targetDirect, targetGenerate, targetOpen, targetBare}

var targetTitles = map[string]string{
	targetDirect:   "straight to the upstream",
	targetGenerate: "`/generate` through Nexus",
	targetOpen:     "`/generate`, `code_generator` circuit open (503)",
	targetBare:     "bare Go net/http server, fixed JSON",
}

// figures are one round's measurements of one target.
type figures struct {
	rps      float64
	p50, p99 time.Duration
	// cpu is the whole process's CPU time (user and system: load
	// generator, servers and runtime together) per request in the
	// throughput phase. Unlike rps it hardly moves when other work takes
	// the machine's cores, so its ratios are the steadier estimate of the
	// throughput ratios on an idle machine.
	cpu time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseSettings(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "nexus-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if s.logPath == "" {
		s.logPath = filepath.Join(tmp, "nexus.log")
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	switch s.scenario {
	case scenarioFailover:
		return runFailover(ctx, s, tmp, logFile, stdout)
	case scenarioStream:
		return runStream(ctx, s, tmp, logFile, stdout)
	}

	upstream, err := serve(ctx, "upstream", upstreamHandler())
	if err != nil {
		return err
	}
	defer upstream.close()
	bare, err := serve(ctx, "bare", bareHandler())
	if err != nil {
		return err
	}
	defer bare.close()
	nx, err := startNexus(ctx, tmp, "http://"+upstream.addr+"/v1", logFile, stderr)
	if err != nil {
		return err
	}
	defer nx.stop()

	genBody := []byte(`{"prompt":"sum the sales column","language":"python"}`)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	targets := map[string]target{
		targetDirect: {name: targetDirect, method: http.MethodPost, url: "http://" + upstream.addr + "/v1/chat/completions",
			body: upstreamRequest, header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + llmKey}}, want: http.StatusOK},
		targetGenerate: {name: targetGenerate, method: http.MethodPost, url: nx.url + "/generate", body: genBody, header: jsonHeader, want: http.StatusOK},
		targetOpen:     {name: targetOpen, method: http.MethodPost, url: nx.url + "/generate", body: genBody, header: jsonHeader, want: http.StatusServiceUnavailable},
		targetBare:     {name: targetBare, method: http.MethodPost, url: "http://" + bare.addr + "/generate", body: genBody, header: jsonHeader, want: http.StatusOK},
	}
	if err := nx.checkGenerate(ctx); err != nil {
		return err
	}

	fmt.Fprintf(stderr, "nexus-load: %s, GOMAXPROCS %d, %d round(s) of %s per measurement, log in %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), s.rounds, s.duration, s.logPath)
	rounds := make([]map[string]figures, 0, s.rounds)
	for r := range s.rounds {
		got := map[string]figures{}
		for _, name := range targetOrder {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t := targets[name]
			if name == targetOpen {
				if err := nx.circuitAction(ctx, "open"); err != nil {
					return err
				}
			}
			f, err := measure(ctx, t, s, r == 0)
			if name == targetOpen {
				if cerr := nx.circuitAction(ctx, "close"); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return err
			}
			got[name] = f
			fmt.Fprintf(stderr, "round %d %-8s %8.0f req/s %6.1f CPU µs/req  p50 %6.3f ms  p99 %6.3f ms\n",
				r+1, name, f.rps, float64(f.cpu.Nanoseconds())/1000, ms(f.p50), ms(f.p99))
		}
		rounds = append(rounds, got)
	}
	report(stdout, s, rounds)
	return nil
}

// measure runs the throughput phase, then the latency phase, each after a
// warm-up. With profile set and -cpuprofile given, it writes the CPU
// profile of the throughput phase.
func measure(ctx context.Context, t target, s settings, profile bool) (figures, error) {
	warm := func(conns int) {
		if s.warmup > 0 {
			hammer(ctx, t, phase{conns: conns, max: s.maxRequests, d: s.warmup})
		}
	}
	warm(s.conns)
	stopProfile := func() {}
	profilePath := ""
	if profile && s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return figures{}, err
		}
		f, err := os.Create(filepath.Join(s.profileDir, t.name+".pprof"))
		if err != nil {
			return figures{}, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return figures{}, err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		profilePath = f.Name()
	}
	cpu0 := processCPU()
	tput := hammer(ctx, t, phase{conns: s.conns, max: s.maxRequests, d: s.duration})
	cpu := processCPU() - cpu0
	stopProfile()
	if profilePath != "" {
		// To turn the profile's CPU per part into CPU per request.
		fmt.Fprintf(s.stderr, "profile %s: %d requests\n", profilePath, tput.done)
	}
	if tput.errs > 0 {
		return figures{}, fmt.Errorf("%s: %d of %d requests failed, first: %s", t.name, tput.errs, tput.errs+tput.done, tput.firstErr)
	}
	warm(s.latencyConns)
	lat := hammer(ctx, t, phase{conns: s.latencyConns, max: s.maxRequests, d: s.duration, latencies: true})
	if lat.errs > 0 {
		return figures{}, fmt.Errorf("%s: %d of %d requests failed, first: %s", t.name, lat.errs, lat.errs+lat.done, lat.firstErr)
	}
	f := figures{rps: tput.rps(), p50: lat.percentile(0.50), p99: lat.percentile(0.99)}
	if tput.done > 0 {
		f.cpu = cpu / time.Duration(tput.done)
	}
	return f, nil
}

// processCPU is the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report prints the medians over rounds as a Markdown table, then the
// goals' ratios, each the median (and range) of the per-round ratios: a
// ratio within one round is what the goals compare.
func report(w io.Writer, s settings, rounds []map[string]figures) {
	spread := func(f func(map[string]figures) float64) (median, lo, hi float64) {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = f(r)
		}
		slices.Sort(v)
		median = v[len(v)/2]
		if len(v)%2 == 0 {
			median = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return median, v[0], v[len(v)-1]
	}
	med := func(f func(map[string]figures) float64) float64 {
		m, _, _ := spread(f)
		return m
	}
	fmt.Fprintf(w, "| path | req/s at %d conns | CPU µs/req | p50 at %d conns | p99 at %d conns |\n|---|---|---|---|---|\n",
		s.conns, s.latencyConns, s.latencyConns)
	for _, name := range []string{targetDirect, targetGenerate, targetOpen, targetBare} {
		fmt.Fprintf(w, "| %s | %.0f | %.1f | %.3f ms | %.3f ms |\n", targetTitles[name],
			med(func(r map[string]figures) float64 { return r[name].rps }),
			med(func(r map[string]figures) float64 { return float64(r[name].cpu.Nanoseconds()) / 1000 }),
			med(func(r map[string]figures) float64 { return ms(r[name].p50) }),
			med(func(r map[string]figures) float64 { return ms(r[name].p99) }))
	}
	genShare, genLo, genHi := spread(func(r map[string]figures) float64 { return r[targetGenerate].rps / r[targetDirect].rps })
	added, addedLo, addedHi := spread(func(r map[string]figures) float64 { return ms(r[targetGenerate].p50 - r[targetDirect].p50) })
	openShare, openLo, openHi := spread(func(r map[string]figures) float64 { return r[targetOpen].rps / r[targetBare].rps })
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\n| goal, per round | median | range | target | |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| `/generate` ÷ direct throughput | %.2f | %.2f–%.2f | ≥ 0.20 | %s |\n", genShare, genLo, genHi, met(genShare >= 0.20))
	fmt.Fprintf(w, "| `/generate` p50 added over direct | %.3f ms | %.3f–%.3f | < 0.3 ms | %s |\n", added, addedLo, addedHi, met(added < 0.3))
	fmt.Fprintf(w, "| open circuit ÷ bare throughput | %.2f | %.2f–%.2f | ≥ 0.70 | %s |\n", openShare, openLo, openHi, met(openShare >= 0.70))
	cpuRatio := func(num, den string) func(map[string]figures) float64 {
		return func(r map[string]figures) float64 { return float64(r[den].cpu) / float64(r[num].cpu) }
	}
	genCPU, genCPULo, genCPUHi := spread(cpuRatio(targetGenerate, targetDirect))
	openCPU, openCPULo, openCPUHi := spread(cpuRatio(targetOpen, targetBare))
	fmt.Fprintf(w, "| same, from CPU per request: direct ÷ `/generate` | %.2f | %.2f–%.2f | ≥ 0.20 | %s |\n", genCPU, genCPULo, genCPUHi, met(genCPU >= 0.20))
	fmt.Fprintf(w, "| same, from CPU per request: bare ÷ open circuit | %.2f | %.2f–%.2f | ≥ 0.70 | %s |\n", openCPU, openCPULo, openCPUHi, met(openCPU >= 0.70))
	fmt.Fprintf(w, "\nmedians of %d round(s), %s per measurement\n", len(rounds), s.duration)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// llmKey is the bearer token Nexus sends the upstream; the upstream checks
// it, as a real one would.
const llmKey = "sk-nexus-load"

// upstreamRequest is a chat completion request like the one Nexus sends.
var upstreamRequest = []byte(`{"model":"llama3.1","messages":[{"role":"system","content":"You write short, safe Python using pandas."},{"role":"user","content":"Task: sum the sales column"}]}`)

// upstreamReply is the fixed completion: a short Python block that passes
// the review.
var upstreamReply = func() []byte {
	b, err := json.Marshal(map[string]any{
		"id": "chatcmpl-load", "object": "chat.completion", "created": 1700000000, "model": "llama3.1",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": "```python\nresult = df['sales'].sum()\n```"}}},
		"usage": map[string]any{"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
	})
	if err != nil {
		panic(err)
	}
	return b
}()

// upstreamHandler is a fast OpenAI-compatible upstream: it checks the path
// and the key, reads the request and answers the fixed completion.
func upstreamHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+llmKey {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}`))
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(upstreamReply)
	})
}

var bareReply = []byte(`{"status":"ok","message":"a fixed body from a bare net/http handler"}`)

// bareHandler is the floor: it reads the request and answers a fixed body.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bareReply)
	})
}

// server is a plain HTTP server on 127.0.0.1:0.
type server struct {
	addr  string
	close func()
	// closeIdle closes the connections that wait for a next request,
	// and keeps serving.
	closeIdle func()
}

// serve starts h on loopback. Its goroutines carry the pprof label
// part=label.
func serve(ctx context.Context, label string, h http.Handler) (server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return server{}, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go pprof.Do(context.WithoutCancel(ctx), pprof.Labels("part", label), func(context.Context) {
		defer close(done)
		_ = srv.Serve(ln)
	})
	closeIdle := func() {
		// Turning keep-alives off closes the idle connections.
		srv.SetKeepAlivesEnabled(false)
		srv.SetKeepAlivesEnabled(true)
	}
	return server{addr: ln.Addr().String(), close: func() { _ = srv.Close(); <-done }, closeIdle: closeIdle}, nil
}

// nexus is the real server, app.Run, running in this process.
type nexus struct {
	url   string
	token string
	stop  func()
}

// startNexus runs app.Run on 127.0.0.1:0 with the shipped defaults, except
// one DuckDB worker (Python generation never uses it) and the upstream at
// baseURL. It logs at info, so the access log is part of what is measured.
func startNexus(ctx context.Context, dir, baseURL string, logs, stderr io.Writer) (*nexus, error) {
	return startNexusWith(ctx, dir, func(cfg *config.Config) { cfg.LLM.BaseURL = baseURL }, nil, logs, stderr)
}

// startNexusWith is startNexus with the defaults changed by mutate (after
// the one DuckDB worker is set) and env added to Nexus's environment, as
// for a further provider's key. Its config and data live in dir.
func startNexusWith(ctx context.Context, dir string, mutate func(*config.Config), extraEnv map[string]string, logs, stderr io.Writer) (*nexus, error) {
	cfg := config.Default()
	cfg.Datasets.Workers = 1
	// A load test measures Nexus, not its per-address rate limit.
	cfg.RateLimit.PerMinute, cfg.RateLimit.PerHour = 0, 0
	mutate(&cfg)
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, err
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	env := map[string]string{
		"NEXUS_CONFIG":      path,
		"NEXUS_ADDR":        "127.0.0.1:0",
		"NEXUS_DATA_DIR":    filepath.Join(dir, "data"),
		"NEXUS_ADMIN_TOKEN": hex.EncodeToString(tok[:]),
		"NEXUS_LOG_LEVEL":   "info",
		"LLM_API_KEY":       llmKey,
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go pprof.Do(runCtx, pprof.Labels("part", "nexus"), func(runCtx context.Context) {
		done <- app.Run(runCtx, nil, func(k string) string { return env[k] }, logs, logs, func(a net.Addr) { addrc <- a }, nil)
	})
	select {
	case a := <-addrc:
		stop := func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintln(stderr, "nexus-load: nexus stopped with:", err)
			}
		}
		return &nexus{url: "http://" + a.String(), token: env["NEXUS_ADMIN_TOKEN"], stop: stop}, nil
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("nexus did not start: %w", err)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return nil, errors.New("nexus did not start within 30 s")
	}
}

// checkGenerate makes sure /generate answers 200 with reviewed, valid
// code before anything is measured: a fast wrong answer proves nothing.
func (n *nexus) checkGenerate(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/generate",
		bytes.NewReader([]byte(`{"prompt":"sum the sales column","language":"python"}`)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		IsValid bool   `json:"is_valid"`
		Code    string `json:"code"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || !out.IsValid || out.Code == "" {
		return fmt.Errorf("/generate does not answer valid code: status %d: %s", resp.StatusCode, body)
	}
	return nil
}

// circuitAction forces the code_generator circuit open or closes it.
func (n *nexus) circuitAction(ctx context.Context, action string) error {
	return n.targetAction(ctx, action, "")
}

// targetAction is circuitAction on one target of the circuit, chosen by
// query ("provider=P&model=M"), or on every target when query is empty.
func (n *nexus) targetAction(ctx context.Context, action, query string) error {
	u := n.url + "/api/circuits/" + config.CircuitCodeGenerator + "/" + action
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("circuit %s: status %d: %s", action, resp.StatusCode, body)
	}
	return nil
}
