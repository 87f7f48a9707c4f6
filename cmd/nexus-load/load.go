package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one thing the load loop sends requests to.
type target struct {
	name   string
	method string
	url    string
	body   []byte
	header http.Header
	// want is the status every answer must have; anything else counts as
	// an error.
	want int
	// check, if set, also judges the body of an answer with status want;
	// an error counts the request as failed.
	check func(body []byte) error
}

// phase bounds one measurement: it stops after max requests or when d has
// passed, whichever comes first.
type phase struct {
	conns int
	max   int64
	d     time.Duration
	// latencies asks for every request's duration to be kept.
	latencies bool
}

// result is what one phase measured.
type result struct {
	done    int64
	errs    int64
	elapsed time.Duration
	// firstErr describes the first wrong answer, for the report.
	firstErr string
	lat      []time.Duration // sorted; only when phase.latencies
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.done) / r.elapsed.Seconds()
}

// percentile returns the p-th (0..1) latency, or 0 without latencies.
func (r result) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*p)]
}

// hammer sends requests to t over ph.conns keep-alive connections, one
// goroutine per connection, each sending its next request as soon as the
// previous answer is read (a closed loop, as wrk does). The goroutines
// carry the pprof label part=client, so that a CPU profile can tell the
// load generator from the server.
func hammer(ctx context.Context, t target, ph phase) result {
	tr := &http.Transport{
		MaxIdleConns:        ph.conns,
		MaxIdleConnsPerHost: ph.conns,
		MaxConnsPerHost:     ph.conns,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var (
		left     atomic.Int64
		ok       atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Pointer[string]
		wg       sync.WaitGroup
	)
	left.Store(ph.max)
	perConn := make([][]time.Duration, ph.conns)
	start := time.Now()
	deadline := start.Add(ph.d)
	for i := range ph.conns {
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("part", "client"), func(ctx context.Context) {
			defer wg.Done()
			var lat []time.Duration
			if ph.latencies {
				lat = make([]time.Duration, 0, 4096)
			}
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				now := time.Now()
				if now.After(deadline) {
					break
				}
				err := send(ctx, client, t)
				if err != nil {
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				ok.Add(1)
				if ph.latencies {
					lat = append(lat, time.Since(now))
				}
			}
			perConn[i] = lat
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start), done: ok.Load(), errs: errs.Load()}
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	if ph.latencies {
		for _, l := range perConn {
			r.lat = append(r.lat, l...)
		}
		slices.Sort(r.lat)
	}
	return r
}

// send makes one request and reads the whole answer, so that the
// connection is reused.
func send(ctx context.Context, client *http.Client, t target) error {
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, bytes.NewReader(t.body))
	if err != nil {
		return err
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	var body []byte
	if t.check != nil {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != t.want {
		return fmt.Errorf("%s: status %d, want %d", t.name, resp.StatusCode, t.want)
	}
	if t.check != nil {
		if err := t.check(body); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return nil
}
