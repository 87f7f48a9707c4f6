package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/cmd/server/app"
	"github.com/nexus/nexus/config"
)

// Keys of the tests: the secret each client sends, and the name Nexus
// knows it by.
const (
	keyAnalyst = "nx-analyst-8c1f0d2a9b7e4c6f"
	keyReader  = "nx-reader-31a4e5c2d7f9b8a6"
	keyTeamA   = "nx-team-a-5d2c8e1f4a7b9c03"
	keyTeamB   = "nx-team-b-e7f1a3c5b9d2e4f6"
	keyAdmin   = "nx-admin-0a9b8c7d6e5f4a3b"
	keyObserve = "nx-observe-1b2c3d4e5f6a7b8c"
)

func sha(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func apiKey(name, key string, scopes ...string) config.APIKey {
	return config.APIKey{Name: name, SHA256: sha(key), Scopes: scopes}
}

// withKeys configures keys (and leaves the limits off, as testConfig does).
func withKeys(keys ...config.APIKey) func(*startOpts) {
	return func(o *startOpts) { o.cfg.Auth.Keys = keys }
}

// teamKeys are the keys most tests use.
func teamKeys() []config.APIKey {
	return []config.APIKey{
		apiKey("analyst", keyAnalyst, config.ScopeAnalyze, config.ScopeGenerate),
		apiKey("reader", keyReader, config.ScopeDatasetsRead),
		apiKey("team-a", keyTeamA, config.ScopeDatasetsRead, config.ScopeDatasetsWrite, config.ScopeAnalyze, config.ScopeGenerate),
		apiKey("team-b", keyTeamB, config.ScopeDatasetsRead, config.ScopeDatasetsWrite, config.ScopeAnalyze, config.ScopeGenerate),
		apiKey("admin", keyAdmin, config.ScopeAdmin, config.ScopeDatasetsRead, config.ScopeDatasetsWrite, config.ScopeObserve),
		apiKey("observer", keyObserve, config.ScopeObserve),
	}
}

// as sends method path with body (JSON unless nil) and key as a Bearer
// token; "" sends no key.
func (n *nexus) as(t testing.TB, key, method, path string, body any) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return n.do(t, req)
}

// uploadAs uploads one small CSV as key and returns the dataset's id.
func (n *nexus) uploadAs(t testing.TB, key string) string {
	t.Helper()
	body, contentType := multipartBody(t, "", formPart{field: "file", filename: "sales.csv", content: salesCSV})
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/datasets", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+key)
	r := n.do(t, req)
	expectStatus(t, r, http.StatusCreated)
	return r.Body["id"].(string)
}

func expectCode(t testing.TB, r response, status int, code string) {
	t.Helper()
	expectStatus(t, r, status)
	if got := errorCode(r); got != code {
		t.Fatalf("error code = %q, want %q: %s", got, code, r.Raw)
	}
}

