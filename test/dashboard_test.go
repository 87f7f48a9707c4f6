package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/nexus/nexus/config"
	"github.com/nexus/nexus/test/fakellm"
)

// The dashboard tests drive GET /dashboard in headless Debian Chromium. They
// skip when chromium is not installed, except in CI (CI set), where a
// missing browser fails them. Screenshots go to test/artifacts/.

const dashboardAdminToken = "dashboard-test-token"

// Given the dashboard open in a browser and a closed data_analyst circuit,
// when two LLM failures open the circuit, then within a few seconds its card
// says open, with the upstream error and a retry countdown; the layout holds
// on a desktop and at 375 px wide.
func TestDashboardShouldShowAnOpenCircuit(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 1, 30, 2), func(o *startOpts) {
		cg := o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator]
		cg.MaxConcurrent = 3
		o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = cg
	})
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	b.waitFor(t, 10*time.Second, "the data_analyst card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	if got := b.text(t, "#interval"); got != "0.2" {
		t.Errorf("shown poll interval = %q, want 0.2", got)
	}

	// When: two upstream failures reach the failure threshold.
	n.LLM.SetDefaultFor(analystModel, fakellm.Status(500, "boom"))
	for i := 0; i < 2; i++ {
		expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	}

	// Then: the card follows the circuit, in text and not only in colour.
	b.waitFor(t, 5*time.Second, "the data_analyst card to say open", cardStateIs(config.CircuitDataAnalyst, "open"))
	card := `[data-circuit="data_analyst"] `
	// A rejection counts in the rejection rate (1 of 3 calls), not in the
	// success rate (0 of the 2 calls made).
	if r := n.analyze(t); errorCode(r) != "circuit_open" {
		t.Fatalf("third call: %s", r.Raw)
	}
	b.waitFor(t, 5*time.Second, "the rejection rate to show the rejection", jsTextOf(card+`[data-field="rejection_rate"]`)+` === "33.3%"`)
	// The pill is polled too: a poll that times out on a busy machine
	// shows "Unknown — last seen …" until the next one.
	b.waitFor(t, 10*time.Second, "the overall pill to say degraded", jsTextOf("#overall")+` === "Degraded — 3 closed, 1 open"`)
	if got := b.attr(t, `[data-circuit="data_analyst"]`, "data-state"); got != "open" {
		t.Errorf("card data-state = %q, want open", got)
	}
	if got := b.attr(t, card+`[data-field="error_box"]`, "class"); got != "err" {
		t.Errorf("an open circuit's error box class = %q, want err (an alarm)", got)
	}
	for sel, want := range map[string]*regexp.Regexp{
		card + `[data-field="last_error"]`:                              regexp.MustCompile(`boom`),
		card + `[data-field="failure_count"]`:                           regexp.MustCompile(`^2$`),
		card + `[data-field="success_rate"]`:                            regexp.MustCompile(`^0%$`),
		card + `[data-field="rejected_count"]`:                          regexp.MustCompile(`^1$`),
		`[data-circuit="code_generator"] [data-field="success_rate"]`:   regexp.MustCompile(`^no LLM calls yet$`),
		`[data-circuit="code_generator"] [data-field="rejection_rate"]`: regexp.MustCompile(`^no calls yet$`),
		card + `[data-field="transitions"] li`:                          regexp.MustCompile(`^closed → open · .*2 consecutive failures`),
		`#f-config`:                                                     regexp.MustCompile(`cot_review_config\.json$`),
		`[data-circuit="code_generator"] [data-field="state"]`:          regexp.MustCompile(`^closed$`),
		card + `[data-field="guards"]`:                                  regexp.MustCompile(`^POST /analyze \(answer step\)$`),
		`[data-circuit="code_generator"] [data-field="guards"]`:         regexp.MustCompile(`^POST /generate, POST /analyze \(plan step\)$`),
		`[data-circuit="visualization"] [data-field="guards"]`:          regexp.MustCompile(`^POST /analyze \(chart step\)$`),
		card + `[data-field="llm_base_url"]`:                            regexp.MustCompile(`^` + regexp.QuoteMeta(strings.TrimSuffix(n.LLM.URL(), "/v1")) + `$`),
		card + `[data-field="error_title"]`:                             regexp.MustCompile(`^Last error$`),
		`[data-circuit="code_generator"] [data-field="config"]`:         regexp.MustCompile(`· At most 3 calls at once, 0 in flight$|· at most 3 calls at once, 0 in flight$`),
	} {
		if got := b.text(t, sel); !want.MatchString(got) {
			t.Errorf("%s = %q, want it to match %s", sel, got, want)
		}
	}
	// The countdown starts near recovery_timeout (30 s) and runs down.
	first := b.retryIn(t)
	if first <= 20 || first > 30 {
		t.Errorf("retry countdown = %.1f s, want just under 30", first)
	}
	b.waitFor(t, 10*time.Second, "the countdown to run", `(() => {
		const m = /^May retry in (\d+\.\d) s$/.exec(`+jsTextOf(card+`[data-field="remaining"]`)+`);
		return m && Number(m[1]) < `+fmt.Sprint(first)+`; })()`)
	b.waitFor(t, 10*time.Second, "no connection banner while the server answers", `!document.getElementById("conn-banner").checkVisibility()`)

	b.screenshot(t, "dashboard-open-desktop.png", 1280, 900, false)
	b.screenshot(t, "dashboard-open-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	b.colorScheme(t, "dark")
	b.screenshot(t, "dashboard-open-dark-desktop.png", 1280, 900, false)
	b.expectNoPageErrors(t)
}

