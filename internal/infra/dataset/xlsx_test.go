package dataset

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// workbook writes a workbook whose first sheet has the given cells (by
// name, e.g. "B2") and returns its path. It streams the rows, so that a
// cell a million rows down costs nothing to build.
func workbook(tb testing.TB, cells map[string]any) string {
	tb.Helper()
	rows := map[int][]any{}
	for name, v := range cells {
		c, r, err := excelize.CellNameToCoordinates(name)
		if err != nil {
			tb.Fatal(err)
		}
		if len(rows[r]) < c {
			rows[r] = append(rows[r], make([]any, c-len(rows[r]))...)
		}
		rows[r][c-1] = v
	}
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range slices.Sorted(maps.Keys(rows)) {
		if err := sw.SetRow("A"+strconv.Itoa(r), rows[r]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sw.Flush(); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "book.xlsx")
	if err := f.SaveAs(path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// grid returns rows × cols cells, each holding "v".
func grid(rows, cols int) map[string]any {
	cells := map[string]any{}
	for r := 1; r <= rows; r++ {
		for c := 1; c <= cols; c++ {
			name, _ := excelize.CoordinatesToCellName(c, r)
			cells[name] = "v"
		}
	}
	return cells
}

// bigText returns n cells in column A, each of size bytes of one letter.
func bigText(n, size int) map[string]any {
	cells := map[string]any{}
	for i := range n {
		cells["A"+strconv.Itoa(i+1)] = strings.Repeat(string(rune('a'+i%26)), size)
	}
	return cells
}

// roomy limits that the small workbooks below stay within.
var roomy = XLSXLimits{
	MaxInflatedBytes: 16 << 20,
	MaxOutputBytes:   16 << 20,
	MaxCells:         1 << 20,
	MaxCellBytes:     1 << 20,
	MaxColumns:       1 << 14,
}

func TestXLSXToCSVConvertsTheFirstSheet(t *testing.T) {
	t.Parallel()
	src := workbook(t, map[string]any{"A1": "a", "B1": "b", "A2": 1, "C3": "x"})
	dst := filepath.Join(t.TempDir(), "out.csv")
	if err := xlsxToCSV(context.Background(), src, dst, filepath.Join(t.TempDir(), "xl"), roomy); err != nil {
		t.Fatalf("xlsxToCSV: %v", err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a,b,column2\n1,,\n,,x\n"; string(got) != want {
		t.Fatalf("csv = %q, want %q", got, want)
	}
}

func TestXLSXToCSVRefusesPastALimit(t *testing.T) {
	t.Parallel()
	with := func(change func(*XLSXLimits)) XLSXLimits {
		l := roomy
		change(&l)
		return l
	}
	tests := []struct {
		name    string
		cells   map[string]any
		limits  XLSXLimits
		wantMsg string
	}{
		{
			// 2 MiB of text compresses to a few KiB. Excelize cuts a cell
			// at Excel's 32,767 characters, so the text is spread over
			// 64 cells.
			name:    "a workbook that inflates past the cap",
			cells:   bigText(64, 32_767),
			limits:  with(func(l *XLSXLimits) { l.MaxInflatedBytes = 1 << 20 }),
			wantMsg: "the workbook inflates past the limit of 1048576 bytes",
		},
		{
			name:    "a sparse sheet as wide as Excel allows",
			cells:   map[string]any{"A1": "a", "XFD1000000": "z"},
			limits:  with(func(l *XLSXLimits) { l.MaxColumns = 1024 }),
			wantMsg: "the sheet has at least 16384 columns; the limit is 1024",
		},
		{
			// Within the width cap, padding every row to the widest one
			// still writes far more than the workbook holds.
			name:    "a sparse sheet whose padded rows pass the output cap",
			cells:   map[string]any{"A1": "a", "A2": "b", "A3": "c", "XFD4": "z"},
			limits:  with(func(l *XLSXLimits) { l.MaxOutputBytes = 32 << 10 }),
			wantMsg: "the sheet converts to more than the limit of 32768 bytes of CSV",
		},
		{
			name:    "more cells than the cap",
			cells:   grid(200, 10),
			limits:  with(func(l *XLSXLimits) { l.MaxCells = 1000 }),
			wantMsg: "the sheet has more than the limit of 1000 cells (rows × columns)",
		},
		{
			name:    "a cell larger than the cap",
			cells:   map[string]any{"A1": "a", "A2": strings.Repeat("y", 5000)},
			limits:  with(func(l *XLSXLimits) { l.MaxCellBytes = 4096 }),
			wantMsg: "a cell holds 5000 bytes; the limit is 4096",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := workbook(t, tc.cells)
			dir := t.TempDir()
			dst := filepath.Join(dir, "out.csv")
			err := xlsxToCSV(context.Background(), src, dst, filepath.Join(dir, "xl"), tc.limits)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("xlsxToCSV = %v, want *Error", err)
			}
			if e.Kind != KindTooComplex || e.Message != tc.wantMsg {
				t.Fatalf("error = %s %q, want %s %q", e.Kind, e.Message, KindTooComplex, tc.wantMsg)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("dst after failure: %v, want it gone", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "xl")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("tmpDir after failure: %v, want it gone", err)
			}
		})
	}
}

func TestXLSXToCSVRejectsLimitsThatAreNotSet(t *testing.T) {
	t.Parallel()
	src := workbook(t, map[string]any{"A1": "a"})
	dst := filepath.Join(t.TempDir(), "out.csv")
	err := xlsxToCSV(context.Background(), src, dst, filepath.Join(t.TempDir(), "xl"), XLSXLimits{})
	var e *Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("xlsxToCSV with zero limits = %v, want a plain error", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dst: %v, want none", err)
	}
}
