package api

import (
	"container/list"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// AuthFailureLimits bound failed authentication attempts per client
// address. Zero fields take the defaults.
type AuthFailureLimits struct {
	// Max failures an address may make within Window before it is
	// refused; default 10. Past it the address gets one more attempt
	// every Window/Max.
	Max int
	// Window, default one minute.
	Window time.Duration
	// Addresses caps the addresses tracked, so that memory stays bounded
	// however many addresses fail; past it the one whose last failure is
	// oldest is forgotten. Default 10,000.
	Addresses int
}

// authFailures limits failed authentication attempts per client address,
// so that a token cannot be guessed at the speed of the network. Each
// address has a leaky bucket: a failure adds one, and Max per Window leak
// out. An address whose bucket would overflow is refused (429, with the
// time until one more attempt fits) before its credentials are even
// looked at, so that a refused guess tells nothing. Successes add
// nothing. It knows nothing of tokens or keys: the admin token uses it
// now, and any other credential check can share it, so that failures
// against both count together.
//
// IPv6 addresses are counted by their /64, which one client usually holds
// whole, so that walking through it buys no fresh attempts.
type authFailures struct {
	max    float64
	leak   float64 // per second
	keep   int
	now    func() time.Time
	mu     sync.Mutex
	byAddr map[string]*list.Element
	// lru holds *failureBucket, the oldest last failure at the front.
	lru *list.List
}

type failureBucket struct {
	addr  string
	level float64
	at    time.Time
}

func newAuthFailures(l AuthFailureLimits, now func() time.Time) *authFailures {
	if l.Max <= 0 {
		l.Max = 10
	}
	if l.Window <= 0 {
		l.Window = time.Minute
	}
	if l.Addresses <= 0 {
		l.Addresses = 10_000
	}
	if now == nil {
		now = time.Now
	}
	return &authFailures{max: float64(l.Max), leak: float64(l.Max) / l.Window.Seconds(), keep: l.Addresses,
		now: now, byAddr: map[string]*list.Element{}, lru: list.New()}
}

// level returns the bucket's level now, after the leak.
func (a *authFailures) level(b *failureBucket, now time.Time) float64 {
	return max(0, b.level-now.Sub(b.at).Seconds()*a.leak)
}

// Wait returns how long the client at addr must wait before its next
// attempt is looked at; 0 means now.
func (a *authFailures) Wait(addr string) time.Duration {
	key := failureKey(addr)
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.byAddr[key]
	if !ok {
		return 0
	}
	now := a.now()
	over := a.level(el.Value.(*failureBucket), now) + 1 - a.max
	if over <= 0 {
		return 0
	}
	return time.Duration(over / a.leak * float64(time.Second))
}

// Fail records a failed attempt from addr. It reports whether this
// failure filled the address's bucket, so that the caller can log once
// per address that goes over, not once per refused attempt.
func (a *authFailures) Fail(addr string) (full bool) {
	key := failureKey(addr)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.byAddr[key]
	if !ok {
		for a.lru.Len() >= a.keep {
			oldest := a.lru.Front()
			delete(a.byAddr, oldest.Value.(*failureBucket).addr)
			a.lru.Remove(oldest)
		}
		el = a.lru.PushBack(&failureBucket{addr: key, at: now})
		a.byAddr[key] = el
	}
	b := el.Value.(*failureBucket)
	before := a.level(b, now)
	b.level, b.at = before+1, now
	a.lru.MoveToBack(el)
	return before+1 <= a.max && b.level+1 > a.max
}

// failureKey is the address as the limiter counts it: an IPv4 address
// (IPv4-mapped ones unmapped) as itself, an IPv6 one by its /64.
func failureKey(addr string) string {
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

// tooManyAuthFailures is the 429 for an address that must wait.
func tooManyAuthFailures(wait time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: "too_many_auth_failures", RetryAfter: wait,
		Message: fmt.Sprintf("too many failed authentication attempts from this address; retry in %d s", retryAfterSeconds(wait))}
}

// bearerToken reads an Authorization header of the Bearer scheme, whose
// name is case-insensitive (RFC 9110 §11.1): "bearer x" and "BEARER x"
// are "Bearer x".
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}