// Given the dashboard loaded through a proxy in front of Nexus, when the
// proxy fails in each way a dead or broken server can, then a banner says
// Nexus cannot be reached and when it last answered; when the proxy heals,
// the banner goes away by itself and fresh data shows again.
func TestDashboardShouldShowABannerWhenTheServerIsDown(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 1, 30, 2))
	p := newFlakyProxy(t, n.URL)
	b := newBrowser(t, chrome)
	b.navigate(t, p.URL+"/dashboard?interval=0.2")
	b.waitFor(t, 10*time.Second, "the data_analyst card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	b.waitFor(t, 10*time.Second, "no connection banner", `!document.getElementById("conn-banner").checkVisibility()`)

	// While the proxy answers 502, the circuit opens behind it.
	p.set(fail502)
	b.waitForBanner(t, "HTTP 502")
	n.LLM.SetDefaultFor(analystModel, fakellm.Status(500, "boom"))
	for i := 0; i < 2; i++ {
		expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	}
	p.set(pass)
	b.waitFor(t, 10*time.Second, "the banner to hide", `!document.getElementById("conn-banner").checkVisibility()`)
	b.waitFor(t, 10*time.Second, "the fresh state, open", cardStateIs(config.CircuitDataAnalyst, "open"))

	for _, tc := range []struct {
		name   string
		mode   failMode
		reason string
	}{
		{name: "connection closed", mode: failHangUp, reason: "network error"},
		{name: "invalid JSON", mode: failBadJSON, reason: "not valid JSON"},
		{name: "no answer", mode: failSilent, reason: "no answer within 0.16 s"},
		{name: "a 404 that is not Nexus's", mode: fail404, reason: "HTTP 404: no health endpoint at this address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.set(tc.mode)
			b.waitForBanner(t, tc.reason)
			p.set(pass)
			b.waitFor(t, 10*time.Second, "the banner to hide", `!document.getElementById("conn-banner").checkVisibility()`)
			if got := b.text(t, "#f-updated"); !strings.Contains(got, "just now") {
				t.Errorf("last updated = %q, want just now", got)
			}
		})
	}

	p.set(fail502)
	b.waitForBanner(t, "HTTP 502")
	b.screenshot(t, "dashboard-down-desktop.png", 1280, 900, false)
	b.screenshot(t, "dashboard-down-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	p.set(pass)
	b.expectNoPageErrors(t)
}

