package api

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// dashboardHTML is the whole operator dashboard: one page with its CSS and
// JavaScript inline, so that it loads nothing from the network and works
// air-gapped. It reads GET /api/health/status and, with an admin token,
// calls the /api/circuits/{name}/{open,close,reset} routes. It learns that
// the health endpoint is turned off from that route's own 404 code,
// health_endpoint_disabled, on every poll, so a reload that turns the
// endpoint on or off shows without reloading the page.
//
//go:embed web/dashboard.html
var dashboardHTML []byte

// handleDashboard serves the dashboard page. Its Content-Security-Policy
// allows only the page's own inline script, pinned by hash: the hash is
// computed here, once, from the embedded file, so editing the page cannot
// leave the policy stale. Styles stay 'unsafe-inline', which lets no script
// run.
func handleDashboard() echo.HandlerFunc {
	csp := dashboardCSP(dashboardHTML)
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		return c.Blob(http.StatusOK, "text/html; charset=utf-8", dashboardHTML)
	}
}

// dashboardCSP builds the policy for page. Every inline <script> element
// (written exactly as "<script>", without attributes) is allowed by the
// SHA-256 of its text, which is what browsers hash; a page without one gets
// script-src 'none'.
func dashboardCSP(page []byte) string {
	var hashes []string
	for rest := page; ; {
		_, after, ok := bytes.Cut(rest, []byte("<script>"))
		if !ok {
			break
		}
		body, tail, ok := bytes.Cut(after, []byte("</script>"))
		if !ok {
			break
		}
		sum := sha256.Sum256(body)
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		rest = tail
	}
	scripts := "'none'"
	if len(hashes) > 0 {
		scripts = strings.Join(hashes, " ")
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src " + scripts,
		"style-src 'self' 'unsafe-inline'",
		"connect-src 'self'",
		"img-src 'self' data:",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}
