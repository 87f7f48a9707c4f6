package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// census counts this process's goroutines by their pprof label part
// (nexus, upstream or client: see serve, startNexusWith and the load
// loops; "" for none) and by part and entry function, so that the
// server's goroutines are told from the load generator's and the fake
// upstream's that share the process.
type census struct {
	total   int
	parts   map[string]int
	entries map[censusKey]int
}

type censusKey struct{ part, entry string }

// takeCensus reads the goroutine profile.
func takeCensus() (census, error) {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return census{}, err
	}
	return parseCensus(b.String())
}

var gowrap = regexp.MustCompile(`\.gowrap\d+$`)

// parseCensus reads the goroutine profile's text form (debug=1): a header
// "goroutine profile: total N", then one record per distinct stack and
// label set, separated by blank lines: "COUNT @ pc pc ...", an optional
// "# labels: {JSON}" line and one "#\tpc\tfunc+off\tfile:line" line per
// frame, innermost first. A record's entry function is its outermost
// frame, or the frame inside it when that is a compiler-made wrapper of a
// go statement (func.gowrapN).
func parseCensus(text string) (census, error) {
	c := census{parts: map[string]int{}, entries: map[censusKey]int{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var (
		count  int
		part   string
		frames []string
		header bool
	)
	flush := func() {
		if count == 0 {
			return
		}
		entry := "?"
		if n := len(frames); n > 0 {
			entry = frames[n-1]
			if gowrap.MatchString(entry) && n > 1 {
				entry = frames[n-2]
			}
		}
		entry = strings.TrimPrefix(entry, "github.com/nexus/nexus/")
		c.parts[part] += count
		c.entries[censusKey{part, entry}] += count
		count, part, frames = 0, "", frames[:0]
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !header:
			n, ok := strings.CutPrefix(line, "goroutine profile: total ")
			if !ok {
				return c, fmt.Errorf("goroutine profile: unexpected header %q", line)
			}
			total, err := strconv.Atoi(n)
			if err != nil {
				return c, fmt.Errorf("goroutine profile: header %q: %w", line, err)
			}
			c.total, header = total, true
		case line == "":
			flush()
		case strings.HasPrefix(line, "# labels: "):
			var labels map[string]string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "# labels: ")), &labels); err != nil {
				return c, fmt.Errorf("goroutine profile: labels %q: %w", line, err)
			}
			part = labels["part"]
		case strings.HasPrefix(line, "#\t"):
			f := strings.Split(line, "\t")
			if len(f) >= 3 {
				name, _, _ := strings.Cut(f[2], "+0x")
				frames = append(frames, name)
			}
		default:
			n, _, ok := strings.Cut(line, " @ ")
			if !ok {
				continue
			}
			flush()
			v, err := strconv.Atoi(n)
			if err != nil {
				return c, fmt.Errorf("goroutine profile: record %q: %w", line, err)
			}
			count = v
		}
	}
	flush()
	return c, sc.Err()
}

// snapshot is the process's goroutines and memory at one moment, after a
// garbage collection.
type snapshot struct {
	census census
	// heapLive is the heap still referenced after the collection
	// (MemStats.HeapAlloc); heapInuse the heap spans in use
	// (HeapInuse), which also counts free space inside them.
	heapLive, heapInuse uint64
	// stacks is the memory of goroutine stacks (StackInuse).
	stacks uint64
	// fds counts the process's open file descriptors; -1 when /proc
	// cannot tell.
	fds int
}

func takeSnapshot() (snapshot, error) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	c, err := takeCensus()
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{census: c, heapLive: m.HeapAlloc, heapInuse: m.HeapInuse, stacks: m.StackInuse, fds: openFDs()}, nil
}

// openFDs counts the entries of /proc/self/fd, or returns -1.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// settle waits, at most max, until the number of goroutines has held
// still for a quarter of a second, so that a census does not catch
// connections half opened or half closed.
func settle(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	last, still := -1, 0
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		n := runtime.NumGoroutine()
		if n == last {
			if still++; still >= 10 {
				return
			}
		} else {
			last, still = n, 0
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fileLimit is the process's limit on open files, before and after
// ensureFiles.
type fileLimit struct {
	before, after, hard uint64
}

// ensureFiles makes sure that the process may open need files, raising
// its soft limit (up to the hard one) when it must. Go already raises the
// soft limit to the hard one at start-up on Linux, so this rarely acts.
func ensureFiles(need uint64) (fileLimit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fileLimit{}, fmt.Errorf("reading the open-file limit: %w", err)
	}
	fl := fileLimit{before: rl.Cur, after: rl.Cur, hard: rl.Max}
	if rl.Cur >= need {
		return fl, nil
	}
	if rl.Max < need {
		return fl, fmt.Errorf("the streams need about %d open files; the hard limit is %d (raise it, or lower -streams)", need, rl.Max)
	}
	rl.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fl, fmt.Errorf("raising the open-file limit to %d: %w", need, err)
	}
	fl.after = need
	return fl, nil
}
