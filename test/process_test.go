package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// buildServer compiles cmd/server once per test binary run.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nexus")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/server")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// The real binary, on a real SIGTERM, finishes the request in flight,
// refuses new connections and exits 0; SIGHUP reloads its config.
func TestProcessShouldDrainOnSIGTERMAndExitZero(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildServer(t)
	llm := fakellm.New(t)
	cfg := testConfig()
	cfg.LLM.BaseURL = llm.URL()
	// The held call outlasts the signal's delivery; its timeout must too.
	c := cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst]
	c.Timeout = 60
	cfg.CircuitBreaker.Circuits[config.CircuitDataAnalyst] = c
	path := writeConfig(t, cfg)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NEXUS_CONFIG="+path, "NEXUS_ADDR=127.0.0.1:0", "NEXUS_DATA_DIR="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan map[string]any, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	var addr string
	waitLine := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("process ended before logging %q", msg)
				}
				if m["message"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q log line", msg)
			}
		}
	}
	addr = waitLine("nexus listening")["addr"].(string)
	base := "http://" + addr

	// SIGHUP reloads.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLine("config reloaded")

	release := make(chan struct{})
	llm.EnqueueFor(analystModel, fakellm.Held(release, "done"))
	result := make(chan string, 1)
	go func() {
		resp, err := http.Post(base+"/analyze", "application/json", strings.NewReader(`{"query":"q"}`))
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		result <- resp.Status + " " + string(body)
	}()
	eventually(t, 5*time.Second, "request reached the fake", func() bool { return llm.Requests() == 1 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The request is still in flight when the shutdown begins.
	waitLine("shutting down")
	close(release)
	if got := <-result; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"answer":"done"`) {
		t.Fatalf("in-flight request: %s", got)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, want 0", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("the stopped server still answers")
	}
}
