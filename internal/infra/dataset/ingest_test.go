package dataset_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestCreateLoadsEachFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		filename   string
		content    func(testing.TB) []byte
		wantFormat string
		wantRows   int64
		wantCols   []dataset.Column
	}{
		{
			name:       "csv with comma",
			filename:   "scores.csv",
			content:    func(testing.TB) []byte { return []byte("id,name,score\n1,a,1.5\n2,b,2.5\n3,c,\n") },
			wantFormat: "csv",
			wantRows:   3,
			wantCols:   []dataset.Column{{Name: "id", Type: "BIGINT"}, {Name: "name", Type: "VARCHAR"}, {Name: "score", Type: "DOUBLE"}},
		},
		{
			name:       "tsv",
			filename:   "t.tsv",
			content:    func(testing.TB) []byte { return []byte("a\tb\n1\tx,y\n2\tz\n") },
			wantFormat: "tsv",
			wantRows:   2,
			wantCols:   []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "VARCHAR"}},
		},
		{
			name:       "csv with semicolons",
			filename:   "semi.csv",
			content:    func(testing.TB) []byte { return []byte("a;b;c\n1;2;x\n3;4;y\n5;6;z\n") },
			wantFormat: "csv",
			wantRows:   3,
			wantCols:   []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "BIGINT"}, {Name: "c", Type: "VARCHAR"}},
		},
		{
			name:       "csv without header",
			filename:   "nohdr.csv",
			content:    func(testing.TB) []byte { return []byte("1,2,3\n4,5,6\n") },
			wantFormat: "csv",
			wantRows:   2,
			wantCols:   []dataset.Column{{Name: "column0", Type: "BIGINT"}, {Name: "column1", Type: "BIGINT"}, {Name: "column2", Type: "BIGINT"}},
		},
		{
			name:       "csv with a type conflict at row 50000",
			filename:   "conflict.csv",
			content:    func(testing.TB) []byte { return conflictCSV() },
			wantFormat: "csv",
			wantRows:   60_000,
			wantCols:   []dataset.Column{{Name: "id", Type: "BIGINT"}, {Name: "val", Type: "VARCHAR"}, {Name: "name", Type: "VARCHAR"}},
		},
		{
			name:       "json array",
			filename:   "a.json",
			content:    func(testing.TB) []byte { return []byte(`[{"a":1,"b":"x"},{"a":2,"b":null},{"a":3,"b":"z"}]`) },
			wantFormat: "json",
			wantRows:   3,
			wantCols:   []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "b", Type: "VARCHAR"}},
		},
		{
			name:       "ndjson",
			filename:   "a.ndjson",
			content:    func(testing.TB) []byte { return []byte("{\"a\":1}\n{\"a\":2,\"c\":true}\n") },
			wantFormat: "ndjson",
			wantRows:   2,
			wantCols:   []dataset.Column{{Name: "a", Type: "BIGINT"}, {Name: "c", Type: "BOOLEAN"}},
		},
		{
			name:       "ndjson named .json",
			filename:   "lines.json",
			content:    func(testing.TB) []byte { return []byte("{\"a\":1}\n{\"a\":2}\n") },
			wantFormat: "ndjson",
			wantRows:   2,
			wantCols:   []dataset.Column{{Name: "a", Type: "BIGINT"}},
		},
		{
			name:     "parquet",
			filename: "p.parquet",
			content: func(tb testing.TB) []byte {
				return parquetFixture(tb, "SELECT range::INTEGER AS id, (range * 1.5)::DECIMAL(10,2) AS amount, DATE '2024-01-01' + range::INTEGER AS day, range % 2 = 0 AS even, [range, range + 1] AS pair FROM range(5)")
			},
			wantFormat: "parquet",
			wantRows:   5,
			wantCols: []dataset.Column{
				{Name: "id", Type: "INTEGER"}, {Name: "amount", Type: "DECIMAL(10,2)"}, {Name: "day", Type: "DATE"},
				{Name: "even", Type: "BOOLEAN"}, {Name: "pair", Type: "BIGINT[]"},
			},
		},
		{
			name:     "parquet sniffed without extension",
			filename: "upload",
			content: func(tb testing.TB) []byte {
				return parquetFixture(tb, "SELECT 'x' AS s")
			},
			wantFormat: "parquet",
			wantRows:   1,
			wantCols:   []dataset.Column{{Name: "s", Type: "VARCHAR"}},
		},
		{
			name:       "json sniffed from unknown extension",
			filename:   "data.txt",
			content:    func(testing.TB) []byte { return []byte("  [{\"a\": 1.5}]") },
			wantFormat: "json",
			wantRows:   1,
			wantCols:   []dataset.Column{{Name: "a", Type: "DOUBLE"}},
		},
		{
			name:     "xlsx",
			filename: "book.xlsx",
			content: func(tb testing.TB) []byte {
				return xlsxFixture(tb, [][]any{
					{"id", "name", "amount"},
					{1, "alice", 10.5},
					{2, "bob", 20},
					{3, "carol", nil},
				})
			},
			wantFormat: "xlsx",
			wantRows:   3,
			wantCols:   []dataset.Column{{Name: "id", Type: "BIGINT"}, {Name: "name", Type: "VARCHAR"}, {Name: "amount", Type: "DOUBLE"}},
		},
		{
			name:     "xlsx sniffed, blank header and ragged rows",
			filename: "export",
			content: func(tb testing.TB) []byte {
				return xlsxFixture(tb, [][]any{
					{"k", nil},
					{"a", 1, "extra"},
					{},
					{"b", 2},
				})
			},
			wantFormat: "xlsx",
			wantRows:   2,
			wantCols:   []dataset.Column{{Name: "k", Type: "VARCHAR"}, {Name: "column1", Type: "BIGINT"}, {Name: "column2", Type: "VARCHAR"}},
		},
	}
	s := mustOpen(t, dataset.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			content := tt.content(t)
			ds := mustCreate(t, s, tt.filename, content)
			if ds.Format != tt.wantFormat {
				t.Errorf("format: got %q, want %q", ds.Format, tt.wantFormat)
			}
			if ds.Rows != tt.wantRows {
				t.Errorf("rows: got %d, want %d", ds.Rows, tt.wantRows)
			}
			if !reflect.DeepEqual(ds.Columns, tt.wantCols) {
				t.Errorf("columns: got %v, want %v", ds.Columns, tt.wantCols)
			}
			if ds.SizeBytes != int64(len(content)) {
				t.Errorf("size: got %d, want %d", ds.SizeBytes, len(content))
			}
			q := mustSession(t, s, ds.ID)
			if n := mustCount(t, q); n != tt.wantRows {
				t.Errorf("count(*): got %d, want %d", n, tt.wantRows)
			}
			prof, err := s.Profile(context.Background(), ds.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(prof); err != nil {
				t.Errorf("profile is not JSON-encodable: %v", err)
			}
			if prof.RowCount != tt.wantRows || len(prof.Columns) != len(tt.wantCols) {
				t.Errorf("profile: got %d rows, %d columns", prof.RowCount, len(prof.Columns))
			}
		})
	}
}

