package api

// An internal test: the limiter is unexported, shared by the credential
// checks of this package. test/edge_test.go covers it end to end.

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time                            { return f.t }
func (f *fakeClock) add(d time.Duration)                       { f.t = f.t.Add(d) }
func newFakeClock() *fakeClock                                 { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func (f *fakeClock) limiter(l AuthFailureLimits) *authFailures { return newAuthFailures(l, f.now) }

func TestAuthFailuresShouldRefuseTheEleventhFailureInAMinuteAndLetOneMoreInEverySixSeconds(t *testing.T) {
	t.Parallel()
	// Given the default limits, 10 a minute
	clock := newFakeClock()
	a := clock.limiter(AuthFailureLimits{})
	// When an address fails ten times at once
	for i := range 10 {
		if w := a.Wait("203.0.113.9"); w != 0 {
			t.Fatalf("attempt %d: refused for %s, want let through", i+1, w)
		}
		full := a.Fail("203.0.113.9")
		if full != (i == 9) {
			t.Fatalf("failure %d: full = %v", i+1, full)
		}
	}
	// Then the eleventh waits six seconds, while another address does not
	if w := a.Wait("203.0.113.9"); w != 6*time.Second {
		t.Fatalf("wait = %s, want 6s", w)
	}
	if w := a.Wait("203.0.113.10"); w != 0 {
		t.Fatalf("another address waits %s", w)
	}
	// And once they have passed it gets one attempt, then waits again
	clock.add(6 * time.Second)
	if w := a.Wait("203.0.113.9"); w != 0 {
		t.Fatalf("after the wait: %s", w)
	}
	a.Fail("203.0.113.9")
	if w := a.Wait("203.0.113.9"); w != 6*time.Second {
		t.Fatalf("wait after one more failure = %s, want 6s", w)
	}
	// And a quiet minute forgives everything
	clock.add(time.Minute)
	for range 9 {
		a.Fail("203.0.113.9")
	}
	if w := a.Wait("203.0.113.9"); w != 0 {
		t.Fatalf("nine failures after a quiet minute: refused for %s", w)
	}
}

func TestAuthFailuresShouldForgetTheOldestAddressPastItsCap(t *testing.T) {
	t.Parallel()
	// Given room for three addresses, each over the limit of one
	clock := newFakeClock()
	a := clock.limiter(AuthFailureLimits{Max: 1, Window: time.Hour, Addresses: 3})
	for i := range 3 {
		a.Fail(fmt.Sprintf("198.51.100.%d", i))
		clock.add(time.Second)
	}
	// When a fourth fails
	a.Fail("198.51.100.3")
	// Then the first, the oldest, is forgotten, and the others are not
	if w := a.Wait("198.51.100.0"); w != 0 {
		t.Fatalf("the oldest address still waits %s", w)
	}
	for i := 1; i <= 3; i++ {
		if w := a.Wait(fmt.Sprintf("198.51.100.%d", i)); w == 0 {
			t.Fatalf("198.51.100.%d was forgotten", i)
		}
	}
	if len(a.byAddr) != 3 || a.lru.Len() != 3 {
		t.Fatalf("tracking %d (%d in order), want 3", len(a.byAddr), a.lru.Len())
	}
}

func TestAuthFailuresShouldCountAnIPv6SlashSixtyFourAsOneAddress(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	a := clock.limiter(AuthFailureLimits{Max: 2})
	a.Fail("2001:db8:1:2::1")
	a.Fail("2001:db8:1:2:ffff::9")
	if w := a.Wait("2001:db8:1:2:abcd::5"); w == 0 {
		t.Fatal("another address of the same /64 was let through")
	}
	if w := a.Wait("2001:db8:1:3::1"); w != 0 {
		t.Fatalf("the next /64 waits %s", w)
	}
	a.Fail("::ffff:192.0.2.1")
	a.Fail("192.0.2.1")
	if w := a.Wait("192.0.2.1"); w == 0 {
		t.Fatal("an IPv4-mapped address and its IPv4 form counted apart")
	}
}

func TestBearerTokenShouldReadTheSchemeInAnyCase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, token string
		ok                  bool
	}{
		{"canonical", "Bearer abc", "abc", true},
		{"lower case", "bearer abc", "abc", true},
		{"upper case", "BEARER abc", "abc", true},
		{"several spaces", "Bearer   abc", "abc", true},
		{"basic", "Basic abc", "", false},
		{"no token", "Bearer ", "", false},
		{"no space", "Bearerabc", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, ok := bearerToken(tt.header); got != tt.token || ok != tt.ok {
				t.Fatalf("bearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.token, tt.ok)
			}
		})
	}
}
