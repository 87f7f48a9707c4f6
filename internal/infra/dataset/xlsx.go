package dataset

import (
	"archive/zip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"
)

// Default XLSX limits for the Store; the multiples of MaxUploadBytes are
// applied in (*Store).xlsxToCSV.
const (
	// xlsxInflateFactor times the upload limit caps both the inflated
	// workbook and the CSV written from it.
	xlsxInflateFactor = 4
	// defaultXLSXMaxCells caps rows × columns: ten million cells is far
	// past any sheet a person analyses and well inside DuckDB's memory.
	defaultXLSXMaxCells = 10_000_000
	// defaultXLSXMaxCellBytes is Excel's own limit of 32,767 characters
	// per cell, at up to four UTF-8 bytes each.
	defaultXLSXMaxCellBytes = 4 * 32_767
	// defaultXLSXMaxColumns matches the default of datasets.max_columns.
	defaultXLSXMaxColumns = 1024
)

// XLSXLimits bound what converting a workbook to CSV may cost, in memory,
// disk and time, however small the upload. Every field must be positive.
type XLSXLimits struct {
	// MaxInflatedBytes caps the total uncompressed size of the workbook's
	// parts, checked from the zip directory before anything is inflated
	// (excelize enforces it again while reading). The Store uses 4 ×
	// Config.MaxUploadBytes.
	MaxInflatedBytes int64
	// MaxOutputBytes caps the CSV written, counted while writing. The
	// Store uses 4 × Config.MaxUploadBytes.
	MaxOutputBytes int64
	// MaxCells caps rows × columns of the table written, where columns is
	// the widest row (every row is padded to it).
	MaxCells int64
	// MaxCellBytes caps the text of one cell.
	MaxCellBytes int
	// MaxColumns caps the width of the sheet: the widest row, counted up
	// to its last cell, blank cells before it included.
	MaxColumns int
}

func (l XLSXLimits) valid() bool {
	return l.MaxInflatedBytes > 0 && l.MaxOutputBytes > 0 && l.MaxCells > 0 && l.MaxCellBytes > 0 && l.MaxColumns > 0
}

// xlsxToCSV renders the first sheet of the workbook src as CSV in dst (a
// new file) for DuckDB's reader, which then detects the column types: the
// first row is the header (blank names become column<N>), rows are padded
// to the widest row, and rows with no value at all are skipped. Excelize
// spills large parts to tmpDir, which it creates and removes.
//
// Every limit in lim is checked before or while the sheet is read, and the
// width, cell count and cell sizes before anything is written. Content
// that cannot be converted, a limit included, is a KindInvalid *Error
// whose message names the limit and holds no path; a ctx error is
// returned as it is. On any error dst does not exist afterwards.
func xlsxToCSV(ctx context.Context, src, dst, tmpDir string, lim XLSXLimits) (err error) {
	if !lim.valid() {
		return fmt.Errorf("dataset: invalid xlsx limits %+v", lim)
	}
	sc := newScrubber(filepath.Dir(src), filepath.Dir(dst), tmpDir)
	if err := checkInflatedSize(src, lim.MaxInflatedBytes, sc); err != nil {
		return err
	}
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		return fmt.Errorf("dataset: create temp dir: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	f, err := excelize.OpenFile(src, excelize.Options{
		UnzipSizeLimit: lim.MaxInflatedBytes,
		// Parts up to this size are held in memory, larger ones are
		// spilled to TmpDir; raising it to MaxInflatedBytes would hold the
		// whole inflated workbook in memory, so keep excelize's default
		// (which must not exceed UnzipSizeLimit).
		UnzipXMLSizeLimit: min(lim.MaxInflatedBytes, excelize.StreamChunkSize),
		TmpDir:            tmpDir,
	})
	if err != nil {
		return xlsxErrorf(sc, "not a readable xlsx workbook: %v", err)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return xlsxErrorf(sc, "the workbook has no sheets")
	}
	sheet := sheets[0]

	// First pass: the width of the widest row, so that cells right of the
	// header still get a column, and every limit that can be checked
	// without writing.
	width, rowsSeen := 0, int64(0)
	if err := eachRow(ctx, f, sheet, func(cells []string) error {
		if len(cells) > lim.MaxColumns {
			return xlsxLimitf(sc, "the sheet has at least %d columns; the limit is %d", len(cells), lim.MaxColumns)
		}
		for _, c := range cells {
			if len(c) > lim.MaxCellBytes {
				return xlsxLimitf(sc, "a cell holds %d bytes; the limit is %d", len(c), lim.MaxCellBytes)
			}
		}
		width = max(width, len(cells))
		rowsSeen++
		if rowsSeen*int64(width) > lim.MaxCells {
			return xlsxLimitf(sc, "the sheet has more than the limit of %d cells (rows × columns)", lim.MaxCells)
		}
		return nil
	}); err != nil {
		return sheetError(ctx, sc, err)
	}
	if width == 0 || rowsSeen == 0 {
		return xlsxErrorf(sc, "the first sheet (%q) is empty", sheet)
	}

	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dataset: create temp file: %w", err)
	}
	defer func() {
		// dst is ours (O_EXCL): a failed conversion leaves none of it.
		if err != nil {
			os.Remove(dst)
		}
	}()
	w := csv.NewWriter(&cappedWriter{w: out, left: lim.MaxOutputBytes})
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
	if errors.Is(err, errOutputCap) {
		return xlsxLimitf(sc, "the sheet converts to more than the limit of %d bytes of CSV", lim.MaxOutputBytes)
	}
	if err != nil {
		return sheetError(ctx, sc, err)
	}
	return nil
}

// checkInflatedSize refuses a workbook whose parts add up to more than
// limit bytes, from the zip directory alone. archive/zip fails a part that
// inflates to more than its recorded size, so the sizes cannot lie.
func checkInflatedSize(src string, limit int64, sc scrubber) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return xlsxErrorf(sc, "not a readable xlsx workbook: %v", err)
	}
	defer zr.Close()
	var total uint64
	for _, f := range zr.File {
		total += f.UncompressedSize64
		if total > uint64(limit) {
			return xlsxLimitf(sc, "the workbook inflates past the limit of %d bytes", limit)
		}
	}
	return nil
}

// inflatedSize is the workbook's total uncompressed size, from its zip
// directory (xlsxToCSV has checked it against the limit already).
func inflatedSize(src string) (int64, error) {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	var total uint64
	for _, f := range zr.File {
		total += f.UncompressedSize64
	}
	return int64(min(total, uint64(1)<<62)), nil
}

// errOutputCap is returned by a cappedWriter past its cap.
var errOutputCap = errors.New("output cap reached")

// cappedWriter passes writes to w until left bytes are used up, and then
// fails with errOutputCap.
type cappedWriter struct {
	w    io.Writer
	left int64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, errOutputCap
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	return n, err
}

// xlsxLimitf builds a scrubbed KindTooComplex *Error: a cap was hit.
func xlsxLimitf(sc scrubber, format string, args ...any) *Error {
	return &Error{Kind: KindTooComplex, Message: strings.TrimSpace(sc.scrub(fmt.Sprintf(format, args...)))}
}

// xlsxErrorf builds a scrubbed KindInvalid *Error.
func xlsxErrorf(sc scrubber, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Message: strings.TrimSpace(sc.scrub(fmt.Sprintf(format, args...)))}
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

// sheetError keeps ctx errors and *Error as they are and reports anything
// else as an unreadable sheet.
func sheetError(ctx context.Context, sc scrubber, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return xlsxErrorf(sc, "could not read the first sheet: %v", err)
}