func TestCreateRejectsInvalidContent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		filename string
		content  func(testing.TB) []byte
		wantMsg  string
	}{
		{name: "empty file", filename: "empty.csv", content: func(testing.TB) []byte { return nil }, wantMsg: "empty"},
		{name: "binary garbage as csv", filename: "g.csv", content: func(testing.TB) []byte { return []byte("\x00\x01\x02\xff\xfe garbage \x00\n\x00") }, wantMsg: "could not read"},
		{name: "unknown format", filename: "blob.bin", content: func(testing.TB) []byte { return []byte("\x7fELF\x02\x01\x01") }, wantMsg: "unknown format"},
		{name: "truncated json", filename: "b.json", content: func(testing.TB) []byte { return []byte(`[{"a":1},{"a":`) }, wantMsg: "ends early"},
		{name: "array missing its end", filename: "c.json", content: func(testing.TB) []byte { return []byte(`[{"a":1},`) }, wantMsg: "ends early"},
		{name: "empty json array", filename: "e.json", content: func(testing.TB) []byte { return []byte(`[]`) }, wantMsg: "no records"},
		{name: "text named parquet", filename: "x.parquet", content: func(testing.TB) []byte { return []byte("a,b\n1,2\n") }, wantMsg: "could not read"},
		{name: "text named xlsx", filename: "x.xlsx", content: func(testing.TB) []byte { return []byte("a,b\n1,2\n") }, wantMsg: "xlsx"},
		{name: "zip that is no workbook", filename: "x.xlsx", content: zipFixture, wantMsg: "xlsx"},
		{name: "empty workbook", filename: "x.xlsx", content: func(tb testing.TB) []byte { return xlsxFixture(tb, nil) }, wantMsg: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			s := mustOpen(t, dataset.Config{Dir: dir})
			_, err := s.Create(context.Background(), "", tt.filename, bytes.NewReader(tt.content(t)))
			e := requireKind(t, err, dataset.KindInvalid)
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", e.Message, tt.wantMsg)
			}
			if strings.Contains(e.Message, dir) || strings.Contains(e.Message, os.TempDir()+"/") {
				t.Errorf("message reveals a server path: %q", e.Message)
			}
			requireEmptyDir(t, dir)
			if list, _ := s.List(context.Background()); len(list) != 0 {
				t.Errorf("listed after failure: %v", list)
			}
		})
	}
}

