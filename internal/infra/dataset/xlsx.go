package dataset

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"
)

// xlsxToCSV renders the first sheet of a workbook as CSV for DuckDB's
// reader, which then detects the column types: the first row is the
// header (blank names become column<N>), rows are padded to the widest
// row, and rows with no value at all are skipped. Excelize spills large
// sheets to tmpDir, which is removed afterwards.
func (s *Store) xlsxToCSV(ctx context.Context, src, dst, tmpDir string) error {
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		return fmt.Errorf("dataset: create temp dir: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	f, err := excelize.OpenFile(src, excelize.Options{
		// A zip bomb stops here instead of filling the disk.
		UnzipSizeLimit: 16 * s.cfg.MaxUploadBytes,
		TmpDir:         tmpDir,
	})
	if err != nil {
		return s.errorf(KindInvalid, "not a readable xlsx workbook: %v", err)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return s.errorf(KindInvalid, "the workbook has no sheets")
	}
	sheet := sheets[0]

	// First pass: the width of the widest row, so that cells right of the
	// header still get a column.
	width, rowsSeen := 0, 0
	if err := eachRow(ctx, f, sheet, func(cells []string) error {
		width = max(width, len(cells))
		rowsSeen++
		return nil
	}); err != nil {
		return s.sheetError(ctx, err)
	}
	if width == 0 || rowsSeen == 0 {
		return s.errorf(KindInvalid, "the first sheet (%q) is empty", sheet)
	}

	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dataset: create temp file: %w", err)
	}
	w := csv.NewWriter(out)
	header := true
	err = eachRow(ctx, f, sheet, func(cells []string) error {
		row := make([]string, width)
		copy(row, cells)
		if header {
			for i, name := range row {
				if strings.TrimSpace(name) == "" {
					row[i] = "column" + strconv.Itoa(i)
				}
			}
			header = false
		}
		return w.Write(row)
	})
	w.Flush()
	if err == nil {
		err = w.Error()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.sheetError(ctx, err)
	}
	return nil
}

// eachRow calls fn for every row of the sheet that has a value.
func eachRow(ctx context.Context, f *excelize.File, sheet string, fn func([]string) error) error {
	rows, err := f.Rows(sheet)
	if err != nil {
		return err
	}
	defer rows.Close()
	for n := 0; rows.Next(); n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		cells, err := rows.Columns()
		if err != nil {
			return err
		}
		if blank(cells) {
			continue
		}
		if err := fn(cells); err != nil {
			return err
		}
	}
	return rows.Error()
}

func blank(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

func (s *Store) sheetError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return s.errorf(KindInvalid, "could not read the first sheet: %v", err)
}
