package dataset

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Kill reasons, the label values of nexus_worker_kills_total.
const (
	KillMemory    = "memory"    // RSS crossed the worker's ceiling
	KillDeadline  = "deadline"  // the job ran past its time limit
	KillCrash     = "crash"     // the worker died by itself (or by a signal from outside)
	KillCancelled = "cancelled" // the caller went away and the job did not stop
)

// killGrace is how long a job may run past its deadline, or past a
// cancel, before its worker is killed: DuckDB answers an interrupt in
// about 200 ms when it can answer at all.
const killGrace = 500 * time.Millisecond

// rssPoll is how often a busy worker's RSS is read.
const rssPoll = 50 * time.Millisecond

// asHeadroomMB is added to the RSS ceiling for RLIMIT_AS: DuckDB reserves
// about 1.5 GiB of address space at start that it never touches.
const asHeadroomMB = 2048

// PoolStats is a snapshot of the worker pool, for health and metrics.
type PoolStats struct {
	Size     int `json:"size"`
	Busy     int `json:"busy"`
	Restarts int `json:"restarts"`
	// LastKillReason is the reason of the most recent kill or crash, or "".
	LastKillReason string `json:"last_kill_reason"`
	// Kills counts kills by reason.
	Kills map[string]int64 `json:"-"`
}

// pool supervises the worker processes: it hands each job to an idle
// worker, watches its RSS and deadline from outside, and kills and
// replaces a worker that crosses either or that dies.
type pool struct {
	cmd      []string
	env      []string
	memLimit int64 // bytes of RSS
	log      *slog.Logger

	idle chan *proc
	quit chan struct{}
	wg   sync.WaitGroup // replacement spawners
	live sync.WaitGroup // every worker process not yet reaped and cleaned up

	busy     atomic.Int64
	restarts atomic.Int64
	open     sync.Map // *proc -> open handle count (int)

	mu       sync.Mutex
	closed   bool
	procs    map[*proc]struct{}
	lastKill string
	kills    map[string]int64
}

// proc is one worker process.
type proc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser // jobs
	out    *bufio.Reader  // replies
	outF   *os.File
	exited chan struct{} // closed once the process is reaped
	stderr *tailBuffer
}

func newPool(n int, cmd, env []string, memLimitMB int, log *slog.Logger) (*pool, error) {
	p := &pool{
		cmd:      cmd,
		env:      env,
		memLimit: int64(memLimitMB) << 20,
		log:      log,
		idle:     make(chan *proc, n),
		quit:     make(chan struct{}),
		procs:    map[*proc]struct{}{},
		kills:    map[string]int64{},
	}
	for range n {
		w, err := p.spawn(memLimitMB)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("dataset: start worker: %w", err)
		}
		p.idle <- w
	}
	return p, nil
}

func (p *pool) spawn(memLimitMB int) (*proc, error) {
	jobsR, jobsW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		_ = jobsR.Close()
		_ = jobsW.Close()
		return nil, err
	}
	args := append(append([]string{}, p.cmd[1:]...), "-as-mb="+strconv.Itoa(memLimitMB+asHeadroomMB))
	cmd := exec.Command(p.cmd[0], args...)
	cmd.Env = p.env
	cmd.ExtraFiles = []*os.File{jobsR, repW}
	tail := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = tail, tail
	// The worker dies with the server, whatever way the server dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	_ = jobsR.Close()
	_ = repW.Close()
	if err != nil {
		_ = jobsW.Close()
		_ = repR.Close()
		return nil, err
	}
	w := &proc{cmd: cmd, in: jobsW, out: bufio.NewReaderSize(repR, 64<<10), outF: repR, exited: make(chan struct{}), stderr: tail}
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	p.live.Add(1)
	p.mu.Lock()
	p.procs[w] = struct{}{}
	p.mu.Unlock()
	return w, nil
}

// acquire waits for an idle worker, or for ctx to end.
func (p *pool) acquire(ctx context.Context) (*proc, error) {
	select {
	case w := <-p.idle:
		return w, nil
	case <-p.quit:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pool) release(w *proc) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.stop(w)
		return
	}
	p.idle <- w
}

// killError is a job lost with its worker.
type killError struct {
	reason string
	detail string
}

func (e *killError) Error() string { return "worker " + e.reason + ": " + e.detail }