func TestCreateEnforcesSizeLimitWhileStreaming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{name: "at the limit", size: 1024},
		{name: "one byte over", size: 1025, wantErr: true},
		{name: "far over", size: 1 << 20, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			s := mustOpen(t, dataset.Config{Dir: dir, MaxUploadBytes: 1024})
			content := "n\n" + strings.Repeat("7\n", (tt.size-2)/2)
			content += strings.Repeat("\n", tt.size-len(content))
			src := &countingReader{r: strings.NewReader(content)}
			_, err := s.Create(context.Background(), "", "big.csv", src)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				return
			}
			requireKind(t, err, dataset.KindTooLarge)
			requireEmptyDir(t, dir)
			if src.n > 1024+64<<10 {
				t.Errorf("read %d bytes: the limit was not enforced while streaming", src.n)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestCreateMapsMaxBytesErrorToTooLarge(t *testing.T) {
	t.Parallel()
	// The API layer may wrap the body in http.MaxBytesReader.
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	body := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader("a\n"+strings.Repeat("1\n", 100))), 50)
	_, err := s.Create(context.Background(), "", "x.csv", body)
	requireKind(t, err, dataset.KindTooLarge)
	requireEmptyDir(t, dir)
}

func TestCreateSanitisesFilenames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		given    string
		filename string
		wantName string
	}{
		{name: "parent traversal", filename: "../../etc/passwd.csv", wantName: "passwd"},
		{name: "windows path", filename: `C:\x\y.csv`, wantName: "y"},
		{name: "control characters", filename: "a\x00b\nc\x1b.csv", wantName: "abc"},
		{name: "hidden file", filename: "/.secret.csv", wantName: "secret"},
		{name: "odd characters", filename: "re*port?<1>.csv", wantName: "re_port__1_"},
		{name: "nothing left", filename: "../.csv", wantName: "dataset"},
		{name: "given name wins", given: "  Sales\t2024 ", filename: "../x.csv", wantName: "Sales2024"},
	}
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := s.Create(context.Background(), tt.given, tt.filename, strings.NewReader("a\n1\n"))
			if err != nil {
				t.Fatal(err)
			}
			if ds.Name != tt.wantName {
				t.Errorf("name: got %q, want %q", ds.Name, tt.wantName)
			}
			if ds.Format != "csv" {
				t.Errorf("format: got %q", ds.Format)
			}
		})
	}
	// Nothing was written outside the data dir, and inside it only the
	// Store's own names.
	if names := dirNames(t, root); !reflect.DeepEqual(names, []string{"data"}) {
		t.Errorf("files next to the data dir: %v", names)
	}
	for _, name := range dirNames(t, dir) {
		if !strings.HasPrefix(name, "ds_") {
			t.Errorf("unexpected file in data dir: %q", name)
		}
	}
}

func TestDatasetsSurviveRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s1, err := dataset.Open(dataset.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, s1, "a.csv", profileCSV)
	b := mustCreate(t, s1, "b.json", []byte(`[{"x": 1}, {"x": 2}]`))
	c := mustCreate(t, s1, "c.csv", []byte("gone\n1\n"))
	if err := s1.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	list1, _ := s1.List(ctx)
	prof1, _ := s1.Profile(ctx, a.ID)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// Leftovers of a crash: an interrupted upload, a database whose
	// metadata was never written. A dataset whose metadata is corrupt
	// (skipped, but kept for a person to look at), and a file not ours.
	for name, content := range map[string]string{
		".tmp-dataset-ds_00000000000000ff.upload": "x",
		"ds_00000000000000aa.duckdb":              "x",
		"ds_00000000000000aa.duckdb.wal":          "x",
		"ds_00000000000000bb.duckdb":              "x",
		"ds_00000000000000bb.json":                "{",
		"notes.txt":                               "x",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".tmp-dataset-ds_00000000000000ff.xl"), 0o700); err != nil {
		t.Fatal(err)
	}

	s2 := mustOpen(t, dataset.Config{Dir: dir})
	list2, err := s2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list1, list2) {
		t.Errorf("list after restart:\n got %+v\nwant %+v", list2, list1)
	}
	if len(list2) != 2 || list2[0].ID != a.ID || list2[1].ID != b.ID {
		t.Errorf("want [a b] in creation order, got %+v", list2)
	}
	prof2, err := s2.Profile(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(prof1, prof2) {
		t.Errorf("profile after restart:\n got %+v\nwant %+v", prof2, prof1)
	}
	if _, err := s2.Get(ctx, c.ID); !errors.Is(err, dataset.ErrNotFound) {
		t.Errorf("deleted dataset came back: %v", err)
	}
	if n := mustCount(t, mustSession(t, s2, b.ID)); n != 2 {
		t.Errorf("count after restart: %d", n)
	}
	want := []string{a.ID + ".duckdb", a.ID + ".json", b.ID + ".duckdb", b.ID + ".json",
		"ds_00000000000000bb.duckdb", "ds_00000000000000bb.json", "notes.txt"}
	if names := dirNames(t, dir); !reflect.DeepEqual(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("data dir after restart:\n got %v\nwant %v", names, slices.Sorted(slices.Values(want)))
	}
}

