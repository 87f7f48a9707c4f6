package app

import (
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// inflight tracks requests being served, so that a shutdown whose grace
// runs out can log exactly what it cut.
type inflight struct {
	mu   sync.Mutex
	next uint64
	reqs map[uint64]inflightReq
}

type inflightReq struct {
	method, path, id string
	started          time.Time
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if f.reqs == nil {
			f.reqs = map[uint64]inflightReq{}
		}
		f.next++
		key := f.next
		f.reqs[key] = inflightReq{method: r.Method, path: r.URL.Path, id: r.Header.Get("X-Request-ID"), started: time.Now()}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.reqs, key)
			f.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// logCut logs every request still in flight.
func (f *inflight) logCut(log *slog.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reqs {
		log.Error("request cut by shutdown", slog.String("method", r.method), slog.String("path", r.path),
			slog.String("client_request_id", r.id), slog.Float64("age_seconds", time.Since(r.started).Seconds()))
	}
}
