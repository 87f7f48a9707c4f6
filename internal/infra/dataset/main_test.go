package dataset_test

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/xuri/excelize/v2"
	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestMain(m *testing.M) {
	// Store workers are this test binary, started with dataset.WorkerArg.
	dataset.RunIfWorker()
	goleak.VerifyTestMain(m)
}

// mustOpen opens a Store in a fresh directory (or cfg.Dir when set) and
// closes it when the test ends.
func mustOpen(tb testing.TB, cfg dataset.Config) *dataset.Store {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(tb.TempDir(), "data")
	}
	s, err := dataset.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// mustCreate uploads content as filename.
func mustCreate(tb testing.TB, s *dataset.Store, filename string, content []byte) dataset.Dataset {
	tb.Helper()
	ds, err := s.Create(context.Background(), "", filename, bytes.NewReader(content))
	if err != nil {
		tb.Fatalf("Create(%q): %v", filename, err)
	}
	return ds
}

// mustSession opens a Session that is closed when the test ends.
func mustSession(tb testing.TB, s *dataset.Store, id string) *dataset.Session {
	tb.Helper()
	q, err := s.Session(context.Background(), id)
	if err != nil {
		tb.Fatalf("Session(%s): %v", id, err)
	}
	tb.Cleanup(func() { _ = q.Close() })
	return q
}

// mustInline opens an inline Session that is closed when the test ends.
func mustInline(tb testing.TB, s *dataset.Store, format, content string) *dataset.Session {
	tb.Helper()
	q, err := s.OpenInline(context.Background(), format, content)
	if err != nil {
		tb.Fatalf("OpenInline(%s): %v", format, err)
	}
	tb.Cleanup(func() { _ = q.Close() })
	return q
}

// mustQuery runs SQL that must succeed.
func mustQuery(tb testing.TB, q *dataset.Session, sqlText string) dataset.Result {
	tb.Helper()
	res, err := q.Query(context.Background(), sqlText)
	if err != nil {
		tb.Fatalf("Query(%q): %v", sqlText, err)
	}
	return res
}

// mustCount returns SELECT count(*) FROM data.
func mustCount(tb testing.TB, q *dataset.Session) int64 {
	tb.Helper()
	res := mustQuery(tb, q, "SELECT count(*) AS n FROM data")
	n, ok := res.Rows[0][0].(int64)
	if !ok {
		tb.Fatalf("count: got %T %v", res.Rows[0][0], res.Rows[0][0])
	}
	return n
}

// kindOf returns the Kind of a *dataset.Error, or "".
func kindOf(err error) dataset.Kind {
	var e *dataset.Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// requireKind fails unless err is a *dataset.Error of kind want.
func requireKind(tb testing.TB, err error, want dataset.Kind) *dataset.Error {
	tb.Helper()
	var e *dataset.Error
	if !errors.As(err, &e) {
		tb.Fatalf("got error %v (%T), want *dataset.Error of kind %s", err, err, want)
	}
	if e.Kind != want {
		tb.Fatalf("got kind %s (%q), want %s", e.Kind, e.Message, want)
	}
	return e
}

// dirNames lists the names in dir, sorted.
func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatalf("ReadDir: %v", err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	slices.Sort(names)
	return names
}

// requireEmptyDir fails if dir holds anything.
func requireEmptyDir(tb testing.TB, dir string) {
	tb.Helper()
	if names := dirNames(tb, dir); len(names) != 0 {
		tb.Fatalf("data dir not empty: %v", names)
	}
}

// memDB opens a throwaway in-memory DuckDB with full access, for making
// fixtures such as Parquet files.
func memDB(tb testing.TB) *sql.DB {
	tb.Helper()
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		tb.Fatalf("duckdb: %v", err)
	}
	db := sql.OpenDB(c)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// parquetFixture writes the result of a SELECT to a Parquet file and
// returns its bytes.
func parquetFixture(tb testing.TB, selectSQL string) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "fixture.parquet")
	if _, err := memDB(tb).Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet)", selectSQL, path)); err != nil {
		tb.Fatalf("COPY TO parquet: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// xlsxFixture builds a workbook whose first sheet holds rows.
func xlsxFixture(tb testing.TB, rows [][]any) []byte {
	tb.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, row := range rows {
		cell, err := excelize.CoordinatesToCellName(1, i+1)
		if err != nil {
			tb.Fatal(err)
		}
		if err := f.SetSheetRow("Sheet1", cell, &row); err != nil {
			tb.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// zipFixture is a valid zip that is not a workbook.
func zipFixture(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	f, err := w.Create("hello.txt")
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.WriteString(f, "not a spreadsheet")
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// conflictCSV has 60,000 rows whose column val is numeric except at row
// 50,000, far past DuckDB's type-sniffing sample.
func conflictCSV() []byte {
	var b strings.Builder
	b.WriteString("id,val,name\n")
	for i := range 60_000 {
		if i == 50_000 {
			b.WriteString("50000,not a number,x\n")
			continue
		}
		fmt.Fprintf(&b, "%d,%d,n%d\n", i, i*2, i%100)
	}
	return []byte(b.String())
}

// seqCSV has a single BIGINT column n with values 1..rows.
func seqCSV(rows int) []byte {
	var b strings.Builder
	b.WriteString("n\n")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return []byte(b.String())
}