// Once keys exist, a route needs a key with its scope: 401 without one
// (with WWW-Authenticate), 403 naming the scope with the wrong one, and
// the right one passes, however it is presented.
func TestKeysShouldGateEveryRouteByScope(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withKeys(teamKeys()...))
	analyze := map[string]any{"query": "How many rows are there?"}

	// Given no key, or a key Nexus does not know
	for _, key := range []string{"", "nx-not-a-key"} {
		r := n.as(t, key, http.MethodPost, "/analyze", analyze)
		expectCode(t, r, http.StatusUnauthorized, "unauthorized")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without WWW-Authenticate: Bearer: %v", r.Header)
		}
	}
	// Given a key without the scope
	r := n.as(t, keyReader, http.MethodPost, "/analyze", analyze)
	expectCode(t, r, http.StatusForbidden, "forbidden")
	if msg := r.Body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "analyze") {
		t.Fatalf("403 does not name the scope: %s", msg)
	}
	expectCode(t, n.as(t, keyAnalyst, http.MethodGet, "/datasets", nil), http.StatusForbidden, "forbidden")
	expectCode(t, n.as(t, keyReader, http.MethodDelete, "/datasets/ds_0000000000000000", nil), http.StatusForbidden, "forbidden")

	// Then the right scope passes, as Bearer in any case or as X-API-Key
	expectStatus(t, n.as(t, keyAnalyst, http.MethodPost, "/analyze", analyze), http.StatusOK)
	expectStatus(t, n.as(t, keyAnalyst, http.MethodPost, "/generate", map[string]any{"prompt": "sum the sales"}), http.StatusOK)
	for _, h := range []struct{ name, value string }{{"Authorization", "bearer " + keyReader}, {"Authorization", "BEARER " + keyReader}, {"X-API-Key", keyReader}} {
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/datasets", nil)
		req.Header.Set(h.name, h.value)
		expectStatus(t, n.do(t, req), http.StatusOK)
	}

	// And probes stay open, while health and metrics need observe
	expectStatus(t, n.as(t, "", http.MethodGet, "/healthz", nil), http.StatusOK)
	expectStatus(t, n.as(t, "", http.MethodGet, "/readyz", nil), http.StatusOK)
	if resp, err := n.client.Get(n.URL + "/dashboard"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: %v %v", resp, err)
	} else {
		_, _ = drain(resp)
	}
	for _, path := range []string{"/api/health/status", "/metrics"} {
		expectCode(t, n.as(t, "", http.MethodGet, path, nil), http.StatusUnauthorized, "unauthorized")
		expectCode(t, n.as(t, keyAnalyst, http.MethodGet, path, nil), http.StatusForbidden, "forbidden")
		req, _ := http.NewRequest(http.MethodGet, n.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+keyObserve)
		resp, err := n.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = drain(resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s with observe: %d", path, resp.StatusCode)
		}
	}
}

// auth.open_observability leaves health and metrics open beside keys.
func TestOpenObservabilityShouldLeaveHealthAndMetricsOpen(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withKeys(teamKeys()...), func(o *startOpts) { o.cfg.Auth.OpenObservability = true })
	expectStatus(t, n.as(t, "", http.MethodGet, "/api/health/status", nil), http.StatusOK)
	_ = n.scrape(t)
	expectCode(t, n.as(t, "", http.MethodGet, "/datasets", nil), http.StatusUnauthorized, "unauthorized")
}

// An admin key works for the admin API beside NEXUS_ADMIN_TOKEN; another
// key is 403 there.
func TestAdminKeysShouldWorkBesideTheAdminToken(t *testing.T) {
	t.Parallel()
	const token = "admin-token-for-tests"
	n := startNexus(t, withKeys(teamKeys()...), func(o *startOpts) { o.env["NEXUS_ADMIN_TOKEN"] = token })
	events := "/api/circuits/" + config.CircuitDataAnalyst + "/events"
	expectStatus(t, n.as(t, keyAdmin, http.MethodGet, events, nil), http.StatusOK)
	expectStatus(t, n.as(t, token, http.MethodGet, events, nil), http.StatusOK)
	expectCode(t, n.as(t, keyTeamA, http.MethodGet, events, nil), http.StatusForbidden, "forbidden")
	expectCode(t, n.as(t, "", http.MethodGet, events, nil), http.StatusUnauthorized, "unauthorized")
	expectStatus(t, n.as(t, keyAdmin, http.MethodPost, "/api/circuits/"+config.CircuitDataAnalyst+"/reset", nil), http.StatusOK)

	// Without the token, admin keys alone open the admin API
	m := startNexus(t, withKeys(teamKeys()...))
	expectStatus(t, m.as(t, keyAdmin, http.MethodGet, events, nil), http.StatusOK)
	expectCode(t, m.as(t, "", http.MethodGet, events, nil), http.StatusUnauthorized, "unauthorized")
}