// Given an admin token, when an operator enters it and presses Force open
// then Close on a card, then the circuit opens (shown as "open (forced)")
// and closes again; a wrong token says so, and a Nexus without an admin
// token says its admin API is disabled.
func TestDashboardShouldDriveACircuitWithTheAdminToken(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t, func(o *startOpts) { o.env["NEXUS_ADMIN_TOKEN"] = dashboardAdminToken })
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	b.waitFor(t, 10*time.Second, "the data_analyst card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	forceOpen := chromedp.CSS(`[data-circuit="data_analyst"] button[data-action="open"]`)
	closeBtn := chromedp.CSS(`[data-circuit="data_analyst"] button[data-action="close"]`)
	result := `[data-circuit="data_analyst"] [data-field="action_result"]`
	if b.visible(t, string(forceOpen)) {
		t.Fatal("admin buttons visible without a token")
	}

	// A wrong token.
	b.do(t, chromedp.Click(chromedp.CSS("#admin > summary")), chromedp.SendKeys(chromedp.CSS("#token"), "wrong"))
	b.do(t, chromedp.Click(forceOpen))
	b.waitFor(t, 5*time.Second, "invalid token", textContains(result, "invalid token"))
	if got := n.state(t, config.CircuitDataAnalyst); got != "closed" {
		t.Fatalf("state after a refused action = %q, want closed", got)
	}

	// The right token.
	b.do(t, chromedp.Click(chromedp.CSS("#forget")), chromedp.SendKeys(chromedp.CSS("#token"), dashboardAdminToken))
	b.do(t, chromedp.Click(forceOpen))
	b.waitFor(t, 10*time.Second, "the card to say open (forced)",
		cardStateIs(config.CircuitDataAnalyst, "open")+` && `+jsTextOf(`[data-circuit="data_analyst"] .badge`)+` === "open (forced)"`)
	if got := b.text(t, `[data-circuit="data_analyst"] [data-field="remaining"]`); !strings.Contains(got, "Held open") {
		t.Errorf("forced-open delay text = %q, want it to say the circuit is held open", got)
	}
	b.screenshot(t, "dashboard-admin-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	b.expectTappableButtons(t)
	b.do(t, chromedp.Click(closeBtn))
	b.waitFor(t, 10*time.Second, "the card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	if got := n.state(t, config.CircuitDataAnalyst); got != "closed" {
		t.Fatalf("state after Close = %q, want closed", got)
	}

	// The token lives in sessionStorage only, never in the address.
	if got := evalJS[string](t, b, `sessionStorage.getItem("nexus.adminToken")`); got != dashboardAdminToken {
		t.Errorf("sessionStorage token = %q, want the entered token", got)
	}
	if got := evalJS[string](t, b, `location.href`); strings.Contains(got, dashboardAdminToken) {
		t.Errorf("token leaked into the URL: %s", got)
	}
	b.expectNoPageErrors(t)

	// A Nexus without an admin token has no admin API.
	plain := startNexus(t)
	b.navigate(t, plain.URL+"/dashboard?interval=0.2")
	b.waitFor(t, 10*time.Second, "the data_analyst card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	b.do(t, chromedp.Click(chromedp.CSS("#admin > summary")), chromedp.SendKeys(chromedp.CSS("#token"), dashboardAdminToken))
	b.do(t, chromedp.Click(forceOpen))
	b.waitFor(t, 5*time.Second, "admin API disabled", textContains(result, "admin API disabled"))
	b.expectNoPageErrors(t)
}

// Given the dashboard open and a data_analyst circuit that two failures
// opened, when a trial call succeeds and closes it, then its last error
// stays on the card, dimmed and titled as history rather than as an alarm;
// when a new failure starts a streak, it is an alarm again.
func TestDashboardShouldShowAnErrorAsHistoryOnceTheCircuitClosed(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t, withCircuit(config.CircuitDataAnalyst, 2, 1, 2, 2))
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	b.waitFor(t, 10*time.Second, "the data_analyst card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	card := `[data-circuit="data_analyst"] `
	box, title, last := card+`[data-field="error_box"]`, card+`[data-field="error_title"]`, card+`[data-field="last_error"]`
	isAlarm := jsTextOf(title) + ` === "Last error" && document.querySelector(` + jsString(box) + `).className === "err"`

	// Given: two failures open it; the error is an alarm.
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "boom one"), fakellm.Status(500, "boom two"))
	for i := 0; i < 2; i++ {
		expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	}
	// (On a slow machine the page may first see it half-open: an alarm too.)
	b.waitFor(t, 10*time.Second, "the open card with its error as an alarm",
		`(`+cardStateIs(config.CircuitDataAnalyst, "open")+` || `+cardStateIs(config.CircuitDataAnalyst, "half-open")+`) && `+isAlarm)

	// When: after the recovery timeout a trial succeeds and closes it.
	eventually(t, 10*time.Second, "half-open", func() bool { return n.state(t, config.CircuitDataAnalyst) == "half-open" })
	n.LLM.EnqueueFor(analystModel, fakellm.Reply("back"))
	expectStatus(t, n.analyze(t), http.StatusOK)

	// Then: the error is history.
	b.waitFor(t, 10*time.Second, "the closed card with its error as history", cardStateIs(config.CircuitDataAnalyst, "closed")+` && `+
		jsTextOf(title)+` === "Earlier error — the circuit has closed since" && `+
		`document.querySelector(`+jsString(box)+`).className === "err history"`)
	if got := b.text(t, last); !strings.Contains(got, "boom two") {
		t.Errorf("the earlier error = %q, want the last failure's text", got)
	}
	if got := evalJS[string](t, b, `getComputedStyle(document.querySelector(`+jsString(box)+`)).backgroundColor`); got != "rgb(234, 238, 242)" {
		t.Errorf("history background = %s, want the grey rgb(234, 238, 242)", got)
	}
	b.screenshot(t, "dashboard-error-history-desktop.png", 1280, 900, false)

	// A new failure starts a streak: an alarm again.
	n.LLM.EnqueueFor(analystModel, fakellm.Status(500, "boom three"))
	expectStatus(t, n.analyze(t), http.StatusServiceUnavailable)
	b.waitFor(t, 10*time.Second, "the new error as an alarm", isAlarm+` && `+textContains(last, "boom three"))
	b.expectNoPageErrors(t)
}

