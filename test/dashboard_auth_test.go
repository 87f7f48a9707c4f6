package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nexus/nexus/config"
)

// Given a Nexus with API keys, the dashboard, whose health poll answers
// 401, asks for an API key as it asks for the admin token; a key without
// the observe scope is told so; with the right one the circuits show, and
// the key lives in the tab's session storage only.
func TestDashboardShouldAskForAnAPIKeyWhenHealthNeedsOne(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	n := startNexus(t, withKeys(teamKeys()...))
	b := newBrowser(t, chrome)
	b.navigate(t, n.URL+"/dashboard?interval=0.2")
	b.waitFor(t, 10*time.Second, "the key field and the 401 reason",
		`!document.getElementById("key-panel").hidden && document.body.innerText.includes("enter an API key with the observe scope")`)

	// A key without the observe scope.
	b.do(t, chromedp.SendKeys(chromedp.CSS("#apikey"), keyAnalyst))
	b.waitFor(t, 10*time.Second, "the 403 reason", `document.body.innerText.includes("the API key lacks the observe scope")`)

	// The right key.
	b.do(t, chromedp.Click(chromedp.CSS("#forget-key")), chromedp.SendKeys(chromedp.CSS("#apikey"), keyObserve))
	b.waitFor(t, 10*time.Second, "the data_analyst card to say closed", cardStateIs(config.CircuitDataAnalyst, "closed"))
	if got := evalJS[string](t, b, `sessionStorage.getItem("nexus.apiKey")`); got != keyObserve {
		t.Errorf("sessionStorage key = %q, want the entered key", got)
	}
	if got := evalJS[string](t, b, `location.href`); got != n.URL+"/dashboard?interval=0.2" {
		t.Errorf("the address changed: %s", got)
	}
	b.screenshot(t, "dashboard-api-key-375.png", 375, 812, true)
	b.expectNoHorizontalScroll(t)
	b.expectNoPageErrors(t)
}
