package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// keyFailures limits invalid API keys per client address, so that keys
// cannot be guessed at the speed of the network: each address has a
// leaky bucket that a failure fills by one and that drains max per
// window. An address whose bucket is full is refused (429) before its key
// is even looked at; successes cost nothing. IPv6 addresses count by their
// /64, which one client usually holds whole.
//
// The admin token has a limiter of its own in the same spirit (branch
// edge); the two may become one, so that failures against both count
// together.
type keyFailures struct {
	max   float64
	leak  float64 // per second
	keep  int
	now   func() time.Time
	mu    sync.Mutex
	level map[string]failureLevel
}

type failureLevel struct {
	level float64
	at    time.Time
}

func newKeyFailures(maxFailures int, window time.Duration, keep int, now func() time.Time) *keyFailures {
	if now == nil {
		now = time.Now
	}
	return &keyFailures{max: float64(maxFailures), leak: float64(maxFailures) / window.Seconds(), keep: keep,
		now: now, level: map[string]failureLevel{}}
}

// levelAt is the bucket's level at now, after the leak.
func (f *keyFailures) levelAt(l failureLevel, now time.Time) float64 {
	return max(0, l.level-now.Sub(l.at).Seconds()*f.leak)
}

// Wait returns how long the address must wait before its next key is
// looked at; 0 means now.
func (f *keyFailures) Wait(addr string) time.Duration {
	key := addressKey(addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.level[key]
	if !ok {
		return 0
	}
	over := f.levelAt(l, f.now()) + 1 - f.max
	if over <= 0 {
		return 0
	}
	return time.Duration(over / f.leak * float64(time.Second))
}

// Fail records an invalid key from addr and reports whether it filled the
// bucket, so that the caller logs once per address that goes over.
func (f *keyFailures) Fail(addr string) (full bool) {
	key := addressKey(addr)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.level) >= f.keep {
		// Forget the drained buckets; if all are full, the oldest
		// entries are as good as any to drop: memory stays bounded.
		for k, l := range f.level {
			if f.levelAt(l, now) == 0 || len(f.level) >= f.keep {
				delete(f.level, k)
			}
		}
	}
	before := f.levelAt(f.level[key], now)
	f.level[key] = failureLevel{level: before + 1, at: now}
	return before+1 <= f.max && before+2 > f.max
}

// addressKey is the address as the limiter counts it: IPv4 (IPv4-mapped
// ones unmapped) as itself, IPv6 by its /64.
func addressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.String()
}

// tooManyKeyFailures is the 429 for an address that must wait.
func tooManyKeyFailures(c echo.Context, wait time.Duration) error {
	setRetryAfter(c, wait)
	return &Error{Status: http.StatusTooManyRequests, Code: "too_many_auth_failures",
		Message: fmt.Sprintf("too many invalid API keys from this address; retry in %d s", max(ceilSeconds(wait), 1))}
}
