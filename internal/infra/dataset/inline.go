package dataset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// OpenInline loads content sent with a request (not stored) into a
// temporary table named data and returns a sandboxed Session on it;
// closing the Session removes it. format is "csv" (delimiter and header
// are detected, so TSV works too) or "json" (an array of objects, or
// newline-delimited objects). Content over Config.MaxUploadBytes is
// KindTooLarge; empty or unreadable content is KindInvalid. The load runs
// in a worker under Config.StatementTimeout, with the same input bounds
// as an upload; more than Config.MaxInlineLoads at once is KindBusy.
func (s *Store) OpenInline(ctx context.Context, format, content string) (*Session, error) {
	if err := s.checkOpen(ctx); err != nil {
		return nil, err
	}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case FormatCSV, FormatTSV:
		format = FormatCSV
	case FormatJSON, FormatNDJSON:
		format = FormatNDJSON // read_json's auto format takes both shapes
		if firstJSONByte([]byte(content[:min(len(content), 4096)])) == '[' {
			format = FormatJSON
		}
	default:
		return nil, s.errorf(KindInvalid, "unknown inline format %q: use csv or json", format)
	}
	if int64(len(content)) > s.cfg.MaxUploadBytes {
		return nil, s.errorf(KindTooLarge, "the data is larger than the limit of %d bytes", s.cfg.MaxUploadBytes)
	}
	if strings.TrimSpace(content) == "" {
		return nil, s.errorf(KindInvalid, "the data is empty")
	}
	select {
	case s.inline <- struct{}{}:
		defer func() { <-s.inline }()
	default:
		return nil, s.errorf(KindBusy, "too many inline loads are in progress (datasets.max_inline_loads is %d); try again shortly", cap(s.inline))
	}

	// DuckDB reads files, so the content goes through a temp file in Dir
	// (removed at once, and by Open if the process dies first).
	f, err := os.CreateTemp(s.cfg.Dir, tmpPrefix+"inline-*")
	if err != nil {
		return nil, fmt.Errorf("dataset: create temp file: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dataset: write temp file: %w", err)
	}
	db := path + dbExt
	rep, err := s.runJob(ctx, job{Op: opIngest, Sources: []source{{Table: DataAlias, Src: path, Format: format, TmpDir: path + ".xl"}},
		DB: db, Limits: s.inputLimits()}, s.cfg.StatementTimeout)
	if err == nil && (len(rep.Tables) != 1 || rep.Tables[0].Profile == nil) {
		err = fmt.Errorf("dataset: the worker loaded %d tables of 1", len(rep.Tables))
	}
	if err != nil {
		return nil, errors.Join(err, removeDBFiles(db))
	}
	lt := rep.Tables[0]
	t := Table{Name: DataAlias, Format: format, Rows: lt.Profile.RowCount, Columns: lt.Columns, SizeBytes: int64(len(content)), Profile: *lt.Profile}
	return s.newSession(db, []Table{t}, nil), nil
}
