package dataset_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// wideTextXLSX is a workbook of rows cells of 200 bytes each.
func wideTextXLSX(t *testing.T, rows int) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	_ = sw.SetRow("A1", []any{"v"})
	cell := strings.Repeat("a", 200)
	for i := 2; i <= rows; i++ {
		_ = sw.SetRow(fmt.Sprintf("A%d", i), []any{cell})
	}
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The XLSX caps (4 × the upload limit, unpacked and as CSV) hold for a
// whole upload, not for each of its files: ten workbooks that each fit
// but together unpack to about 6 MB are refused under a 256 KiB limit,
// and no dataset is created.
func TestXLSXBudgetShouldHoldAcrossTheFilesOfOneUpload(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	s := mustOpen(t, dataset.Config{MaxUploadBytes: limit})
	x := wideTextXLSX(t, 3000) // ~600 KB of text; compressed far under the limit
	u, err := s.NewUpload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for i := 0; i < 10; i++ {
		if err := u.Add(context.Background(), fmt.Sprintf("f%d.xlsx", i), bytes.NewReader(x)); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if ds, err := u.Commit(context.Background(), ""); err == nil {
		t.Fatalf("committed %d tables, %d rows: the workbooks together are past the budget", ds.TableCount, ds.Rows)
	}
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("after a failed upload: %d datasets, %v", len(list), err)
	}
}
