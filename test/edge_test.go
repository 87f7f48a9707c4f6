package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The HTTP edge, tried as an attacker would: slow bodies, a flood of idle
// connections, forged client addresses, token guessing, cross-origin
// calls; and HTTPS with a certificate renewed in place.

// edgeConfig starts a server with one DuckDB worker (these tests load no
// data) and the given changes.
func edgeConfig(change func(o *startOpts)) func(o *startOpts) {
	return func(o *startOpts) {
		o.cfg.Datasets.Workers = 1
		if change != nil {
			change(o)
		}
	}
}

// hostPort is the server's address without the scheme.
func (n *nexus) hostPort() string {
	_, hp, _ := strings.Cut(n.URL, "://")
	return hp
}

// dripped is what a slow client saw.
type dripped struct {
	resp    *http.Response
	body    string
	elapsed time.Duration
	// closed is true when the server closed the connection after its
	// answer.
	closed bool
}

// drip sends head at once and then body one byte every interval, as a
// slow-loris client does, until the server answers or the connection
// fails, and reads the answer. The drip stops by itself when the body is
// sent; a test that does not get an answer within a minute fails.
func drip(t *testing.T, addr, head string, body []byte, every time.Duration) dripped {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for _, b := range body {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-done }()
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to the slow body after %s: %v", time.Since(start), err)
	}
	out := dripped{resp: resp, elapsed: time.Since(start)}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	out.body = string(raw)
	// Closed: the next read ends (EOF or a reset) rather than waiting for
	// the deadline.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	out.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	return out
}

// accessLine returns the access log line of the request with status on
// route, or nil.
func accessLine(n *nexus, route string, status int) map[string]any {
	for _, l := range n.logs.lines("request") {
		if l["route"] == route && l["status"] == float64(status) {
			return l
		}
	}
	return nil
}

// A body sent at a byte every 2 s is cut at the read timeout with 408, the
// connection is closed, and the server goes on answering.
func TestEdgeSlowBodyShouldBeCutAtItsReadDeadline(t *testing.T) {
	t.Parallel()
	// Given a server whose read timeout is 2 s
	n := startNexus(t, edgeConfig(func(o *startOpts) { o.cfg.Server.ReadTimeoutSeconds = 2 }))
	// When a client sends /analyze a body of 1,000 bytes at one byte
	// every 2 s
	body := []byte(`{"query":"` + strings.Repeat("x", 986) + `"}`)
	got := drip(t, n.hostPort(), "POST /analyze HTTP/1.1\r\nHost: nexus\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n", body, 2*time.Second)
	// Then it is answered 408 at the deadline, not after the whole body
	if got.resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(got.body, `"request_body_timeout"`) ||
		!strings.Contains(got.body, "read timeout of 2s") {
		t.Fatalf("answer %d: %s", got.resp.StatusCode, got.body)
	}
	if got.elapsed < time.Second || got.elapsed > 15*time.Second {
		t.Fatalf("cut after %s, want about 2s", got.elapsed)
	}
	// And the connection is closed
	if !got.closed {
		t.Fatal("the connection stayed open after the 408")
	}
	// And the server still answers, and logged the 408 (not a hang-up)
	expectStatus(t, n.get(t, "/healthz"), http.StatusOK)
	if accessLine(n, "/analyze", http.StatusRequestTimeout) == nil {
		t.Fatalf("no access line with status 408:\n%s", n.logs.String())
	}
	cut := n.logs.lines("request body cut")
	if len(cut) != 1 || cut[0]["remote"] != "127.0.0.1" || cut[0]["route"] != "/analyze" {
		t.Fatalf("request body cut lines: %v", cut)
	}
}