// Every dataset belongs to the key that created it: another key gets 404
// for it on every route, as if it did not exist, and does not list it;
// an admin key sees them all, with their owners.
func TestTenantsShouldNotSeeEachOthersDatasets(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withKeys(teamKeys()...))
	// Given a dataset of team A's and one of team B's
	idA := n.uploadAs(t, keyTeamA)
	idB := n.uploadAs(t, keyTeamB)

	// When team B reaches for team A's, every way there is
	tables, contentType := multipartBody(t, "", formPart{field: "file", filename: "more.csv", content: salesCSV})
	addReq, _ := http.NewRequest(http.MethodPost, n.URL+"/datasets/"+idA+"/tables", bytes.NewReader(tables))
	addReq.Header.Set("Content-Type", contentType)
	addReq.Header.Set("Authorization", "Bearer "+keyTeamB)
	for name, r := range map[string]response{
		"get":      n.as(t, keyTeamB, http.MethodGet, "/datasets/"+idA, nil),
		"rows":     n.as(t, keyTeamB, http.MethodGet, "/datasets/"+idA+"/rows", nil),
		"query":    n.as(t, keyTeamB, http.MethodPost, "/datasets/"+idA+"/query", map[string]any{"sql": "SELECT count(*) FROM data"}),
		"tables":   n.do(t, addReq),
		"delete":   n.as(t, keyTeamB, http.MethodDelete, "/datasets/"+idA, nil),
		"analyze":  n.as(t, keyTeamB, http.MethodPost, "/analyze", map[string]any{"query": "How many rows?", "dataset_id": idA}),
		"generate": n.as(t, keyTeamB, http.MethodPost, "/generate", map[string]any{"prompt": "sum sales", "dataset_id": idA}),
	} {
		// Then each is the 404 of a dataset that does not exist
		if r.Status != http.StatusNotFound || errorCode(r) != "dataset_not_found" {
			t.Errorf("%s: %d %s, want 404 dataset_not_found", name, r.Status, r.Raw)
		}
	}
	missing := n.as(t, keyTeamB, http.MethodGet, "/datasets/ds_0000000000000000", nil)
	if got := n.as(t, keyTeamB, http.MethodGet, "/datasets/"+idA, nil); got.Raw != missing.Raw {
		t.Errorf("another tenant's dataset answers %s, a missing one %s", got.Raw, missing.Raw)
	}
	// And B lists only its own
	if ids := datasetIDs(t, n.as(t, keyTeamB, http.MethodGet, "/datasets", nil)); strings.Join(ids, ",") != idB {
		t.Errorf("team B lists %v, want only %s", ids, idB)
	}
	// And A still has its dataset, and can read it
	expectStatus(t, n.as(t, keyTeamA, http.MethodGet, "/datasets/"+idA+"/rows", nil), http.StatusOK)
	r := n.as(t, keyTeamA, http.MethodPost, "/datasets/"+idA+"/query", map[string]any{"sql": "SELECT count(*) AS n FROM data"})
	expectStatus(t, r, http.StatusOK)

	// And the admin key sees both, with their owners, and may delete A's
	list := n.as(t, keyAdmin, http.MethodGet, "/datasets", nil)
	owners := map[string]any{}
	for _, d := range list.Body["datasets"].([]any) {
		m := d.(map[string]any)
		owners[m["id"].(string)] = m["owner"]
	}
	if owners[idA] != "team-a" || owners[idB] != "team-b" {
		t.Fatalf("admin sees owners %v", owners)
	}
	expectStatus(t, n.as(t, keyAdmin, http.MethodPost, "/datasets/"+idA+"/query", map[string]any{"sql": "SELECT 1 AS one"}), http.StatusOK)
	expectStatus(t, n.as(t, keyAdmin, http.MethodDelete, "/datasets/"+idA, nil), http.StatusNoContent)
	expectCode(t, n.as(t, keyTeamA, http.MethodGet, "/datasets/"+idA, nil), http.StatusNotFound, "dataset_not_found")
}

func datasetIDs(t testing.TB, r response) []string {
	t.Helper()
	expectStatus(t, r, http.StatusOK)
	var ids []string
	for _, d := range r.Body["datasets"].([]any) {
		ids = append(ids, d.(map[string]any)["id"].(string))
	}
	return ids
}

