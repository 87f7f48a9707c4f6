package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/api"
	"github.com/nexus/nexus/internal/infra/progress"
)

// These drive the SSE writer with an analyst stand-in that behaves as no
// real pipeline can on demand (panics, endless text); test/stream_test.go
// drives the real pipeline.

type analyzerFunc func(ctx context.Context, req agent.Request) (agent.Answer, error)

func (f analyzerFunc) Analyze(ctx context.Context, req agent.Request) (agent.Answer, error) {
	return f(ctx, req)
}

func sseServer(t *testing.T, a api.Analyzer, heartbeat time.Duration) *httptest.Server {
	t.Helper()
	h := api.NewServer(api.Config{Logger: slog.New(slog.DiscardHandler), Analyst: a,
		MaxBodyBytes: 1 << 20, RequestTimeout: time.Minute, SSEHeartbeat: heartbeat})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func postStream(t *testing.T, srv *httptest.Server) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/analyze", strings.NewReader(`{"query":"q","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestAPanicMidStreamShouldEndWithAnErrorAndDone(t *testing.T) {
	t.Parallel()
	srv := sseServer(t, analyzerFunc(func(ctx context.Context, req agent.Request) (agent.Answer, error) {
		req.Progress.Step(progress.Step{Step: "answer", Status: progress.StatusStarted})
		req.Progress.Token("answer", "Half an ans")
		panic("boom")
	}), time.Hour)
	resp, body := postStream(t, srv)
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(body, "event: error\ndata: {\"status\":500,\"code\":\"internal_error\",\"message\":\"internal server error\",\"retry_after\":null}\n\nevent: done\ndata: {}\n\n") {
		t.Fatalf("status %d, body:\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, "boom") {
		t.Fatal("the panic's value reached the client")
	}
}

func TestAFailureBeforeTheFirstEventShouldBePlainJSON(t *testing.T) {
	t.Parallel()
	srv := sseServer(t, analyzerFunc(func(ctx context.Context, req agent.Request) (agent.Answer, error) {
		return agent.Answer{}, &agent.InputError{Field: "data.content", Message: "not JSON"}
	}), time.Hour)
	resp, body := postStream(t, srv)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" ||
		!strings.Contains(body, `"field":"data.content"`) {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestHeartbeatsShouldGoOutOnlyWhileNothingElseIs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := sseServer(t, analyzerFunc(func(ctx context.Context, req agent.Request) (agent.Answer, error) {
		req.Progress.Step(progress.Step{Step: "answer", Status: progress.StatusStarted})
		<-release
		req.Progress.Token("answer", "done waiting")
		return agent.Answer{Answer: "done waiting", Circuit: "data_analyst"}, nil
	}), 20*time.Millisecond)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/analyze", strings.NewReader(`{"query":"q"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/plain, text/event-stream;q=0.5")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	pings := 0
	var rest strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		if line == ": ping\n" {
			pings++
			if pings == 3 {
				close(release)
			}
			continue
		}
		rest.WriteString(line)
	}
	got := rest.String()
	if pings < 3 || !strings.Contains(got, "event: token\ndata: {\"step\":\"answer\",\"text\":\"done waiting\"}\n\n") || !strings.HasSuffix(got, "event: done\ndata: {}\n\n") {
		t.Fatalf("%d pings, then:\n%s", pings, got)
	}
}

func TestAClientThatStopsReadingShouldBeCutOffAndItsWorkCancelled(t *testing.T) {
	t.Parallel()
	canceled := make(chan error, 1)
	big := strings.Repeat("x", 64<<10)
	srv := sseServer(t, analyzerFunc(func(ctx context.Context, req agent.Request) (agent.Answer, error) {
		req.Progress.Step(progress.Step{Step: "answer", Status: progress.StatusStarted})
		// An LLM that writes without end: the writer must never make it
		// wait on the client, and the client's stall must end it.
		for i := 0; ctx.Err() == nil; i++ {
			if i > 100000 {
				canceled <- errors.New("never cancelled")
				return agent.Answer{}, nil
			}
			req.Progress.Token("answer", big)
			time.Sleep(10 * time.Millisecond)
		}
		canceled <- nil
		return agent.Answer{}, ctx.Err()
	}), time.Hour)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"query":"q","stream":true}`
	_, err = io.WriteString(conn, "POST /analyze HTTP/1.1\r\nHost: nexus\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body)
	if err != nil {
		t.Fatal(err)
	}
	// The client reads the status line, then nothing more
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("status line %q, %v", line, err)
	}
	select {
	case err := <-canceled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the pipeline was not cancelled")
	}
}

func TestAResultLargerThanTheQueueCapShouldReachAFastClient(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("y", 3<<20)
	srv := sseServer(t, analyzerFunc(func(ctx context.Context, req agent.Request) (agent.Answer, error) {
		req.Progress.Step(progress.Step{Step: "answer", Status: progress.StatusStarted})
		req.Progress.Token("answer", big)
		return agent.Answer{Answer: big, Circuit: "data_analyst"}, nil
	}), time.Hour)
	resp, body := postStream(t, srv)
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(body, "event: done\ndata: {}\n\n") || strings.Count(body, big) != 2 {
		t.Fatalf("status %d, %d bytes, ends %q", resp.StatusCode, len(body), body[max(0, len(body)-80):])
	}
}