// Given circuit breakers turned off and an LLM base URL with credentials
// in it, the page shows every circuit and the overall pill in grey as
// "disabled", not as a green "healthy"; each card names the routes its
// circuit guards and the base URL without its secrets.
func TestDashboardShouldShowDisabledCircuitsInGrey(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	const key = "sk-dash-SECRET-0123456789"
	n := startNexus(t, func(o *startOpts) {
		o.cfg.CircuitBreaker.Enabled = false
		o.env["LLM_API_KEY"] = key
		o.env["LLM_BASE_URL"] = "https://ops:hunter2@llm.example.invalid/tenants/" + key + "/v1?api-key=" + key
	})
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	// The pill, checked in one evaluation so that a slow poll (which turns
	// it to "Unknown", also grey) cannot pass for it: grey as the
	// stylesheet's --off colours, not the green of healthy.
	b.waitFor(t, 10*time.Second, "the overall pill to say disabled, in grey", cardStateIs(config.CircuitDataAnalyst, "disabled")+` && `+
		jsTextOf("#overall")+` === "Disabled — circuit breakers are off" && `+
		`document.getElementById("overall").dataset.status === "disabled" && `+
		`getComputedStyle(document.getElementById("overall")).backgroundColor === "rgb(234, 238, 242)"`)
	for _, name := range config.CircuitNames() {
		card := `[data-circuit="` + name + `"]`
		if got := b.text(t, card+` [data-field="consecutive_failures"]`); got != "0" {
			t.Errorf("%s fails in a row = %q, want 0 without a threshold: no breaker counts", name, got)
		}
		if got := b.attr(t, card, "data-state"); got != "disabled" {
			t.Errorf("%s data-state = %q, want disabled", name, got)
		}
		if got := b.text(t, card+` [data-field="health"]`); got != "disabled" {
			t.Errorf("%s health = %q, want disabled", name, got)
		}
		if got := b.text(t, card+` [data-field="llm_base_url"]`); got != "https://llm.example.invalid" {
			t.Errorf("%s LLM base URL = %q", name, got)
		}
	}
	if got, want := b.text(t, `[data-circuit="cot_engine"] [data-field="guards"]`), "POST /analyze (review step)"; got != want {
		t.Errorf("cot_engine guards = %q, want %q", got, want)
	}
	if page := b.pageText(); strings.Contains(page, "hunter2") || strings.Contains(page, key) || strings.Contains(page, "api-key") {
		t.Errorf("the page shows the base URL's secrets:\n%s", page)
	}
	b.screenshot(t, "dashboard-disabled-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	b.expectNoPageErrors(t)
}

// Given a Nexus whose health endpoint is turned off in its config, the page
// says so, calmly, instead of "Unreachable"; when a reload turns the
// endpoint on, the circuits appear by themselves.
func TestDashboardShouldSayWhenTheHealthEndpointIsTurnedOff(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t, withAdmin, func(o *startOpts) { o.cfg.CircuitBreaker.ExposeHealthEndpoint = false })
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	// All in one evaluation: a slow poll shows the connection banner
	// instead, which is a different (and here wrong) message.
	b.waitFor(t, 10*time.Second, "the health-off notice instead of the connection banner",
		`document.getElementById("health-off").checkVisibility() && !document.getElementById("conn-banner").checkVisibility() && `+
			jsTextOf("#overall")+` === "Health endpoint off" && document.getElementById("overall").dataset.status === "off" && `+
			jsTextOf("#health-off strong")+` === "The health endpoint is turned off" && `+
			jsTextOf("#empty")+` === "No circuit data while the health endpoint is turned off." && `+
			`document.querySelectorAll("[data-circuit]").length === 0`)
	if got := b.text(t, "#health-off"); !strings.Contains(got, "circuit_breaker.expose_health_endpoint") {
		t.Errorf("the notice does not name the setting: %q", got)
	}
	b.screenshot(t, "dashboard-health-off-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)

	// A reload turns it on: the page picks it up by itself.
	rewriteConfig(t, n.ConfigPath, func(c *config.Config) { c.CircuitBreaker.ExposeHealthEndpoint = true })
	expectStatus(t, n.admin(t, http.MethodPost, "/api/config/reload", adminToken), http.StatusOK)
	b.waitFor(t, 10*time.Second, "the circuits after the reload", cardStateIs(config.CircuitDataAnalyst, "closed")+
		` && !document.getElementById("health-off").checkVisibility() && `+jsTextOf("#overall")+` === "Healthy — 4 closed"`)
	b.expectNoPageErrors(t)
}

// Given ?interval= values out of range or not numbers, the page clamps them
// to [0.2, 60] seconds or falls back to 2.
func TestDashboardShouldClampThePollInterval(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t)
	b := newBrowser(t, chrome)
	for _, tc := range []struct{ name, query, want string }{
		{name: "default", query: "", want: "2"},
		{name: "decimal", query: "?interval=0.5", want: "0.5"},
		{name: "too small", query: "?interval=0.01", want: "0.2"},
		{name: "too large", query: "?interval=3600", want: "60"},
		{name: "not a number", query: "?interval=soon", want: "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.navigate(t, n.URL+"/dashboard"+tc.query)
			b.waitFor(t, 10*time.Second, "the first update", cardStateIs(config.CircuitDataAnalyst, "closed"))
			if got := b.text(t, "#interval"); got != tc.want {
				t.Errorf("interval = %q, want %q", got, tc.want)
			}
		})
	}
}