// An upload has a longer read timeout, but one that trickles in below the
// floor rate is cut soon after its grace, and leaves no temp file.
func TestEdgeSlowUploadShouldBeCutBelowTheMinimumRate(t *testing.T) {
	t.Parallel()
	// Given uploads with a minute to arrive, at least 1,024 bytes a
	// second after a grace of 1 s
	dataDir := t.TempDir()
	n := startNexus(t, edgeConfig(func(o *startOpts) {
		o.env["NEXUS_DATA_DIR"] = dataDir
		o.cfg.Datasets.UploadReadTimeoutSeconds = 60
		o.cfg.Datasets.UploadMinBytesPerSecond = 1024
		o.cfg.Datasets.UploadMinRateGraceSeconds = 1
	}))
	// When a CSV file arrives at a byte every 2 s
	const boundary = "edge-boundary"
	part := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.csv\"\r\n" +
		"Content-Type: text/csv\r\n\r\n"
	file := []byte("a,b\n" + strings.Repeat("1,2\n", 500))
	length := len(part) + len(file) + len("\r\n--"+boundary+"--\r\n")
	got := drip(t, n.hostPort(), "POST /datasets HTTP/1.1\r\nHost: nexus\r\n"+
		"Content-Type: multipart/form-data; boundary="+boundary+"\r\nContent-Length: "+strconv.Itoa(length)+"\r\n\r\n"+part,
		file, 2*time.Second)
	// Then it is cut by the rate floor, long before its read timeout
	if got.resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(got.body, "slower than the minimum of 1024 bytes per second") {
		t.Fatalf("answer %d: %s", got.resp.StatusCode, got.body)
	}
	if got.elapsed > 15*time.Second {
		t.Fatalf("cut after %s, want about 1s", got.elapsed)
	}
	// And nothing is stored or left behind, and the server still answers
	if r := n.get(t, "/datasets"); len(r.Body["datasets"].([]any)) != 0 {
		t.Fatalf("datasets after the cut upload: %s", r.Raw)
	}
	assertNoTempFiles(t, dataDir)
	if accessLine(n, "/datasets", http.StatusRequestTimeout) == nil {
		t.Fatalf("no access line with status 408:\n%s", n.logs.String())
	}
}

