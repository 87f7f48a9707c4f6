package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// Every route that routes.go registers has an entry in routePolicies, and
// every entry names a route (or one of the sources routes, which another
// branch adds): a route added without thought would otherwise need the
// admin scope.
func TestEveryRouteShouldHaveAPolicy(t *testing.T) {
	t.Parallel()
	e := NewServer(Config{}).(*echo.Echo)
	registered := routesOf(e)
	for route := range registered {
		if _, ok := routePolicies[route]; !ok {
			t.Errorf("route %s has no entry in routePolicies", route)
		}
	}
	for route := range routePolicies {
		if !registered[route] && !strings.Contains(route, "/sources") {
			t.Errorf("routePolicies lists %s, which is not a route", route)
		}
	}
}

func TestPresentedKeyShouldTakeBearerInAnyCaseOrXAPIKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]string
		want    string
		ok      bool
	}{
		{name: "bearer", headers: map[string]string{"Authorization": "Bearer k1"}, want: "k1", ok: true},
		{name: "lower case", headers: map[string]string{"Authorization": "bearer k1"}, want: "k1", ok: true},
		{name: "upper case", headers: map[string]string{"Authorization": "BEARER  k1 "}, want: "k1", ok: true},
		{name: "x-api-key", headers: map[string]string{"X-API-Key": "k2"}, want: "k2", ok: true},
		{name: "basic is not a key", headers: map[string]string{"Authorization": "Basic a2V5"}},
		{name: "empty bearer", headers: map[string]string{"Authorization": "Bearer "}},
		{name: "none"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		got, ok := presentedKey(r)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: (%q, %v), want (%q, %v)", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAuthFailuresShouldRefuseAnAddressPastItsMaxAndForgiveOverTime(t *testing.T) {
	t.Parallel()
	now := mustTime("2026-01-01T00:00:00Z")
	clock := func() time.Time { return now }
	f := newAuthFailures(AuthFailureLimits{Max: 3, Window: time.Minute, Addresses: 100}, clock)
	for i := range 3 {
		if w := f.Wait("192.0.2.1"); w != 0 {
			t.Fatalf("failure %d: wait %v before the max", i, w)
		}
		f.Fail("192.0.2.1")
	}
	if w := f.Wait("192.0.2.1"); w != 20*time.Second {
		t.Fatalf("wait = %v, want 20s (one of 3 per minute)", w)
	}
	if w := f.Wait("192.0.2.2"); w != 0 {
		t.Fatalf("another address waits %v", w)
	}
	// IPv6 counts by /64
	for range 3 {
		f.Fail("2001:db8::1")
	}
	if w := f.Wait("2001:db8::ffff"); w == 0 {
		t.Fatal("another address of the same /64 is not held back")
	}
	now = now.Add(20 * time.Second)
	if w := f.Wait("192.0.2.1"); w != 0 {
		t.Fatalf("after 20 s: wait %v", w)
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