// Given a running Nexus, GET /dashboard returns one HTML page that loads
// nothing from other hosts, with a CSP that pins its inline script by hash.
func TestDashboardShouldServeASelfContainedPageWithAStrictCSP(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	resp, err := n.client.Get(n.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	page := string(body)

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	csp := map[string]string{}
	for _, d := range strings.Split(resp.Header.Get("Content-Security-Policy"), ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		csp[name] = value
	}
	_, script, ok := strings.Cut(page, "<script>")
	script, _, ok2 := strings.Cut(script, "</script>")
	if !ok || !ok2 {
		t.Fatal("the page has no inline <script>")
	}
	sum := sha256.Sum256([]byte(script))
	for name, want := range map[string]string{
		"default-src":     "'self'",
		"script-src":      "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'",
		"style-src":       "'self' 'unsafe-inline'",
		"connect-src":     "'self'",
		"img-src":         "'self' data:",
		"object-src":      "'none'",
		"frame-ancestors": "'none'",
	} {
		if csp[name] != want {
			t.Errorf("CSP %s = %q, want %q (policy: %q)", name, csp[name], want, resp.Header.Get("Content-Security-Policy"))
		}
	}

	for _, bad := range []struct{ what, pattern string }{
		{"an absolute URL", `(?i)https?://`},
		{"a protocol-relative URL", `(?i)(src|href|action)\s*=\s*["']?\s*//`},
		{"an external script", `(?i)<script[^>]*\ssrc\s*=`},
		{"an external stylesheet or font", `(?i)<link[^>]*rel\s*=\s*["']?(stylesheet|preload|preconnect)|@import|@font-face|url\(`},
	} {
		if m := regexp.MustCompile(bad.pattern).FindString(page); m != "" {
			t.Errorf("the page has %s: %q", bad.what, m)
		}
	}
	for _, want := range []string{`id="conn-banner"`, `role="alert"`, `aria-live="polite"`, `name="viewport"`, `type="password"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// Given code_generator with a failing primary target and a healthy backup
// on a second provider, when two failures open the primary, then the card
// lists both targets: the primary open, the backup closed and marked as the
// one serving, and the circuit available via the backup. When the backup
// then answers 429 with Retry-After, it cools down: the card says so, with
// no target admitting and the circuit not available.
func TestDashboardShouldShowWhichTargetServes(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	backup := fakellm.New(t)
	n := startNexus(t, func(o *startOpts) {
		o.env["BACKUP_KEY"] = "sk-backup"
		o.cfg.LLM.Providers = map[string]config.Provider{"backup": {BaseURL: backup.URL(), APIKeyEnv: "BACKUP_KEY"}}
		o.cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{
			{Provider: "default", Model: codegenModel}, {Provider: "backup", Model: "backup-model"}}
		o.cfg.CircuitBreaker.Circuits[config.CircuitCodeGenerator] = config.Circuit{
			FailureThreshold: 2, SuccessThreshold: 1, RecoveryTimeout: 30, Timeout: 5, MaxRetryAfter: 30,
		}
	})
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	card := `[data-circuit="code_generator"] `
	row := func(i int) string { return fmt.Sprintf(`%s[data-field="target"]:nth-child(%d) `, card, i) }
	rows := `document.querySelectorAll(` + jsString(card+`[data-field="target"]`) + `).length === 2`

	// Before: the primary serves.
	b.waitFor(t, 10*time.Second, "both targets closed, the primary serving", rows+` && `+
		jsTextOf(row(1)+`[data-field="target_state"]`)+` === "closed" && `+
		jsTextOf(row(1)+`[data-field="serving"]`)+` === "serving" && `+
		`!document.querySelector(`+jsString(row(2)+`[data-field="serving"]`)+`) && `+
		jsTextOf(card+`[data-field="available"]`)+` === "available"`)

	// When: the primary fails twice; each call fails over to the backup.
	n.LLM.SetDefaultFor(codegenModel, fakellm.Status(500, "primary down"))
	for i := 0; i < 2; i++ {
		r := n.generate(t)
		expectStatus(t, r, http.StatusOK)
		if r.Body["provider"] != "backup" {
			t.Fatalf("call %d answered by %v, want backup: %s", i+1, r.Body["provider"], r.Raw)
		}
	}

	// Then: the primary is open, the backup closed and serving.
	b.waitFor(t, 10*time.Second, "the primary open and the backup serving", rows+` && `+
		cardStateIs(config.CircuitCodeGenerator, "open")+` && `+
		jsTextOf(row(1)+`[data-field="target_name"]`)+` === "default/`+codegenModel+`" && `+
		jsTextOf(row(1)+`[data-field="target_state"]`)+` === "open" && `+
		`!document.querySelector(`+jsString(row(1)+`[data-field="serving"]`)+`) && `+
		jsTextOf(row(2)+`[data-field="target_name"]`)+` === "backup/backup-model" && `+
		jsTextOf(row(2)+`[data-field="target_state"]`)+` === "closed" && `+
		jsTextOf(row(2)+`[data-field="serving"]`)+` === "serving" && `+
		jsTextOf(card+`[data-field="available"]`)+` === "available via backup (backup/backup-model)" && `+
		`!document.querySelector(`+jsString(card+`[data-field="none_admitting"]`)+`).checkVisibility()`)
	// The rows use the circuit pill's colours: red for open, green for closed.
	for i, want := range []string{"rgb(255, 235, 233)", "rgb(218, 251, 225)"} {
		sel := row(i+1) + `.tstate`
		if got := evalJS[string](t, b, `getComputedStyle(document.querySelector(`+jsString(sel)+`)).backgroundColor`); got != want {
			t.Errorf("%s background = %s, want %s", sel, got, want)
		}
	}
	if got := b.attr(t, card+`[data-field="available"]`, "data-available"); got != "backup" {
		t.Errorf("data-available = %q, want backup", got)
	}
	// A single-target circuit shows its one target, serving.
	if got := b.text(t, `[data-circuit="data_analyst"] [data-field="target"]`); !strings.HasPrefix(got, "default/"+analystModel+"closedserving") {
		t.Errorf("data_analyst target row = %q, want default/%s, closed, serving", got, analystModel)
	}
	b.screenshot(t, "dashboard-targets-desktop.png", 1280, 900, false)
	b.screenshot(t, "dashboard-targets-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)

	// When: the backup answers 429 with Retry-After: it cools down.
	backup.EnqueueFor("backup-model", fakellm.RateLimited(30))
	expectStatus(t, n.generate(t), http.StatusServiceUnavailable)
	b.waitFor(t, 10*time.Second, "the backup cooling down, no target admitting", rows+` && `+
		jsTextOf(row(1)+`[data-field="target_state"]`)+` === "open" && `+
		jsTextOf(row(2)+`[data-field="target_state"]`)+` === "closed" && `+
		`/^cooling down until \d/.test(`+jsTextOf(row(2)+`[data-field="cooling_down"]`)+`) && `+
		`!document.querySelector(`+jsString(card+`[data-field="serving"]`)+`) && `+
		`document.querySelector(`+jsString(card+`[data-field="none_admitting"]`)+`).checkVisibility() && `+
		jsTextOf(card+`[data-field="none_admitting"]`)+` === "none admitting" && `+
		jsTextOf(card+`[data-field="available"]`)+` === "not available"`)
	b.expectNoPageErrors(t)
}

// Given a second provider whose base URL is a closed loopback port, the
// Providers section lists both providers: the default one reachable, with
// its latency and probe time, and the dead one unreachable.
func TestDashboardShouldListTheProviders(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	n := startNexus(t, func(o *startOpts) {
		o.env["DEAD_KEY"] = "sk-dead"
		o.cfg.LLM.Providers = map[string]config.Provider{"dead": {BaseURL: dead + "/v1", APIKeyEnv: "DEAD_KEY"}}
		o.cfg.LLM.Models[config.CircuitCodeGenerator] = config.Targets{
			{Provider: "default", Model: codegenModel}, {Provider: "dead", Model: "dead-model"}}
	})
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	prov := func(name string) string { return `#providers [data-provider="` + name + `"] ` }
	b.waitFor(t, 10*time.Second, "both providers, probed", `document.getElementById("providers-section").checkVisibility() && `+
		`document.querySelectorAll("#providers > li").length === 2 && `+
		jsTextOf(prov("default")+`[data-field="reachable"]`)+` === "yes" && `+
		jsTextOf(prov("dead")+`[data-field="reachable"]`)+` === "no"`)
	defaultURL := strings.TrimSuffix(n.LLM.URL(), "/v1")
	for sel, want := range map[string]*regexp.Regexp{
		prov("default") + `[data-field="provider_name"]`:           regexp.MustCompile(`^default$`),
		prov("default") + `[data-field="provider_base_url"]`:       regexp.MustCompile(`^` + regexp.QuoteMeta(defaultURL) + `$`),
		prov("default") + `[data-field="latency"]`:                 regexp.MustCompile(`^\d+(\.\d)? ms$`),
		prov("default") + `[data-field="last_probe"]`:              regexp.MustCompile(`^probed (just now|\d+ s ago)$`),
		prov("dead") + `[data-field="provider_name"]`:              regexp.MustCompile(`^dead$`),
		prov("dead") + `[data-field="provider_base_url"]`:          regexp.MustCompile(`^` + regexp.QuoteMeta(dead) + `$`),
		prov("dead") + `[data-field="last_probe"]`:                 regexp.MustCompile(`^probed (just now|\d+ s ago)$`),
		`#providers > li:first-child [data-field="provider_name"]`: regexp.MustCompile(`^default$`),
	} {
		if got := b.text(t, sel); !want.MatchString(got) {
			t.Errorf("%s = %q, want it to match %s", sel, got, want)
		}
	}
	if got := b.attr(t, `#providers [data-provider="dead"]`, "data-reachable"); got != "no" {
		t.Errorf("dead provider data-reachable = %q, want no", got)
	}
	if got := evalJS[string](t, b, `getComputedStyle(document.querySelector('#providers [data-provider="dead"] .reach')).backgroundColor`); got != "rgb(255, 235, 233)" {
		t.Errorf("unreachable background = %s, want the red rgb(255, 235, 233)", got)
	}
	b.screenshot(t, "dashboard-providers-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	b.expectNoPageErrors(t)
}

// Given model names that look like HTML (model names are free text), the
// page shows them literally and creates no element from them.
func TestDashboardShouldShowModelNamesAsText(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	const bold = "<b>bold</b>"
	const img = `<img src=x onerror="window.pwned=1">`
	n := startNexus(t, func(o *startOpts) {
		o.cfg.LLM.Models[config.CircuitVisualization] = config.Single(bold)
		o.cfg.LLM.Models[config.CircuitCoTEngine] = config.Targets{{Provider: "default", Model: cotModel}, {Provider: "default", Model: img}}
	})
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	viz := `[data-circuit="visualization"] `
	cot := `[data-circuit="cot_engine"] `
	b.waitFor(t, 10*time.Second, "the model names as text",
		jsTextOf(viz+`[data-field="target_name"]`)+` === `+jsString("default/"+bold)+` && `+
			jsTextOf(viz+`[data-field="model"]`)+` === `+jsString(bold)+` && `+
			jsTextOf(cot+`[data-field="target"]:nth-child(2) [data-field="target_name"]`)+` === `+jsString("default/"+img))
	if got := evalJS[int](t, b, `document.querySelectorAll("main b, main img").length`); got != 0 {
		t.Errorf("the page made %d <b> or <img> elements from model names", got)
	}
	if got := evalJS[bool](t, b, `window.pwned === undefined`); !got {
		t.Error("a model name ran script")
	}
	if got := evalJS[bool](t, b, `document.body.innerText.includes(`+jsString(bold)+`)`); !got {
		t.Errorf("the page does not show %q literally", bold)
	}
	b.expectNoPageErrors(t)
}

// Given a Nexus whose circuits have streamed nothing yet, every card's
// "first token p50" says "—". Given health reports with medians (a proxy
// writes them in, since no route streams yet), each is shown in a unit that
// fits it, a value that is not a number still shows "—", and nothing from
// the report becomes markup.
func TestDashboardShouldShowTheFirstTokenMedian(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t)
	var medians atomic.Pointer[map[string]any] // by circuit; nil: pass health through
	p := newHealthRewriter(t, n.URL, func(health map[string]any) {
		m := medians.Load()
		if m == nil {
			return
		}
		cb, _ := health["circuit_breakers"].(map[string]any)
		list, _ := cb["circuit_breakers"].([]any)
		for _, c := range list {
			if c, ok := c.(map[string]any); ok {
				if v, ok := (*m)[c["name"].(string)]; ok {
					c["time_to_first_token_p50_ms"] = v
				}
			}
		}
	})
	b := newBrowser(t, chrome)
	b.navigate(t, p.URL+"/dashboard?interval=0.2")
	ttft := func(circuit string) string { return `[data-circuit="` + circuit + `"] [data-field="ttft_p50"]` }

	// Before any stream: the real report's nulls.
	all := make([]string, 0, 4)
	for _, c := range config.CircuitNames() {
		all = append(all, jsTextOf(ttft(c))+` === "—"`)
	}
	b.waitFor(t, 10*time.Second, `every card's first token p50 to say "—"`, strings.Join(all, " && "))
	if h := n.get(t, "/api/health/status"); !strings.Contains(h.Raw, `"time_to_first_token_p50_ms":null`) {
		t.Fatalf("health lacks time_to_first_token_p50_ms: null: %s", h.Raw)
	}
	muted := func(circuit string) bool {
		return evalJS[bool](t, b, `document.querySelector(`+jsString(ttft(circuit))+`).classList.contains("none")`)
	}
	if !muted(config.CircuitDataAnalyst) {
		t.Error("a null median is not shown muted (class none)")
	}

	// When health reports medians.
	medians.Store(&map[string]any{
		config.CircuitDataAnalyst:   312.4,
		config.CircuitCodeGenerator: 2345.6,
		config.CircuitCoTEngine:     0.42,
		config.CircuitVisualization: "<img src=x onerror=\"window.pwned=1\">",
	})
	b.waitFor(t, 10*time.Second, "the medians, formatted", jsTextOf(ttft(config.CircuitDataAnalyst))+` === "312 ms" && `+
		jsTextOf(ttft(config.CircuitCodeGenerator))+` === "2.35 s" && `+
		jsTextOf(ttft(config.CircuitCoTEngine))+` === "0.4 ms" && `+
		jsTextOf(ttft(config.CircuitVisualization))+` === "—"`)
	if muted(config.CircuitDataAnalyst) || !muted(config.CircuitVisualization) {
		t.Error("a median is shown muted, or a value that is not a number is not")
	}
	if got := evalJS[int](t, b, `document.querySelectorAll("main img").length`); got != 0 {
		t.Errorf("the page made %d <img> elements from the health report", got)
	}
	if got := evalJS[bool](t, b, `window.pwned === undefined`); !got {
		t.Error("a value from the health report ran script")
	}
	b.screenshot(t, "dashboard-ttft-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	b.expectNoPageErrors(t)
}

// ---- Browser harness ----

// browser is one headless Chromium tab. It records uncaught exceptions,
// console errors and CSP violations so that a test can fail on them.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// chromium finds Debian's chromium on PATH. Without it the test is
// skipped, or fails when CI is set, so that CI cannot pass by skipping.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" {
			t.Fatalf("chromium is not on PATH (CI=%q): the dashboard browser tests must run in CI; install Debian's chromium package", ci)
		}
		t.Skip("chromium is not on PATH: install Debian's chromium package (apt-get install chromium) to run the dashboard browser tests; with CI set they fail instead of skipping")
	}
	return path
}