// A dataset created while the API was open belongs to nobody: once keys
// exist, only an admin key sees it.
func TestDatasetsFromBeforeKeysShouldBeTheAdminsOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := startNexus(t, func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dir })
	id := open.mustUpload(t, "sales.csv", []byte(salesCSV))
	if err := open.stop(); err != nil {
		t.Fatal(err)
	}
	n := startNexus(t, withKeys(teamKeys()...), func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dir })
	expectCode(t, n.as(t, keyTeamA, http.MethodGet, "/datasets/"+id, nil), http.StatusNotFound, "dataset_not_found")
	if ids := datasetIDs(t, n.as(t, keyTeamA, http.MethodGet, "/datasets", nil)); len(ids) != 0 {
		t.Fatalf("team A lists %v", ids)
	}
	expectStatus(t, n.as(t, keyAdmin, http.MethodGet, "/datasets/"+id, nil), http.StatusOK)
}

// auth.keys_file is watched: a key added there works without a restart;
// a broken file keeps the keys in force and reports the error; a key
// removed stops working.
func TestAHotReloadedKeysFileShouldTakeEffectWithoutARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.json")
	writeKeys := func(keys ...config.APIKey) {
		t.Helper()
		data, err := json.Marshal(keys)
		if err != nil {
			t.Fatal(err)
		}
		writeAtomically(t, keysPath, data)
	}
	observer := apiKey("observer", keyObserve, config.ScopeObserve)
	writeKeys(observer, apiKey("team-a", keyTeamA, config.ScopeDatasetsRead))
	n := startNexus(t, func(o *startOpts) { o.cfg.Auth.KeysFile = keysPath })
	expectStatus(t, n.as(t, keyTeamA, http.MethodGet, "/datasets", nil), http.StatusOK)
	expectCode(t, n.as(t, keyTeamB, http.MethodGet, "/datasets", nil), http.StatusUnauthorized, "unauthorized")
	// The config's status, read with the observer's key: polling with a
	// key not yet valid would count as guessing.
	status := func() (loadedAt, reloadError string) {
		cfg := n.as(t, keyObserve, http.MethodGet, "/api/health/status", nil).Body["config"].(map[string]any)
		loadedAt, _ = cfg["loaded_at"].(string)
		reloadError, _ = cfg["last_reload_error"].(string)
		return loadedAt, reloadError
	}
	reloaded := func(before string) {
		t.Helper()
		eventually(t, 10*time.Second, "the keys file to be reloaded", func() bool {
			at, _ := status()
			return at != before
		})
	}

	// When team B's key is added to the file
	before, _ := status()
	writeKeys(observer, apiKey("team-a", keyTeamA, config.ScopeDatasetsRead), apiKey("team-b", keyTeamB, config.ScopeDatasetsRead))
	reloaded(before)
	// Then it works, without a restart
	expectStatus(t, n.as(t, keyTeamB, http.MethodGet, "/datasets", nil), http.StatusOK)

	// When the file is broken, the keys in force stay and health says why
	writeAtomically(t, keysPath, []byte(`[{"name":"Team C!","sha256":"nope","scopes":["everything"]}]`))
	eventually(t, 10*time.Second, "the reload error in health", func() bool {
		_, msg := status()
		return strings.Contains(msg, "auth.keys_file[0].name")
	})
	expectStatus(t, n.as(t, keyTeamB, http.MethodGet, "/datasets", nil), http.StatusOK)

	// When team A's key is removed, it stops working
	before, _ = status()
	writeKeys(observer, apiKey("team-b", keyTeamB, config.ScopeDatasetsRead))
	reloaded(before)
	expectCode(t, n.as(t, keyTeamA, http.MethodGet, "/datasets", nil), http.StatusUnauthorized, "unauthorized")
	expectStatus(t, n.as(t, keyTeamB, http.MethodGet, "/datasets", nil), http.StatusOK)

	// When every key is removed, the reload is refused rather than opening
	// every route to anyone: the keys in force stay, and health says why
	writeKeys()
	eventually(t, 10*time.Second, "the refusal to remove every key in health", func() bool {
		_, msg := status()
		return strings.Contains(msg, "removes every API key")
	})
	expectCode(t, n.as(t, "", http.MethodGet, "/datasets", nil), http.StatusUnauthorized, "unauthorized")
	expectStatus(t, n.as(t, keyTeamB, http.MethodGet, "/datasets", nil), http.StatusOK)
}

