package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// hangingRequests is how many /generate requests the test holds at the
// upstream at once; maxHangingRSS is the server's budget meanwhile.
const (
	hangingRequests = 1000
	maxHangingRSS   = 150 << 20
)

// With 1,000 requests hanging on the upstream, the server stays under
// 150 MB of RSS, and once they are answered its goroutines return to where
// they were.
//
// The server is the real binary in its own process, so that its RSS
// (/proc/PID/statm) and its goroutines (go_goroutines on /metrics) are its
// own, not the test client's and the fake upstream's; and so that the
// check holds under -race too, which inflates memory and caps a process at
// 8,128 goroutines (1,000 hanging requests take about 9,000 with client,
// server and upstream in one process). Skipped with -short, as it builds
// the binary. Not parallel: 2,000 connections opened at once would slow
// the timing-sensitive tests around it on a small machine; alone it takes
// a few seconds.
func TestThousandHangingRequestsShouldStayUnder150MBAndLeaveNoGoroutines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and holds 1,000 requests open; skipped with -short")
	}
	// Given the server, whose code_generator outwaits the test, in front
	// of an upstream that holds every request while a gate is set
	bin := buildServer(t)
	var gate atomic.Pointer[chan struct{}]
	llm := fakellm.New(t)
	llm.SetHandler(func(fakellm.Request) fakellm.Step {
		if g := gate.Load(); g != nil {
			<-*g
		}
		return fakellm.Reply("```python\nresult = 1\n```")
	})
	srv := startProcess(t, bin, llm.URL(), func(c *config.Config) {
		cg := c.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
		cg.Timeout = 120
		c.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = cg
	})
	// Registered last, so it runs first: a failing test releases the held
	// requests before the server is stopped and the upstream closed.
	t.Cleanup(func() {
		if g := gate.Swap(nil); g != nil {
			close(*g)
		}
	})

	tr := &http.Transport{MaxIdleConnsPerHost: hangingRequests}
	client := &http.Client{Transport: tr, Timeout: 3 * time.Minute}
	defer tr.CloseIdleConnections()
	// hang sends count requests and returns once all of them are held at
	// the upstream, with release, which lets them finish and returns the
	// first failure.
	hang := func(count int) (release func() error) {
		g := make(chan struct{})
		gate.Store(&g)
		errs := make(chan error, count)
		var wg sync.WaitGroup
		for range count {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post(srv.url+"/generate", "application/json",
					bytes.NewReader([]byte(`{"prompt":"sum the sales column","language":"python"}`)))
				if err != nil {
					errs <- err
					return
				}
				if _, err := drain(resp); err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d, read error %v", resp.StatusCode, err)
				}
			}()
		}
		eventually(t, 2*time.Minute, fmt.Sprintf("%d requests hanging at the upstream", count), func() bool {
			return llm.InFlight() == count
		})
		return func() error {
			if gate.CompareAndSwap(&g, nil) {
				close(g)
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(2 * time.Minute):
				return fmt.Errorf("the released requests did not finish within 2 minutes")
			}
			close(errs)
			return <-errs
		}
	}
	// A first round of 100 held at once fills the server's pool of idle
	// upstream connections (64), so that the baseline already holds it
	// whatever the machine's load.
	if err := hang(100)(); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	tr.CloseIdleConnections()
	baseline := srv.settledGoroutines(t)
	rssBefore := srv.rss(t)

	// When 1,000 requests hang on the upstream
	release := hang(hangingRequests)
	hanging, during := srv.goroutines(t), srv.rss(t)

	// Then the server stays under 150 MB
	t.Logf("server RSS %d MiB before, %d MiB with %d requests hanging (%+d MiB); goroutines %d before, %d hanging",
		rssBefore>>20, during>>20, hangingRequests, (during-rssBefore)>>20, baseline, hanging)
	if during > maxHangingRSS {
		t.Errorf("server RSS %d MiB with %d requests hanging, want under %d MiB", during>>20, hangingRequests, maxHangingRSS>>20)
	}

	// And when they are answered, each gets its 200 and the server's
	// goroutines come back to the baseline
	if err := release(); err != nil {
		t.Fatalf("a released request failed: %v", err)
	}
	tr.CloseIdleConnections()
	eventually(t, time.Minute, fmt.Sprintf("the server's goroutines back to %d", baseline), func() bool {
		return srv.goroutines(t) <= baseline
	})
}

// process is the server binary running in its own process.
type process struct {
	cmd    *exec.Cmd
	url    string
	scrape *http.Client // one kept-alive connection, in every baseline alike
}

// startProcess runs bin on 127.0.0.1:0 with the test config (edited by
// mutate) against the upstream at llmURL, and stops it
// with SIGTERM when the test ends, expecting exit 0.
func startProcess(t *testing.T, bin, llmURL string, mutate func(*config.Config)) *process {
	t.Helper()
	cfg := testConfig()
	cfg.LLM.BaseURL = llmURL
	cfg.Datasets.Workers = 1
	mutate(&cfg)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NEXUS_CONFIG="+writeConfig(t, cfg), "NEXUS_ADDR=127.0.0.1:0",
		"NEXUS_DATA_DIR="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["message"] == "nexus listening" {
				addr <- m["addr"].(string)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	p := &process{cmd: cmd, scrape: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		p.scrape.CloseIdleConnections()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() { <-drained; exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server exit: %v, want 0", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("server did not stop within 30 s of SIGTERM")
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not log \"nexus listening\" within 30 s")
	}
	return p
}

// goroutines reads go_goroutines from the server's /metrics.
func (p *process) goroutines(t *testing.T) int {
	t.Helper()
	resp, err := p.scrape.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	v, ok := metric(string(body), "go_goroutines", nil)
	if !ok {
		t.Fatalf("no go_goroutines in /metrics:\n%s", body)
	}
	return int(v)
}

// settledGoroutines waits until the server's goroutine count has stopped
// falling (connections closing, handlers returning) and returns it.
func (p *process) settledGoroutines(t *testing.T) int {
	t.Helper()
	last, same := p.goroutines(t), 0
	for deadline := time.Now().Add(10 * time.Second); same < 10 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		now := p.goroutines(t)
		if now == last {
			same++
		} else {
			last, same = now, 0
		}
	}
	return last
}

// rss is the server process's resident set size, from /proc/PID/statm.
func (p *process) rss(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc/PID/statm: %v", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		t.Fatalf("statm: %q", data)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}