// newBrowser starts Chromium at path with a fresh profile, and stops it,
// waiting for the process and chromedp's goroutines, when the test ends.
func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	output := &syncBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // Debian's chromium refuses to run sandboxed as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Debian's wrapper tries to add this itself, but its check fails here.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(output),
	)
	b := &browser{}
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() {
		// Close the browser gracefully, then release everything; each
		// cancel waits for the goroutines and the process it owns.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && t.Failed() {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		cancelCtx()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", output.String())
		}
	})
	// The first Run starts the browser and must not carry a timeout, which
	// would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v\noutput:\n%s", err, output.String())
	}
	return b
}

func (b *browser) listen(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		problem = fmt.Sprintf("uncaught exception at %d:%d: %s", d.LineNumber, d.ColumnNumber, d.Text)
		if d.Exception != nil {
			problem += " " + d.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, a.Description+string(a.Value))
			}
			problem = "console.error: " + strings.Join(parts, " ")
		}
	case *cdplog.EventEntryAdded:
		// Failed requests are the point of some tests; anything else at
		// error level, such as a CSP violation, is a bug in the page.
		if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
			problem = fmt.Sprintf("%s: %s", ev.Entry.Source, ev.Entry.Text)
		}
	}
	if problem != "" {
		b.mu.Lock()
		b.problems = append(b.problems, problem)
		b.mu.Unlock()
	}
}

