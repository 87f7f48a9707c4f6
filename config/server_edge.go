package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
)

// The HTTP edge's settings live in Server (timeouts, connections, proxies,
// CORS, TLS) and Datasets (the upload's own read bounds). Each closes a
// way in which a client could hold the server's resources or lie about
// itself:
//   - read_timeout_seconds and the upload bounds cut a body sent a byte at
//     a time, which would otherwise hold a connection, a goroutine and a
//     temp file for ever;
//   - max_connections keeps the open descriptors under the process's
//     limit, whatever the number of clients;
//   - trusted_proxies keeps a client from choosing the address that the
//     logs, the audit and the failed-auth limiter see.

// validateEdge checks the edge's settings.
func (c Config) validateEdge() []error {
	var errs []error
	bad := func(path, msg string, got any) {
		errs = append(errs, fmt.Errorf("%s: %s, got %v", path, msg, got))
	}
	inSeconds := func(s Seconds) bool { return s >= minSeconds && s <= maxSeconds }
	s := c.Server
	if !inSeconds(s.ReadTimeoutSeconds) {
		bad("server.read_timeout_seconds", "must be between 0.001 and 86400 seconds", float64(s.ReadTimeoutSeconds))
	}
	if !inSeconds(s.IdleTimeoutSeconds) {
		bad("server.idle_timeout_seconds", "must be between 0.001 and 86400 seconds", float64(s.IdleTimeoutSeconds))
	}
	if s.MaxHeaderBytes < 4<<10 || s.MaxHeaderBytes > 16<<20 {
		bad("server.max_header_bytes", "must be between 4096 and 16777216", s.MaxHeaderBytes)
	}
	if s.MaxConnections < 1 {
		bad("server.max_connections", "must be >= 1", s.MaxConnections)
	}
	for i, p := range s.TrustedProxies {
		if err := checkProxy(p); err != "" {
			errs = append(errs, fmt.Errorf("server.trusted_proxies[%d]: %s, got %q", i, err, p))
		}
	}
	seen := map[string]bool{}
	for i, o := range s.CORSOrigins {
		if err := checkOrigin(o); err != "" {
			errs = append(errs, fmt.Errorf("server.cors_origins[%d]: %s, got %q", i, err, o))
		} else if seen[o] {
			errs = append(errs, fmt.Errorf("server.cors_origins[%d]: duplicate origin %q", i, o))
		}
		seen[o] = true
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("server.tls_cert_file, server.tls_key_file: set both (HTTPS) or neither (HTTP)"))
	}
	d := c.Datasets
	if !inSeconds(d.UploadReadTimeoutSeconds) {
		bad("datasets.upload_read_timeout_seconds", "must be between 0.001 and 86400 seconds", float64(d.UploadReadTimeoutSeconds))
	}
	if d.UploadMinBytesPerSecond < 0 {
		bad("datasets.upload_min_bytes_per_second", "must be >= 0 (0: no floor)", d.UploadMinBytesPerSecond)
	}
	if !(d.UploadMinRateGraceSeconds >= 0 && d.UploadMinRateGraceSeconds <= maxSeconds) {
		bad("datasets.upload_min_rate_grace_seconds", "must be between 0 and 86400 seconds", float64(d.UploadMinRateGraceSeconds))
	}
	return errs
}

// checkProxy returns what is wrong with a trusted_proxies entry, or "".
func checkProxy(s string) string {
	p, err := parseProxy(s)
	if err != nil {
		return "must be a CIDR such as 10.0.0.0/8 or a single address such as 10.0.0.7"
	}
	if p.Bits() == 0 {
		return "trusts every address, so any client could set its own: name the proxies' own range"
	}
	return ""
}

// parseProxy reads a CIDR or a single address (a prefix of its full
// length), masked.
func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zone not allowed")
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// TrustedProxyPrefixes returns server.trusted_proxies parsed; entries that
// Validate would refuse are left out.
func (s Server) TrustedProxyPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for _, e := range s.TrustedProxies {
		if checkProxy(e) != "" {
			continue
		}
		p, _ := parseProxy(e)
		out = append(out, p)
	}
	return out
}

// checkOrigin returns what is wrong with a cors_origins entry, or "": it
// must be an origin exactly as a browser sends it in Origin, lower case,
// without a path, a wildcard or a trailing slash.
func checkOrigin(o string) string {
	const want = "must be an origin such as https://app.example.com or http://localhost:3000 (scheme://host[:port], lower case, no path)"
	if strings.ContainsAny(o, "*?") {
		return "wildcards are not allowed: list each origin"
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery ||
		o != u.Scheme+"://"+u.Host || strings.ToLower(o) != o {
		return want
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return want
		}
	}
	if strings.HasSuffix(u.Host, ":") {
		return want
	}
	return ""
}

// TLS reports whether the server serves HTTPS.
func (s Server) TLS() bool { return s.TLSCertFile != "" && s.TLSKeyFile != "" }

// Equal reports whether s and o are the same settings; an empty list and
// a missing one are the same.
func (s Server) Equal(o Server) bool {
	norm := func(x Server) Server {
		if len(x.TrustedProxies) == 0 {
			x.TrustedProxies = nil
		}
		if len(x.CORSOrigins) == 0 {
			x.CORSOrigins = nil
		}
		return x
	}
	return reflect.DeepEqual(norm(s), norm(o))
}