// 2,000 connections that each send half a request line and hold on never
// open more than max_connections: the rest wait in the kernel's queue, so
// the descriptors stay bounded. Connections already open keep being
// served meanwhile, and once the slow ones go a new client is served.
func TestEdgeSlowConnectionsShouldStayUnderMaxConnections(t *testing.T) {
	t.Parallel()
	const maxConns, slowConns = 100, 2000
	n := startNexus(t, edgeConfig(func(o *startOpts) { o.cfg.Server.MaxConnections = maxConns }))
	// Given a watcher holding one keep-alive connection of its own
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	watcher := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := watcher.Get(n.URL + path)
		if err != nil {
			t.Fatalf("the watcher's GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	open := func() float64 {
		t.Helper()
		_, body := get("/metrics")
		v, ok := metric(body, "nexus_http_open_connections", nil)
		if !ok {
			t.Fatalf("no nexus_http_open_connections in:\n%s", body)
		}
		if v > maxConns {
			t.Fatalf("%v connections open, above max_connections %d", v, maxConns)
		}
		return v
	}
	if limit, _ := metric(func() string { _, b := get("/metrics"); return b }(), "nexus_http_max_connections", nil); limit != maxConns {
		t.Fatalf("nexus_http_max_connections = %v, want %d", limit, maxConns)
	}
	// When 2,000 clients connect and send half a request line each
	slow := make([]net.Conn, 0, slowConns)
	closeSlow := func() {
		for _, c := range slow {
			_ = c.Close()
		}
		slow = slow[:0]
	}
	t.Cleanup(closeSlow)
	for i := range slowConns {
		c, err := net.DialTimeout("tcp", n.hostPort(), 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		slow = append(slow, c)
		if _, err := io.WriteString(c, "GET /healthz HT"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	// Then the server fills its max_connections and goes no further
	eventually(t, 30*time.Second, "the listener to fill", func() bool { return open() == maxConns })
	for range 20 {
		open()
	}
	// And a new client waits rather than being served
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 500 * time.Millisecond}
	if resp, err := fresh.Get(n.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a new connection was served (%d) with the listener full", resp.StatusCode)
	}
	// And the connection already open is still served
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz on the open connection: %d", code)
	}
	// When the slow clients go away
	closeSlow()
	// Then a new client is served again, and the count falls back
	fresh.Timeout = 2 * time.Second
	eventually(t, 30*time.Second, "a new connection to be served", func() bool {
		resp, err := fresh.Get(n.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	eventually(t, 30*time.Second, "the open connections to fall back", func() bool { return open() <= 2 })
}

// The admin audit log records the peer's address whatever X-Forwarded-For
// or X-Real-IP an untrusted peer sends, and the forwarded one when the
// peer is a configured proxy.
func TestEdgeForgedForwardedForShouldBeIgnoredFromAnUntrustedPeer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		proxies []string
		headers map[string]string
		want    string
	}{
		{"untrusted peer, forged X-Forwarded-For", []string{"10.0.0.0/8"}, map[string]string{"X-Forwarded-For": "203.0.113.77"}, "127.0.0.1"},
		{"untrusted peer, forged X-Real-IP", []string{"10.0.0.0/8"}, map[string]string{"X-Real-IP": "203.0.113.77"}, "127.0.0.1"},
		{"no proxies configured", nil, map[string]string{"X-Forwarded-For": "203.0.113.77", "X-Real-IP": "203.0.113.78"}, "127.0.0.1"},
		{"trusted proxy, X-Forwarded-For", []string{"127.0.0.1/32"}, map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.77"}, "203.0.113.77"},
		{"trusted proxy, X-Real-IP", []string{"127.0.0.1"}, map[string]string{"X-Real-IP": "203.0.113.78"}, "203.0.113.78"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := startNexus(t, withAdmin, edgeConfig(func(o *startOpts) { o.cfg.Server.TrustedProxies = tt.proxies }))
			req, _ := http.NewRequest(http.MethodPost, n.URL+"/api/circuits/data_analyst/reset", nil)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			req.Header.Set("X-Request-ID", "forged-"+strings.ReplaceAll(tt.name, " ", "-"))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			expectStatus(t, n.do(t, req), http.StatusOK)
			audit := n.logs.lines("admin action")
			if len(audit) != 1 || audit[0]["remote"] != tt.want {
				t.Fatalf("admin action lines %v, want one with remote %s", audit, tt.want)
			}
			if l := accessLine(n, "/api/circuits/:name/reset", http.StatusOK); l == nil || l["remote"] != tt.want {
				t.Fatalf("access line %v, want remote %s", l, tt.want)
			}
		})
	}
}

// Guessing the admin token is limited per client address: the 11th
// failure in a minute gets 429 with Retry-After, even with the right
// token, and forging X-Forwarded-For does not buy fresh attempts.
func TestEdgeAdminTokenGuessesShouldBeLimitedPerAddress(t *testing.T) {
	t.Parallel()
	attempt := func(t *testing.T, n *nexus, token, xff string) response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/api/circuits/data_analyst/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		return n.do(t, req)
	}
	expect429 := func(t *testing.T, r response) {
		t.Helper()
		expectStatus(t, r, http.StatusTooManyRequests)
		if errorCode(r) != "too_many_auth_failures" {
			t.Fatalf("code %q: %s", errorCode(r), r.Raw)
		}
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
	}
	t.Run("untrusted peer forging addresses", func(t *testing.T) {
		t.Parallel()
		// Given a server that trusts no proxy
		n := startNexus(t, withAdmin, edgeConfig(nil))
		// When ten wrong guesses each claim another address
		for i := range 10 {
			expectStatus(t, attempt(t, n, "guess-"+strconv.Itoa(i), fmt.Sprintf("198.51.100.%d", i)), http.StatusUnauthorized)
		}
		// Then the eleventh is refused, and so is the right token now
		expect429(t, attempt(t, n, "guess-10", "198.51.100.10"))
		expect429(t, attempt(t, n, adminToken, ""))
		if got := len(n.logs.lines("too many failed admin token attempts; the address is refused for a while")); got != 1 {
			t.Fatalf("logged the refusal %d times, want once", got)
		}
	})
	t.Run("clients behind a trusted proxy", func(t *testing.T) {
		t.Parallel()
		// Given a server behind a proxy on loopback
		n := startNexus(t, withAdmin, edgeConfig(func(o *startOpts) { o.cfg.Server.TrustedProxies = []string{"127.0.0.1/32"} }))
		// When one client fails ten times
		for i := range 10 {
			expectStatus(t, attempt(t, n, "guess-"+strconv.Itoa(i), "203.0.113.1"), http.StatusUnauthorized)
		}
		// Then that client is refused, and another is not
		expect429(t, attempt(t, n, "guess-10", "203.0.113.1"))
		expectStatus(t, attempt(t, n, "guess-11", "203.0.113.2"), http.StatusUnauthorized)
		expectStatus(t, attempt(t, n, adminToken, "203.0.113.2"), http.StatusOK)
	})
}

// The Bearer scheme's name is case-insensitive.
func TestEdgeAdminShouldAcceptTheBearerSchemeInAnyCase(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin, edgeConfig(nil))
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/api/circuits/data_analyst/events", nil)
		req.Header.Set("Authorization", scheme+" "+adminToken)
		if r := n.do(t, req); r.Status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", scheme, r.Status, r.Raw)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/api/circuits/data_analyst/events", nil)
	req.Header.Set("Authorization", "Basic "+adminToken)
	expectStatus(t, n.do(t, req), http.StatusUnauthorized)
}