func (b *browser) expectNoPageErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("page error: %s", p)
	}
}

// do runs actions with a deadline, failing the test on error.
func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v\npage text:\n%s", err, b.pageText())
	}
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	b.do(t, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url))
}

// waitFor polls the JavaScript expression in the page until it is truthy.
func (b *browser) waitFor(t *testing.T, within time.Duration, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		t.Fatalf("waiting %s for %s: %v\npage text:\n%s", within, what, err, b.pageText())
	}
}

func (b *browser) waitForBanner(t *testing.T, reason string) {
	t.Helper()
	b.waitFor(t, 10*time.Second, "the connection banner saying "+reason,
		`document.getElementById("conn-banner").checkVisibility() && `+
			jsTextOf("#conn-banner")+`.startsWith("Cannot reach Nexus — retrying…") && `+
			jsTextOf("#conn-detail")+`.includes("Showing data from") && `+
			jsTextOf("#conn-detail")+`.includes(`+jsString(reason)+`)`)
}

// pageText is the visible text of the page, for failure messages.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

func evalJS[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// text is the trimmed text of the first element matching the CSS selector.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	return evalJS[string](t, b, `(() => { const e = document.querySelector(`+jsString(sel)+`); return e ? e.textContent.trim() : "(no element)"; })()`)
}

