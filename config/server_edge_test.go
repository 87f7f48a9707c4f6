package config_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/config"
)

func TestParseShouldValidateTheEdgeSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file string
		want string // "" when the file is valid
	}{
		{"defaults", `{}`, ""},
		{"read timeout 0", `{"server":{"read_timeout_seconds":0}}`, "server.read_timeout_seconds: must be between 0.001 and 86400 seconds, got 0"},
		{"idle timeout negative", `{"server":{"idle_timeout_seconds":-1}}`, "server.idle_timeout_seconds: must be between 0.001 and 86400 seconds, got -1"},
		{"header bytes too small", `{"server":{"max_header_bytes":100}}`, "server.max_header_bytes: must be between 4096 and 16777216, got 100"},
		{"max connections 0", `{"server":{"max_connections":0}}`, "server.max_connections: must be >= 1, got 0"},
		{"proxies", `{"server":{"trusted_proxies":["10.0.0.0/8","192.168.1.7","fd00::/8","::1"]}}`, ""},
		{"proxy not a CIDR", `{"server":{"trusted_proxies":["10.0.0.0/8","proxy.local"]}}`, `server.trusted_proxies[1]: must be a CIDR such as 10.0.0.0/8 or a single address such as 10.0.0.7, got "proxy.local"`},
		{"proxy bad bits", `{"server":{"trusted_proxies":["10.0.0.0/33"]}}`, `server.trusted_proxies[0]: must be a CIDR`},
		{"proxy trusting all", `{"server":{"trusted_proxies":["0.0.0.0/0"]}}`, `server.trusted_proxies[0]: trusts every address`},
		{"origins", `{"server":{"cors_origins":["https://app.example.com","http://localhost:3000","http://[::1]:8080"]}}`, ""},
		{"origin with path", `{"server":{"cors_origins":["https://app.example.com/"]}}`, `server.cors_origins[0]: must be an origin such as`},
		{"origin wildcard", `{"server":{"cors_origins":["https://*.example.com"]}}`, `server.cors_origins[0]: wildcards are not allowed`},
		{"origin star", `{"server":{"cors_origins":["*"]}}`, `server.cors_origins[0]: wildcards are not allowed`},
		{"origin without scheme", `{"server":{"cors_origins":["app.example.com"]}}`, `server.cors_origins[0]: must be an origin such as`},
		{"origin upper case", `{"server":{"cors_origins":["https://App.example.com"]}}`, `server.cors_origins[0]: must be an origin such as`},
		{"origin ftp", `{"server":{"cors_origins":["ftp://example.com"]}}`, `server.cors_origins[0]: must be an origin such as`},
		{"origin bad port", `{"server":{"cors_origins":["http://example.com:99999"]}}`, `server.cors_origins[0]: must be an origin such as`},
		{"origin fragment", `{"server":{"cors_origins":["http://example.com#x"]}}`, `server.cors_origins[0]: must be an origin such as`},
		{"origin twice", `{"server":{"cors_origins":["http://a.example","http://a.example"]}}`, `server.cors_origins[1]: duplicate origin "http://a.example"`},
		{"cert without key", `{"server":{"tls_cert_file":"/etc/nexus/cert.pem"}}`, "server.tls_cert_file, server.tls_key_file: set both (HTTPS) or neither (HTTP)"},
		{"key without cert", `{"server":{"tls_key_file":"/etc/nexus/key.pem"}}`, "server.tls_cert_file, server.tls_key_file: set both"},
		{"both tls files", `{"server":{"tls_cert_file":"c.pem","tls_key_file":"k.pem"}}`, ""},
		{"upload timeout 0", `{"datasets":{"upload_read_timeout_seconds":0}}`, "datasets.upload_read_timeout_seconds: must be between 0.001 and 86400 seconds, got 0"},
		{"upload rate negative", `{"datasets":{"upload_min_bytes_per_second":-1}}`, "datasets.upload_min_bytes_per_second: must be >= 0 (0: no floor), got -1"},
		{"upload rate off", `{"datasets":{"upload_min_bytes_per_second":0}}`, ""},
		{"upload grace negative", `{"datasets":{"upload_min_rate_grace_seconds":-1}}`, "datasets.upload_min_rate_grace_seconds: must be between 0 and 86400 seconds, got -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(tc.file))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want no error, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error lacks %q: %v", tc.want, err)
			}
		})
	}
}

func TestTrustedProxyPrefixesShouldMaskAndWidenSingleAddresses(t *testing.T) {
	t.Parallel()
	s := config.Server{TrustedProxies: []string{"10.1.2.3/8", "192.168.1.7", "::1", "::ffff:10.0.0.1"}}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.1/32")}
	if got := s.TrustedProxyPrefixes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("prefixes = %v, want %v", got, want)
	}
}

func TestServerEqualShouldTreatAnEmptyListAsAMissingOne(t *testing.T) {
	t.Parallel()
	a, b := config.Default().Server, config.Default().Server
	b.TrustedProxies, b.CORSOrigins = nil, nil
	if !a.Equal(b) {
		t.Fatal("an empty list and a missing one differ")
	}
	b.CORSOrigins = []string{"https://app.example.com"}
	if a.Equal(b) {
		t.Fatal("a changed origin list is equal")
	}
	b = a
	b.TLSCertFile = "other.pem"
	if a.Equal(b) {
		t.Fatal("a changed certificate path is equal")
	}
}