// failingReader serves n bytes of a valid CSV, then fails.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range k {
		p[i] = "1234567\n"[i%8]
	}
	f.n -= k
	return k, nil
}

// cancellingReader serves data and cancels ctx after n bytes, like a
// client hanging up mid-upload.
type cancellingReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p[:min(len(p), 4096)])
	c.n -= k
	if c.n <= 0 {
		c.cancel()
	}
	return k, err
}

func TestCreateLeavesNothingBehindOnFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	tests := []struct {
		name   string
		create func(*dataset.Store) error
		check  func(*testing.T, error)
	}{
		{
			name: "reader fails mid-stream",
			create: func(s *dataset.Store) error {
				_, err := s.Create(context.Background(), "", "x.csv", &failingReader{n: 100_000, err: boom})
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, boom) {
					t.Errorf("got %v, want the reader's error", err)
				}
			},
		},
		{
			name: "client hangs up mid-upload",
			create: func(s *dataset.Store) error {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r := &cancellingReader{r: bytes.NewReader(conflictCSV()), n: 50_000, cancel: cancel}
				_, err := s.Create(ctx, "", "x.csv", r)
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("got %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "client hangs up during the load",
			create: func(s *dataset.Store) error {
				// The whole body arrives, then the context ends while
				// DuckDB is loading it.
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				content := conflictCSV()
				r := &cancellingReader{r: bytes.NewReader(content), n: len(content), cancel: func() {
					time.AfterFunc(20*time.Millisecond, cancel)
				}}
				_, err := s.Create(ctx, "", "x.csv", r)
				return err
			},
			check: func(t *testing.T, err error) {
				// It may also have finished first on a fast machine.
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("got %v, want nil or context.Canceled", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			s := mustOpen(t, dataset.Config{Dir: dir})
			err := tt.create(s)
			tt.check(t, err)
			list, _ := s.List(context.Background())
			if err != nil {
				if len(list) != 0 {
					t.Errorf("listed after failure: %v", list)
				}
				requireEmptyDir(t, dir)
			}
		})
	}
}

func TestDeleteRemovesDataset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds := mustCreate(t, s, "a.csv", []byte("a\n1\n"))
	mustCount(t, mustSession(t, s, ds.ID)) // opens the cached handle

	if err := s.Delete(ctx, ds.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for name, err := range map[string]error{
		"Get":     func() error { _, err := s.Get(ctx, ds.ID); return err }(),
		"Profile": func() error { _, err := s.Profile(ctx, ds.ID); return err }(),
		"Session": func() error { _, err := s.Session(ctx, ds.ID); return err }(),
		"Delete":  s.Delete(ctx, ds.ID),
	} {
		if !errors.Is(err, dataset.ErrNotFound) {
			t.Errorf("%s after Delete: got %v, want ErrNotFound", name, err)
		}
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Errorf("listed after Delete: %v", list)
	}
}

func TestDeleteWhileQueryRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds := mustCreate(t, s, "a.csv", seqCSV(1000))
	q, err := s.Session(ctx, ds.ID)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := q.Query(ctx, "SELECT sum(a.n * b.range) FROM data a, range(20000) b")
		done <- err
	}()
	<-started
	if err := s.Delete(ctx, ds.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("query on a dataset deleted meanwhile: %v", err)
	}
	if _, err := q.Query(ctx, "SELECT count(*) FROM data"); err != nil {
		t.Errorf("open session after Delete: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Session.Close: %v", err)
	}
	requireEmptyDir(t, dir)
}
