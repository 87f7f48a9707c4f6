package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIPExtractorShouldBelieveOnlyTrustedProxies(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     string
		realIP  string
		want    string
	}{
		{"no proxies: the peer", nil, "203.0.113.5:4000", "198.51.100.1", "198.51.100.2", "203.0.113.5"},
		{"no proxies: even a loopback peer", nil, "127.0.0.1:4000", "198.51.100.1", "", "127.0.0.1"},
		{"untrusted peer forging XFF", trusted, "203.0.113.5:4000", "198.51.100.1", "", "203.0.113.5"},
		{"untrusted peer forging X-Real-IP", trusted, "203.0.113.5:4000", "", "198.51.100.1", "203.0.113.5"},
		{"loopback is not trusted by default", trusted, "127.0.0.1:4000", "198.51.100.1", "", "127.0.0.1"},
		{"private is not trusted by default", trusted, "192.168.1.1:4000", "198.51.100.1", "", "192.168.1.1"},
		{"trusted proxy: XFF", trusted, "10.1.2.3:4000", "198.51.100.1", "", "198.51.100.1"},
		{"trusted proxy: rightmost untrusted hop", trusted, "10.1.2.3:4000", "6.6.6.6, 198.51.100.1, 10.9.9.9", "", "198.51.100.1"},
		{"trusted proxy: XFF over X-Real-IP", trusted, "10.1.2.3:4000", "198.51.100.1", "198.51.100.2", "198.51.100.1"},
		{"trusted proxy: X-Real-IP", trusted, "10.1.2.3:4000", "", "198.51.100.2", "198.51.100.2"},
		{"trusted proxy: garbage XFF", trusted, "10.1.2.3:4000", "not-an-ip", "", "10.1.2.3"},
		{"trusted IPv6 proxy", trusted, "[2001:db8::7]:4000", "2001:db8:ffff::1, 198.51.100.1", "", "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.peer
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			if tt.realIP != "" {
				req.Header.Set("X-Real-IP", tt.realIP)
			}
			if got := clientIPExtractor(tt.trusted)(req); got != tt.want {
				t.Fatalf("client = %q, want %q", got, tt.want)
			}
		})
	}
}