// run sends j to a worker and waits for its reply. timeout is the job's
// own limit (the worker stops itself then); killGrace later, or as soon
// as the worker's RSS crosses the ceiling, the supervisor kills it. If
// ctx ends first the job is cancelled, and its worker killed if it does
// not stop; the error then wraps ctx's. A worker that dies or is killed
// is replaced in the background, and the error is a *killError.
func (p *pool) run(ctx context.Context, j job, timeout time.Duration) (reply, error) {
	w, err := p.acquire(ctx)
	if err != nil {
		return reply{}, err
	}
	p.busy.Add(1)
	defer p.busy.Add(-1)
	j.TimeoutMS = max(1, timeout.Milliseconds())
	if err := writeFrame(w.in, j); err != nil {
		return reply{}, p.lost(w, KillCrash, "could not send the job: "+err.Error())
	}
	type result struct {
		rep reply
		err error
	}
	got := make(chan result, 1)
	go func() {
		var rep reply
		err := readFrame(w.out, &rep)
		got <- result{rep, err}
	}()
	hard := time.NewTimer(timeout + killGrace)
	defer hard.Stop()
	tick := time.NewTicker(rssPoll)
	defer tick.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case r := <-got:
			if r.err != nil {
				return reply{}, p.lost(w, KillCrash, "the worker process died")
			}
			p.open.Store(w, r.rep.OpenHandles)
			p.release(w)
			if ctx.Err() != nil {
				return reply{}, ctx.Err()
			}
			return r.rep, nil
		case <-tick.C:
			if rss := rssBytes(w.cmd.Process.Pid); rss > p.memLimit {
				return reply{}, p.lost(w, KillMemory, fmt.Sprintf("RSS %d MiB crossed the ceiling", rss>>20))
			}
		case <-hard.C:
			if ctx.Err() != nil {
				return reply{}, errors.Join(p.lost(w, KillCancelled, "the caller went away"), ctx.Err())
			}
			return reply{}, p.lost(w, KillDeadline, "the job ran past its time limit")
		case <-ctxDone:
			// Ask the worker to stop; the hard timer now counts from here.
			ctxDone = nil
			_ = writeFrame(w.in, job{Op: opCancel})
			hard.Reset(killGrace)
		}
	}
}

// lost kills w (if it still runs), records why, starts a replacement and
// returns the *killError for the job.
func (p *pool) lost(w *proc, reason, detail string) error {
	_ = w.cmd.Process.Kill()
	<-w.exited
	if reason == KillCrash {
		if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			detail += " (" + ws.Signal().String() + ")"
		}
	}
	p.cleanup(w)
	p.mu.Lock()
	p.lastKill = reason
	p.kills[reason]++
	closed := p.closed
	if !closed {
		p.wg.Add(1) // under mu: close waits only after closed is set
	}
	p.mu.Unlock()
	if !closed {
		p.log.Warn("dataset: worker stopped", "reason", reason, "detail", detail, "pid", w.cmd.Process.Pid,
			"stderr", w.stderr.String())
		go p.replace()
	}
	return &killError{reason: reason, detail: detail}
}

// replace starts a new worker, retrying while spawning fails.
func (p *pool) replace() {
	defer p.wg.Done()
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		w, err := p.spawn(int(p.memLimit >> 20))
		if err == nil {
			p.restarts.Add(1)
			p.release(w)
			return
		}
		p.log.Error("dataset: cannot start a worker", "error", err.Error())
		select {
		case <-p.quit:
			return
		case <-time.After(delay):
		}
	}
}

func (p *pool) cleanup(w *proc) {
	_ = w.in.Close()
	_ = w.outF.Close()
	p.open.Delete(w)
	p.mu.Lock()
	delete(p.procs, w)
	p.mu.Unlock()
	p.live.Done()
}

// stop ends an idle worker: closing its jobs pipe makes it exit; a worker
// that does not is killed.
func (p *pool) stop(w *proc) {
	_ = w.in.Close()
	select {
	case <-w.exited:
	case <-time.After(2 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
	p.cleanup(w)
}

// rssBytes returns a process's resident set size in bytes (0 if
// unknown), from /proc/<pid>/statm.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// pids lists the live workers' process ids.
func (p *pool) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.procs))
	for w := range p.procs {
		out = append(out, w.cmd.Process.Pid)
	}
	return out
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	kills := make(map[string]int64, len(p.kills))
	for k, v := range p.kills {
		kills[k] = v
	}
	return PoolStats{
		Size:           cap(p.idle),
		Busy:           int(p.busy.Load()),
		Restarts:       int(p.restarts.Load()),
		LastKillReason: p.lastKill,
		Kills:          kills,
	}
}

func (p *pool) openHandles() int {
	n := 0
	p.open.Range(func(_, v any) bool { n += v.(int); return true })
	return n
}

// close stops every worker and returns once all are reaped: idle ones
// exit when their jobs pipe closes; busy ones are killed, and their jobs
// fail (the HTTP server has drained its requests before this runs).
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.quit)
	p.mu.Unlock()
	p.wg.Wait()
	for drained := false; !drained; {
		select {
		case w := <-p.idle:
			p.stop(w)
		default:
			drained = true
		}
	}
	p.mu.Lock()
	for w := range p.procs {
		_ = w.cmd.Process.Kill()
	}
	p.mu.Unlock()
	p.live.Wait()
}

// tailBuffer keeps the last max bytes written, for a dead worker's log.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