// A preflight from a configured origin passes; from any other, or with no
// origins configured, it gets no CORS header, so the browser refuses.
func TestEdgeCORSShouldAnswerOnlyConfiguredOrigins(t *testing.T) {
	t.Parallel()
	const allowed = "https://app.example.com"
	preflight := func(t *testing.T, n *nexus, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, n.URL+"/analyze", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,authorization")
		resp, err := n.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = drain(resp)
		return resp
	}
	n := startNexus(t, edgeConfig(func(o *startOpts) { o.cfg.Server.CORSOrigins = []string{allowed, "http://localhost:3000"} }))
	t.Run("allowed origin", func(t *testing.T) {
		t.Parallel()
		resp := preflight(t, n, allowed)
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != allowed ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Fatalf("preflight %d, headers %v", resp.StatusCode, h)
		}
		// And the actual request is marked for it too
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/healthz", nil)
		req.Header.Set("Origin", allowed)
		r := n.do(t, req)
		if r.Header.Get("Access-Control-Allow-Origin") != allowed || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
			t.Fatalf("GET from the allowed origin: headers %v", r.Header)
		}
	})
	for _, origin := range []string{"https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com", "null"} {
		t.Run("refused "+origin, func(t *testing.T) {
			t.Parallel()
			resp := preflight(t, n, origin)
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Fatalf("preflight from %s got Access-Control-Allow-Origin %q", origin, v)
			}
		})
	}
	t.Run("no origins configured", func(t *testing.T) {
		t.Parallel()
		plain := startNexus(t, edgeConfig(nil))
		resp := preflight(t, plain, allowed)
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Fatalf("CORS header %s with no origins configured", k)
			}
		}
	})
}

// HEAD is answered wherever GET is, without a body, through the GET
// route's own middleware (the admin token's included).
func TestEdgeHeadShouldBeAnsweredWhereverGetIs(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withAdmin, edgeConfig(nil))
	head := func(path, token string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodHead, n.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := n.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
		{"/datasets", "", http.StatusOK},
		{"/api/health/status", "", http.StatusOK},
		{"/metrics", "", http.StatusOK},
		{"/dashboard", "", http.StatusOK},
		{"/datasets/ds_nope", "", http.StatusNotFound},
		{"/api/circuits/data_analyst/events", "", http.StatusUnauthorized},
		{"/api/circuits/data_analyst/events", adminToken, http.StatusOK},
		{"/analyze", "", http.StatusMethodNotAllowed},
		{"/nowhere", "", http.StatusNotFound},
	} {
		resp, body := head(tc.path, tc.token)
		if resp.StatusCode != tc.want || body != "" {
			t.Errorf("HEAD %s: %d with %d bytes, want %d and none", tc.path, resp.StatusCode, len(body), tc.want)
		}
	}
	resp, _ := head("/healthz", "")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("HEAD /healthz Content-Type %q, want GET's", ct)
	}
	found := false
	for _, l := range n.logs.lines("request") {
		if l["method"] == "HEAD" && l["route"] == "/healthz" && l["status"] == float64(200) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no access line for HEAD /healthz:\n%s", n.logs.String())
	}
}

