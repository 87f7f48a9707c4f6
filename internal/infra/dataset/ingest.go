package dataset

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Create stores an upload as a new dataset. name is optional (else the
// file name is used); filename is only used for its extension and as a
// display name, never as a path. The upload is streamed to a temp file
// (at most Config.MaxUploadBytes, else KindTooLarge), loaded into a new
// DuckDB database, profiled, and moved into place atomically. On any
// failure, including a cancelled ctx (a client hanging up mid-upload),
// nothing is left behind and nothing is listed.
//
// Content that cannot be read as a table is KindInvalid; a read error from
// r (other than an *http.MaxBytesError, which is KindTooLarge) and ctx
// errors are returned wrapped as they are.
func (s *Store) Create(ctx context.Context, name, filename string, r io.Reader) (Dataset, error) {
	if err := s.checkOpen(ctx); err != nil {
		return Dataset{}, err
	}
	id, err := newID()
	if err != nil {
		return Dataset{}, err
	}
	clean := cleanFilename(filename)
	// Every temp name starts with tmp; on success the database and the
	// metadata have been renamed away from it, so this removes only what
	// is left over (the upload itself, or everything after a failure).
	tmp := filepath.Join(s.cfg.Dir, tmpPrefix+id)
	defer removeGlob(tmp + "*")

	upload := tmp + ".upload"
	size, head, err := s.spool(ctx, upload, r)
	if err != nil {
		return Dataset{}, err
	}
	format := detectFormat(clean, head)
	if format == "" {
		return Dataset{}, s.errorf(KindInvalid, "unknown format: upload a .csv, .tsv, .json, .ndjson, .parquet or .xlsx file")
	}
	rep, err := s.runJob(ctx, job{
		Op: opIngest, Src: upload, Format: format, DB: tmp + dbExt, TmpDir: tmp + ".xl",
		Limits: s.inputLimits(),
	}, s.cfg.IngestTimeout)
	if err != nil {
		return Dataset{}, err
	}
	tmpDB := tmp + dbExt
	meta := metadata{
		Version: metadataVersion,
		Dataset: Dataset{Format: format, Rows: rep.Profile.RowCount, Columns: rep.Columns},
		Profile: *rep.Profile,
	}
	meta.Dataset.ID = id
	meta.Dataset.Name = displayName(name, clean)
	meta.Dataset.SizeBytes = size
	meta.Dataset.CreatedAt = time.Now().UTC()
	metaBytes, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return Dataset{}, fmt.Errorf("dataset: encode metadata: %w", err)
	}
	// What callers see now is exactly what they will see after a restart.
	if meta, err = decodeMetadata(metaBytes); err != nil {
		return Dataset{}, fmt.Errorf("dataset: decode metadata: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Dataset{}, err
	}
	if err := s.commit(id, tmpDB, tmp+metaExt, metaBytes); err != nil {
		return Dataset{}, err
	}

	s.mu.Lock()
	if !s.closed {
		s.datasets[id] = s.newEntry(meta)
	}
	s.mu.Unlock()
	s.log.Info("dataset: created", "id", id, "format", format, "rows", meta.Dataset.Rows, "bytes", size)
	return meta.dataset(), nil
}

func (s *Store) checkOpen(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// spool streams r to path, enforcing the size limit while reading, and
// returns the size and the first bytes (for format sniffing).
func (s *Store) spool(ctx context.Context, path string, r io.Reader) (int64, []byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("dataset: create temp file: %w", err)
	}
	limit := s.cfg.MaxUploadBytes
	n, err := io.CopyBuffer(f, io.LimitReader(ctxReader{ctx: ctx, r: r}, limit+1), make([]byte, 1<<20))
	if cerr := f.Close(); err == nil && cerr != nil {
		return 0, nil, fmt.Errorf("dataset: write temp file: %w", cerr)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) || n > limit:
		return 0, nil, s.errorf(KindTooLarge, "the upload is larger than the limit of %d bytes", limit)
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case err != nil:
		return 0, nil, fmt.Errorf("dataset: read upload: %w", err)
	case n == 0:
		return 0, nil, s.errorf(KindInvalid, "the file is empty")
	}
	head, err := readHead(path, 4096)
	if err != nil {
		return 0, nil, fmt.Errorf("dataset: read temp file: %w", err)
	}
	return n, head, nil
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, n)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:k], nil
}

// ctxReader stops a copy as soon as ctx is done, so a cancelled upload
// does not keep writing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) inputLimits() inputLimits {
	return inputLimits{MaxJSONDepth: s.cfg.MaxJSONDepth, MaxColumns: s.cfg.MaxColumns, MaxBytes: s.cfg.MaxUploadBytes}
}

// commit moves a finished dataset into place: database first, metadata
// last (written to a temp file, synced, renamed), so a dataset exists only
// once its metadata does, and a crash in between leaves an orphan that
// Open removes.
func (s *Store) commit(id, tmpDB, tmpMeta string, metaBytes []byte) error {
	if err := syncFile(tmpDB); err != nil {
		return fmt.Errorf("dataset: sync database: %w", err)
	}
	if err := os.Rename(tmpDB, s.dbPath(id)); err != nil {
		return fmt.Errorf("dataset: move database: %w", err)
	}
	if err := writeSynced(tmpMeta, metaBytes); err != nil {
		_ = os.Remove(s.dbPath(id))
		return fmt.Errorf("dataset: write metadata: %w", err)
	}
	if err := os.Rename(tmpMeta, s.metaPath(id)); err != nil {
		_ = os.Remove(s.dbPath(id))
		return fmt.Errorf("dataset: move metadata: %w", err)
	}
	syncDir(s.cfg.Dir)
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// removeGlob removes every file or directory matching pattern.
func removeGlob(pattern string) {
	matches, _ := filepath.Glob(pattern)
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
}

// newID returns "ds_" and 16 random hex digits.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("dataset: random id: %w", err)
	}
	return "ds_" + hex.EncodeToString(b[:]), nil
}
