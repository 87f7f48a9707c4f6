package e2e

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/xuri/excelize/v2"

	"github.com/nexus/nexus/test/fakellm"
)

// upload posts content as a multipart file (and an optional name).
func (n *nexus) upload(t testing.TB, filename string, content []byte, name string) response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if name != "" {
		_ = w.WriteField("name", name)
	}
	fw, err := w.CreateFormFile("file", filename)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(content)
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/datasets", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return n.do(t, req)
}

func (n *nexus) mustUpload(t testing.TB, filename string, content []byte) string {
	t.Helper()
	r := n.upload(t, filename, content, "")
	if r.Status != http.StatusCreated {
		t.Fatalf("upload %s: %d %s", filename, r.Status, r.Raw)
	}
	return r.Body["id"].(string)
}

const salesCSV = "region,product,sales,day\nNorth,apples,120,2026-01-01\nSouth,apples,80,2026-01-02\nNorth,pears,40,2026-01-03\nEast,pears,60,2026-01-04\n"

// parquetOf writes salesCSV as Parquet with DuckDB itself.
func parquetOf(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "in.csv")
	pqPath := filepath.Join(dir, "out.parquet")
	if err := os.WriteFile(csvPath, []byte(salesCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("COPY (SELECT * FROM read_csv('%s')) TO '%s' (FORMAT parquet)", csvPath, pqPath)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pqPath)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func xlsxOf(t *testing.T) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	rows := [][]any{{"region", "product", "sales", "day"}, {"North", "apples", 120, "2026-01-01"}, {"South", "apples", 80, "2026-01-02"},
		{"North", "pears", 40, "2026-01-03"}, {"East", "pears", 60, "2026-01-04"}}
	for i, row := range rows {
		if err := f.SetSheetRow("Sheet1", fmt.Sprintf("A%d", i+1), &row); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Every format uploads to a dataset with its rows and columns, and the
// dataset can be listed, read with its profile, and deleted.
func TestDatasetsShouldStoreEveryFormat(t *testing.T) {
	t.Parallel()
	n := startNexus(t)
	ndjson := `{"region":"North","product":"apples","sales":120,"day":"2026-01-01"}
{"region":"South","product":"apples","sales":80,"day":"2026-01-02"}
{"region":"North","product":"pears","sales":40,"day":"2026-01-03"}
{"region":"East","product":"pears","sales":60,"day":"2026-01-04"}
`
	jsonArr := "[" + strings.Join(strings.Split(strings.TrimSpace(ndjson), "\n"), ",") + "]"
	cases := []struct {
		name, filename, format string
		content                []byte
	}{
		{"csv", "sales.csv", "csv", []byte(salesCSV)},
		{"tsv", "sales.tsv", "tsv", []byte(strings.ReplaceAll(salesCSV, ",", "\t"))},
		{"semicolon csv", "sales_semi.csv", "csv", []byte(strings.ReplaceAll(salesCSV, ",", ";"))},
		{"json", "sales.json", "json", []byte(jsonArr)},
		{"ndjson", "sales.ndjson", "ndjson", []byte(ndjson)},
		{"parquet", "sales.parquet", "parquet", parquetOf(t)},
		{"xlsx", "sales.xlsx", "xlsx", xlsxOf(t)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := n.upload(t, tc.filename, tc.content, "")
			expectStatus(t, r, http.StatusCreated)
			if r.Body["format"] != tc.format || r.Body["rows"] != 4.0 || len(r.Body["columns"].([]any)) != 4 || r.Body["size_bytes"] != float64(len(tc.content)) {
				t.Fatalf("created: %s", r.Raw)
			}
			if r.Body["created_at"] == nil || !strings.HasPrefix(r.Body["id"].(string), "ds_") {
				t.Fatalf("created: %s", r.Raw)
			}
		})
	}
	list := n.get(t, "/datasets")
	expectStatus(t, list, http.StatusOK)
	all := list.Body["datasets"].([]any)
	if len(all) != len(cases) {
		t.Fatalf("list has %d datasets, want %d", len(all), len(cases))
	}
	if _, has := all[0].(map[string]any)["profile"]; has {
		t.Fatal("the list must not carry profiles")
	}
	id := all[0].(map[string]any)["id"].(string)
	one := n.get(t, "/datasets/"+id)
	expectStatus(t, one, http.StatusOK)
	p := one.Body["profile"].(map[string]any)
	if p["row_count"] != 4.0 {
		t.Fatalf("profile: %v", p)
	}
	for _, c := range p["columns"].([]any) {
		col := c.(map[string]any)
		switch col["name"] {
		case "sales":
			if col["min"] != 40.0 || col["max"] != 120.0 || col["mean"] != 75.0 || col["nulls"] != 0.0 || col["distinct"] != 4.0 {
				t.Fatalf("sales profile: %v", col)
			}
		case "region":
			tops := col["top_values"].([]any)
			if len(tops) == 0 || tops[0].(map[string]any)["value"] != "North" || tops[0].(map[string]any)["count"] != 2.0 {
				t.Fatalf("region top values: %v", col)
			}
		}
	}
	del := n.admin(t, http.MethodDelete, "/datasets/"+id, "")
	expectStatus(t, del, http.StatusNoContent)
	r := n.get(t, "/datasets/"+id)
	expectStatus(t, r, http.StatusNotFound)
	if errorCode(r) != "dataset_not_found" {
		t.Fatalf("404 body: %s", r.Raw)
	}
	expectStatus(t, n.admin(t, http.MethodDelete, "/datasets/"+id, ""), http.StatusNotFound)
}

// Bad uploads get a clear error and change nothing.
func TestDatasetUploadShouldRejectBadInput(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	n := startNexus(t, func(o *startOpts) {
		o.cfg.Datasets.MaxUploadBytes = 1000
		o.env["NEXUS_DATA_DIR"] = dataDir
	})
	cases := []struct {
		name     string
		filename string
		content  []byte
		status   int
		code     string
	}{
		{"empty422", "empty.csv", nil, 422, "invalid_dataset"},
		{"garbage422", "garbage.parquet", []byte("PAR1 this is not parquet at all"), 422, "invalid_dataset"},
		{"unknownFormat422", "blob.bin", []byte{0x00, 0x01, 0x02, 0x03}, 422, "invalid_dataset"},
		{"badJSON422", "x.json", []byte(`[{"a":1},`), 422, "invalid_dataset"},
		{"tooLarge413", "big.csv", []byte("a,b\n" + strings.Repeat("1,2\n", 400)), 413, "payload_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := n.upload(t, tc.filename, tc.content, "")
			expectStatus(t, r, tc.status)
			if errorCode(r) != tc.code || r.Body["error"].(map[string]any)["message"] == "" {
				t.Fatalf("body: %s", r.Raw)
			}
			if strings.Contains(r.Raw, dataDir) {
				t.Fatalf("error leaks the data directory: %s", r.Raw)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/datasets", strings.NewReader(salesCSV))
	req.Header.Set("Content-Type", "text/csv")
	expectStatus(t, n.do(t, req), http.StatusUnsupportedMediaType)

	// A filename with a path is sanitised, never used as a path.
	r := n.upload(t, "../../etc/evil.csv", []byte(salesCSV), "")
	expectStatus(t, r, http.StatusCreated)
	if r.Body["name"] != "evil" {
		t.Fatalf("name = %v", r.Body["name"])
	}
	if _, err := os.Stat(filepath.Join(dataDir, "..", "..", "etc", "evil.csv")); err == nil {
		t.Fatal("the upload was written outside the data directory")
	}
	if got := len(n.get(t, "/datasets").Body["datasets"].([]any)); got != 1 {
		t.Fatalf("datasets after bad uploads = %d, want 1", got)
	}
	assertNoTempFiles(t, dataDir)
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("leftover file %s", e.Name())
		}
	}
}

// Datasets survive a restart on the same data directory.
func TestDatasetsShouldSurviveARestart(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	// One worker, so the handle count below is that worker's.
	withDir := func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dataDir; o.cfg.Datasets.Workers = 1 }
	first := startNexus(t, withDir)
	id := first.mustUpload(t, "sales.csv", []byte(salesCSV))
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	second := startNexus(t, withDir)
	r := second.get(t, "/datasets/"+id)
	expectStatus(t, r, http.StatusOK)
	if r.Body["rows"] != 4.0 || r.Body["profile"].(map[string]any)["row_count"] != 4.0 {
		t.Fatalf("after restart: %s", r.Raw)
	}
	// Handles open lazily: none until the first query.
	expectMetric(t, second.scrape(t), "nexus_datasets", nil, 1)
	expectMetric(t, second.scrape(t), "nexus_dataset_open_handles", nil, 0)
	second.LLM.EnqueueFor(codegenModel, fakellm.Reply("```sql\nSELECT sum(sales) AS total FROM data\n```"))
	a := second.post(t, "/analyze", map[string]any{"query": "total sales?", "dataset_id": id})
	expectStatus(t, a, http.StatusOK)
	if a.Body["row_count"] != 1.0 || a.Body["rows"].([]any)[0].([]any)[0] != 300.0 {
		t.Fatalf("analyze after restart: %s", a.Raw)
	}
	expectMetric(t, second.scrape(t), "nexus_dataset_open_handles", nil, 1)
}

// An upload killed mid-body leaves no partial dataset behind.
func TestKilledUploadShouldLeaveNothing(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	n := startNexus(t, func(o *startOpts) { o.env["NEXUS_DATA_DIR"] = dataDir })
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	boundary := "xyzBOUNDARYxyz"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\n"
	fmt.Fprintf(conn, "POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s", boundary, 10<<20, head)
	chunk := strings.Repeat("1,2\n", 16<<10)
	for i := 0; i < 8; i++ {
		if _, err := io.WriteString(conn, chunk); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server is spooling the upload, then kill it.
	eventually(t, 5*time.Second, "spooling started", func() bool {
		entries, _ := os.ReadDir(dataDir)
		return len(entries) > 0
	})
	conn.Close()
	eventually(t, 5*time.Second, "temp files removed", func() bool {
		entries, _ := os.ReadDir(dataDir)
		for _, e := range entries {
			if strings.Contains(e.Name(), "tmp") {
				return false
			}
		}
		return true
	})
	if got := len(n.get(t, "/datasets").Body["datasets"].([]any)); got != 0 {
		t.Fatalf("a killed upload left %d datasets", got)
	}
}

// formPart is one part of a hand-built multipart body.
type formPart struct {
	field, filename, content string
}

// multipartBody writes preamble, then parts, as a multipart/form-data
// body, and returns it with its Content-Type.
func multipartBody(t testing.TB, preamble string, parts ...formPart) ([]byte, string) {
	t.Helper()
	var body bytes.Buffer
	body.WriteString(preamble)
	w := multipart.NewWriter(&body)
	for _, p := range parts {
		var (
			pw  io.Writer
			err error
		)
		if p.filename != "" {
			pw, err = w.CreateFormFile(p.field, p.filename)
		} else {
			pw, err = w.CreateFormField(p.field)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(pw, p.content)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return body.Bytes(), w.FormDataContentType()
}

// unsized hides a reader's length, so that the client sends the body
// chunked, with no Content-Length for the server to check up front.
type unsized struct{ r io.Reader }

func (u unsized) Read(p []byte) (int, error) { return u.r.Read(p) }

// The upload limit counts the whole request body, so that junk before the
// file is neither read whole nor stored; parts other than name and file
// are refused by name.
func TestDatasetUploadShouldBoundTheWholeBody(t *testing.T) {
	t.Parallel()
	n := startNexus(t, func(o *startOpts) { o.cfg.Datasets.MaxUploadBytes = 100_000 })
	// 300 KB in short lines: multipart skips a preamble line by line.
	junk := strings.Repeat(strings.Repeat("j", 99)+"\n", 3000)
	file := formPart{field: "file", filename: "sales.csv", content: salesCSV}
	const tooLargeMsg = "the request body is larger than the limit of 165536 bytes (the upload limit of 100000 bytes plus 65536 for the form)"
	cases := []struct {
		name     string
		preamble string
		parts    []formPart
		chunked  bool
		status   int
		code     string
		field    string
		message  string
	}{
		{name: "junkPartBeforeFile413", parts: []formPart{{field: "junk", content: junk}, file},
			status: 413, code: "payload_too_large", field: "file", message: tooLargeMsg},
		{name: "chunkedJunkPreambleBeforeFile413", preamble: junk, parts: []formPart{file}, chunked: true,
			status: 413, code: "payload_too_large", field: "file", message: tooLargeMsg},
		{name: "unknownPart400", parts: []formPart{{field: "comment", content: "hi"}, file},
			status: 400, code: "invalid_request", field: "comment",
			message: `unexpected form part "comment": only name and file are accepted`},
		{name: "nameAndFile201", parts: []formPart{{field: "name", content: "Q1 sales"}, file}, status: 201},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, contentType := multipartBody(t, tc.preamble, tc.parts...)
			var r io.Reader = bytes.NewReader(body)
			if tc.chunked {
				r = unsized{r}
			}
			req, err := http.NewRequest(http.MethodPost, n.URL+"/datasets", r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", contentType)
			resp := n.do(t, req)
			expectStatus(t, resp, tc.status)
			if tc.status == http.StatusCreated {
				if resp.Body["name"] != "Q1 sales" || resp.Body["rows"] != 4.0 {
					t.Fatalf("created: %s", resp.Raw)
				}
				return
			}
			e := resp.Body["error"].(map[string]any)
			if e["code"] != tc.code || e["field"] != tc.field || e["message"] != tc.message {
				t.Fatalf("error = %v, want code %q field %q message %q", e, tc.code, tc.field, tc.message)
			}
		})
	}
	list := n.get(t, "/datasets").Body["datasets"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "Q1 sales" {
		t.Fatalf("datasets after the uploads = %v, want only Q1 sales", list)
	}
}