func (b *browser) attr(t *testing.T, sel, name string) string {
	t.Helper()
	return evalJS[string](t, b, `(() => { const e = document.querySelector(`+jsString(sel)+`); return e ? String(e.getAttribute(`+jsString(name)+`)) : "(no element)"; })()`)
}

func (b *browser) visible(t *testing.T, sel string) bool {
	t.Helper()
	return evalJS[bool](t, b, `(() => { const e = document.querySelector(`+jsString(sel)+`); return !!e && e.checkVisibility(); })()`)
}

func (b *browser) expectNoHorizontalScroll(t *testing.T) {
	t.Helper()
	if w := evalJS[[]int](t, b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		t.Errorf("the page scrolls sideways: content %d px wide in a %d px viewport", w[0], w[1])
	}
}

// expectTappableButtons checks that every visible button is at least 44 px
// in both directions, the usual minimum touch target.
func (b *browser) expectTappableButtons(t *testing.T) {
	t.Helper()
	small := evalJS[[]string](t, b, `[...document.querySelectorAll("button")].filter((e) => e.checkVisibility())
		.filter((e) => { const r = e.getBoundingClientRect(); return r.width < 44 || r.height < 44; })
		.map((e) => e.textContent.trim())`)
	if len(small) > 0 {
		t.Errorf("buttons smaller than 44x44 px: %q", small)
	}
}

// retryIn reads the data_analyst card's countdown, in seconds.
func (b *browser) retryIn(t *testing.T) float64 {
	t.Helper()
	text := b.text(t, `[data-circuit="data_analyst"] [data-field="remaining"]`)
	var secs float64
	if _, err := fmt.Sscanf(text, "May retry in %f s", &secs); err != nil {
		t.Fatalf("countdown text %q: %v", text, err)
	}
	return secs
}

// colorScheme emulates prefers-color-scheme (light or dark).
func (b *browser) colorScheme(t *testing.T, scheme string) {
	t.Helper()
	b.do(t, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// screenshot sets the viewport, captures the full page and writes it to
// test/artifacts/name.
func (b *browser) screenshot(t *testing.T, name string, width, height int64, mobile bool) {
	t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if mobile {
		opts = append(opts, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2))
	}
	b.do(t, chromedp.EmulateViewport(width, height, opts...))
	// Let the page lay out at the new size before capturing.
	b.waitFor(t, 10*time.Second, fmt.Sprintf("a %d px wide layout", width), fmt.Sprintf(`window.innerWidth === %d`, width))
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// cardStateIs is a JavaScript predicate: the named circuit's card shows
// exactly state.
func cardStateIs(circuit, state string) string {
	return jsTextOf(`[data-circuit="`+circuit+`"] [data-field="state"]`) + ` === ` + jsString(state)
}

func textContains(sel, want string) string {
	return jsTextOf(sel) + `.includes(` + jsString(want) + `)`
}

// jsTextOf is a JavaScript expression for the trimmed text of the first
// element matching sel, or "" when there is none.
func jsTextOf(sel string) string {
	return `((document.querySelector(` + jsString(sel) + `) || {}).textContent || "").trim()`
}

func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---- A proxy that fails on demand ----

type failMode int32

const (
	pass        failMode = iota
	fail502              // answers 502 Bad Gateway
	failHangUp           // closes the connection without an answer
	failBadJSON          // answers 200 with a truncated JSON body
	failSilent           // never answers, until the client gives up
	fail404              // answers 404 as a server without the route would
)

// flakyProxy stands in front of Nexus on 127.0.0.1 and fails every request
// in the current mode, so that a test can take the server "down" and bring
// it back while the page stays loaded.
type flakyProxy struct {
	URL  string
	mode atomic.Int32
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	stop := make(chan struct{})
	p := &flakyProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch failMode(p.mode.Load()) {
		case fail502:
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case failHangUp:
			panic(http.ErrAbortHandler)
		case failBadJSON:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"healthy","circuit_breakers":{`)
		case fail404:
			http.NotFound(w, r)
		case failSilent:
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() {
		close(stop)
		srv.Close()
		tr.CloseIdleConnections()
	})
	p.URL = srv.URL
	return p
}

func (p *flakyProxy) set(m failMode) { p.mode.Store(int32(m)) }

// healthRewriter stands in front of Nexus on 127.0.0.1 and passes every
// request through, except that rewrite may change each 200 health report
// on its way back: the page under test then shows values that the server
// cannot produce yet.
type healthRewriter struct{ URL string }

func newHealthRewriter(t *testing.T, target string, rewrite func(health map[string]any)) *healthRewriter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Path != "/api/health/status" || resp.StatusCode != http.StatusOK {
				return nil
			}
			var health map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
				return err
			}
			resp.Body.Close()
			rewrite(health)
			body, err := json.Marshal(health)
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
			return nil
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return &healthRewriter{URL: srv.URL}
}