// A JSON body that is not an object is named for what it is.
func TestEdgeNonObjectJSONBodyShouldBeNamed(t *testing.T) {
	t.Parallel()
	n := startNexus(t, edgeConfig(nil))
	for body, kind := range map[string]string{`[]`: "an array", `"x"`: "a string", `42`: "a number", `null`: "null", `true`: "a boolean"} {
		for _, path := range []string{"/analyze", "/generate"} {
			r := n.post(t, path, body)
			expectStatus(t, r, http.StatusBadRequest)
			if msg := r.Body["error"].(map[string]any)["message"]; msg != "the request body must be a JSON object, got "+kind {
				t.Errorf("POST %s %s: message %q", path, body, msg)
			}
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1 with the given serial and
// writes it and its key to certFile and keyFile.
func selfSigned(t *testing.T, serial int64, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("nexus test %d", serial)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// HTTPS is served with the configured certificate; a reload (SIGHUP)
// serves a renewed one, and a broken renewal keeps the one in force.
func TestEdgeTLSShouldServeAndReloadTheCertificate(t *testing.T) {
	t.Parallel()
	// Given a server with a self-signed certificate
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := selfSigned(t, 1, certFile, keyFile)
	n := startNexus(t, edgeConfig(func(o *startOpts) {
		o.cfg.Server.TLSCertFile, o.cfg.Server.TLSKeyFile = certFile, keyFile
	}))
	plainURL := n.URL
	pool := x509.NewCertPool()
	pool.AddCert(first)
	tlsConf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	n.URL = "https://" + n.hostPort()
	n.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// served is the serial of the certificate a new connection sees.
	served := func() int64 {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.hostPort(),
			&tls.Config{InsecureSkipVerify: true}) // the serial is checked, not the chain
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}

	// Then HTTPS answers, over HTTP/2, with that certificate verified
	resp, err := n.client.Get(n.URL + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	_, _ = drain(resp)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("HTTPS: %d over %s, serial %v", resp.StatusCode, resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber)
	}
	// And plain HTTP is not served
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	if resp, err := plain.Get(plainURL + "/healthz"); err == nil {
		_, _ = drain(resp)
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served 200")
		}
	}

	// When the certificate is renewed and the server told (SIGHUP)
	second := selfSigned(t, 2, certFile, keyFile)
	pool.AddCert(second)
	n.hup <- struct{}{}
	// Then new connections get the new one, verified
	eventually(t, 10*time.Second, "the renewed certificate", func() bool { return served() == 2 })
	tr.CloseIdleConnections()
	expectStatus(t, n.get(t, "/healthz"), http.StatusOK)

	// When a broken renewal is written and the server told
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.hup <- struct{}{}
	// Then the error is logged and the certificate in force stays
	eventually(t, 10*time.Second, "the failed reload's log line", func() bool {
		return len(n.logs.lines("TLS certificate reload failed; the previous certificate stays in force")) == 1
	})
	if s := served(); s != 2 {
		t.Fatalf("after a broken renewal the server presents serial %d, want 2", s)
	}
	tr.CloseIdleConnections()
	expectStatus(t, n.get(t, "/healthz"), http.StatusOK)
}

// A TLS pair that does not load fails start-up, naming the keys.
func TestEdgeTLSWithABrokenCertificateShouldFailStartUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "missing-key.pem")
	selfSigned(t, 1, certFile, filepath.Join(dir, "key.pem"))
	cfg := testConfig()
	cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile = certFile, keyFile
	cfg.Datasets.Workers = 1
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = runWithConfig(t, string(data), nil)
	if err == nil || !strings.Contains(err.Error(), "server.tls_cert_file, server.tls_key_file") || !strings.Contains(err.Error(), "missing-key.pem") {
		t.Fatalf("start-up error %v", err)
	}
}