// Invalid keys from one address are limited: past ten, the address gets
// 429 too_many_auth_failures with Retry-After, before its key is looked
// at.
func TestInvalidKeysShouldBeLimitedPerAddress(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withKeys(teamKeys()...))
	for i := range 10 {
		r := n.as(t, "nx-guess-"+string(rune('a'+i)), http.MethodGet, "/datasets", nil)
		expectCode(t, r, http.StatusUnauthorized, "unauthorized")
	}
	r := n.as(t, "nx-guess-k", http.MethodGet, "/datasets", nil)
	expectCode(t, r, http.StatusTooManyRequests, "too_many_auth_failures")
	if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q", ra)
	}
	// A valid key from that address waits too: a refused guess tells nothing
	expectCode(t, n.as(t, keyReader, http.MethodGet, "/datasets", nil), http.StatusTooManyRequests, "too_many_auth_failures")
	// Requests without a key are no guesses: they stay 401
	expectCode(t, n.as(t, "", http.MethodGet, "/datasets", nil), http.StatusUnauthorized, "unauthorized")
}

// Failed admin tokens and failed API keys from one address share one
// budget: five of each, and the eleventh attempt of either is refused.
func TestFailedTokensAndKeysShouldCountTogether(t *testing.T) {
	t.Parallel()
	n := startNexus(t, withKeys(teamKeys()...), withAdmin)
	for i := range 5 {
		expectCode(t, n.admin(t, http.MethodPost, "/api/config/reload", "wrong-token-"+string(rune('a'+i))), http.StatusUnauthorized, "unauthorized")
		expectCode(t, n.as(t, "nx-guess-"+string(rune('a'+i)), http.MethodGet, "/datasets", nil), http.StatusUnauthorized, "unauthorized")
	}
	expectCode(t, n.admin(t, http.MethodPost, "/api/config/reload", "wrong-token-z"), http.StatusTooManyRequests, "too_many_auth_failures")
	expectCode(t, n.as(t, "nx-guess-z", http.MethodGet, "/datasets", nil), http.StatusTooManyRequests, "too_many_auth_failures")
}

// With no key, Nexus listens on loopback only, says at start-up that the
// API is open, and refuses to start on any other address unless
// server.allow_open_api is set; the refusal names both settings.
func TestStartupShouldRefuseAnOpenAPIOffLoopback(t *testing.T) {
	t.Parallel()
	if def := config.Default().Server.Addr; def != "127.0.0.1:8080" {
		t.Fatalf("default server.addr = %q", def)
	}
	n := startNexus(t)
	if said := n.logs.lines("the API is open: no API key is configured (auth.keys, auth.keys_file), so anyone who can reach the address may call every route; rate limits count per client address"); len(said) != 1 || said[0]["level"] != "warn" {
		t.Fatalf("open-API warning = %v", said)
	}

	cfg := testConfig()
	cfg.LLM.BaseURL = "http://127.0.0.1:1/v1"
	path := writeConfig(t, cfg)
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"NEXUS_CONFIG": path, "NEXUS_ADDR": "0.0.0.0:0", "NEXUS_DATA_DIR": t.TempDir()}
	err := app.Run(ctx, nil, func(k string) string { return env[k] }, &logs, &logs, func(net.Addr) {
		t.Error("Nexus listened on 0.0.0.0 with an open API")
	}, nil)
	if err == nil || !strings.Contains(err.Error(), config.ErrOpenAPI.Error()) {
		t.Fatalf("Run = %v, want the open-API refusal", err)
	}
	for _, key := range []string{"auth.keys", "server.allow_open_api", "0.0.0.0:0"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("the refusal does not name %s: %v", key, err)
		}
	}
}
