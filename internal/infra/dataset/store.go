package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dataset describes a stored dataset: one or more tables in one DuckDB
// database. It changes only when tables are added (AddTables); each
// change is a new, immutable snapshot.
type Dataset struct {
	// ID is random and URL-safe ("ds_" + 16 hex digits).
	ID string `json:"id"`
	// Name is the name given at upload, else the sanitised name of the
	// first file without its extension. It is for display only, never a
	// path.
	Name string `json:"name"`
	// Format is how the upload was parsed: csv, tsv, json, ndjson, parquet
	// or xlsx; "mixed" for tables of different formats.
	Format string `json:"format"`
	// Rows and Columns are the only table's for a dataset of one table;
	// for several, Rows is their total and Columns is empty (see Tables).
	Rows    int64    `json:"rows"`
	Columns []Column `json:"columns"`
	// SizeBytes is the size of the uploaded files, not of the database.
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
	// TableCount is how many tables the dataset holds.
	TableCount int `json:"table_count"`
	// Owner names the API key that created the dataset (WithOwner); empty
	// for a dataset created while the API was open, or stored before
	// datasets had owners. The store only records it: who may see a
	// dataset is the API's decision.
	Owner string `json:"owner,omitempty"`
	// Tables are the dataset's tables in the order they were added. List
	// leaves them out; Get, Create and AddTables fill them in.
	Tables []Table `json:"tables,omitempty"`
}

// Table is one table of a dataset.
type Table struct {
	// Name is what SQL calls the table (see TableName).
	Name string `json:"name"`
	// File is the cleaned name of the file it was loaded from; empty for
	// datasets stored before datasets held several tables.
	File    string   `json:"file,omitempty"`
	Format  string   `json:"format"`
	Rows    int64    `json:"rows"`
	Columns []Column `json:"columns"`
	// SizeBytes is the size of the uploaded file.
	SizeBytes int64 `json:"size_bytes"`
	// Profile is computed once, when the table is loaded.
	Profile Profile `json:"profile"`
}

// Column is one column of a table or result. Type is DuckDB's type name
// (BIGINT, VARCHAR, DECIMAL(10,2), INTEGER[], ...), which is what an LLM
// writing SQL against the table needs to see.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// metadata is the on-disk record of a dataset, written last and
// atomically.
//
// Version 1 (one table named data, its profile at the top level) is still
// read; version 2 keeps every table with its profile in Dataset.Tables
// and names the database file by its generation.
type metadata struct {
	Version int     `json:"version"`
	Dataset Dataset `json:"dataset"`
	// Profile is version 1's profile of table data; decodeMetadata moves
	// it into Dataset.Tables.
	Profile *Profile `json:"profile,omitempty"`
	// Generation numbers the database file: 0 is ds_<id>.duckdb, n is
	// ds_<id>.g<n>.duckdb. AddTables writes the next generation beside the
	// current one and switches the metadata to it.
	Generation int `json:"generation"`
}

const metadataVersion = 2

// cloneTables deep-copies tables, so that a caller that edits a slice
// cannot race with other callers or change what the Store holds.
func cloneTables(ts []Table) []Table {
	if ts == nil {
		return nil
	}
	out := make([]Table, len(ts))
	for i, t := range ts {
		t.Columns = slices.Clone(t.Columns)
		t.Profile = cloneProfile(t.Profile)
		out[i] = t
	}
	return out
}

func cloneProfile(p Profile) Profile {
	p.Columns = slices.Clone(p.Columns)
	for i := range p.Columns {
		p.Columns[i].TopValues = slices.Clone(p.Columns[i].TopValues)
	}
	return p
}

// dataset returns a copy of the dataset with its tables.
func (m metadata) dataset() Dataset {
	d := m.Dataset
	d.Columns = slices.Clone(d.Columns)
	d.Tables = cloneTables(d.Tables)
	return d
}

// profile returns the only table's profile, or an empty one (no rows, no
// columns) for a dataset of several tables.
func (m metadata) profile() Profile {
	if len(m.Dataset.Tables) == 1 {
		return cloneProfile(m.Dataset.Tables[0].Profile)
	}
	return Profile{Columns: []ColumnProfile{}}
}

// summarize fills a dataset's top-level fields from its tables.
func summarize(d *Dataset) {
	d.TableCount = len(d.Tables)
	d.Rows, d.SizeBytes, d.Format = 0, 0, ""
	d.Columns = []Column{}
	for i, t := range d.Tables {
		d.Rows += t.Rows
		d.SizeBytes += t.SizeBytes
		switch {
		case i == 0:
			d.Format = t.Format
		case d.Format != t.Format:
			d.Format = "mixed"
		}
	}
	if len(d.Tables) == 1 {
		d.Columns = slices.Clone(d.Tables[0].Columns)
	}
}

// Names in Dir. Only these are ever created, read or removed.
const (
	tmpPrefix = ".tmp-dataset-"
	dbExt     = ".duckdb"
	metaExt   = ".json"
)

var idPattern = regexp.MustCompile(`^ds_[0-9a-f]{16}$`)

// dbNamePattern matches a database file of any generation, and what
// DuckDB keeps beside it: ds_<id>.duckdb, ds_<id>.g3.duckdb.wal, ...
var dbNamePattern = regexp.MustCompile(`^(ds_[0-9a-f]{16})(?:\.g([1-9][0-9]{0,8}))?\.duckdb(?:\.wal|\.tmp)?$`)

// Store owns the datasets in one directory. It is safe for concurrent use.
// Close it to release every DuckDB handle.
type Store struct {
	cfg   Config
	log   *slog.Logger
	scrub scrubber
	// dataDirs are the spellings of Dir scrubbed from result values.
	dataDirs []string
	// pool runs every DuckDB job in worker processes; the server process
	// itself never opens a database.
	pool *pool
	// inline bounds the inline loads in flight (Config.MaxInlineLoads).
	inline chan struct{}

	mu       sync.Mutex
	closed   bool
	datasets map[string]*entry
}

// entry is one stored dataset.
type entry struct {
	// adding holds a token while AddTables works on the dataset, so that
	// two additions never build on the same generation.
	adding chan struct{}

	// guarded by Store.mu
	cur     *generation
	deleted bool
}

// generation is one immutable snapshot of a dataset: its metadata and the
// database file that holds exactly its tables. A Session pins the
// generation it opened, so all its queries see the same tables even while
// AddTables switches the dataset to a new generation. refs counts open
// Sessions; a retired generation's file (replaced or deleted) is removed
// when the last one ends.
type generation struct {
	meta metadata
	path string

	// guarded by Store.mu
	refs    int
	retired bool
}

// Open opens (creating if needed) the store in cfg.Dir, loads the datasets
// found there, and removes leftovers of interrupted uploads: temp files,
// databases without metadata, and generations the metadata no longer
// names. Corrupt metadata is logged and skipped, so one bad file does not
// stop the service.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: data dir: %w", err)
	}
	if strings.ContainsAny(abs, "?#%") {
		// duckdb-go reads a file path and its options as one URL: a '#'
		// would silently drop the sandbox options, a '%' or '?' breaks it.
		return nil, fmt.Errorf("dataset: data dir %q: DuckDB cannot use a path containing '?', '#' or '%%'", abs)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("dataset: create data dir: %w", err)
	}
	cfg.Dir = abs
	s := &Store{
		cfg:      cfg,
		log:      log,
		scrub:    newScrubber(cfg.Dir),
		dataDirs: dirSpellings(cfg.Dir),
		inline:   make(chan struct{}, cfg.MaxInlineLoads),
		datasets: map[string]*entry{},
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	cmd := cfg.WorkerCommand
	if len(cmd) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("dataset: find own executable for workers: %w", err)
		}
		cmd = []string{exe, WorkerArg}
	}
	pool, err := newPool(cfg.Workers, cmd, workerEnv(cfg.Dir), cfg.WorkerMemoryMB, log)
	if err != nil {
		return nil, err
	}
	s.pool = pool
	return s, nil
}

// workerEnv is a worker's whole environment, built from nothing so that
// no secret (the LLM key, the admin token) or other variable of the
// server reaches it. HOME and TMPDIR point into the private data dir.
func workerEnv(dir string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8"}
}

// load reads Dir: metadata first, then removes temp files and orphans.
func (s *Store) load() error {
	des, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("dataset: read data dir: %w", err)
	}
	// hasMeta: a metadata file exists (readable or not); gens: the
	// generation readable metadata names.
	hasMeta := map[string]bool{}
	gens := map[string]int{}
	for _, de := range des {
		name := de.Name()
		id, ok := strings.CutSuffix(name, metaExt)
		if !ok || !idPattern.MatchString(id) || de.IsDir() {
			continue
		}
		hasMeta[id] = true
		meta, err := readMetadata(filepath.Join(s.cfg.Dir, name))
		if err == nil && meta.Dataset.ID != id {
			err = fmt.Errorf("metadata id %q does not match file name", meta.Dataset.ID)
		}
		if err == nil {
			_, err = os.Stat(s.dbPath(id, meta.Generation))
		}
		if err != nil {
			s.log.Warn("dataset: skipping unreadable dataset", "id", id, "err", err)
			continue
		}
		gens[id] = meta.Generation
		s.datasets[id] = s.newEntry(meta)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.cfg.Dir, name)
		if strings.HasPrefix(name, tmpPrefix) {
			s.log.Info("dataset: removing leftover of an interrupted upload", "file", name)
			_ = os.RemoveAll(path)
			continue
		}
		id, gen, ok := parseDBName(name)
		if !ok || !hasMeta[id] {
			if ok {
				// A database (or its .wal / spill dir) whose metadata was
				// never written, or whose Delete was interrupted.
				s.log.Info("dataset: removing database without metadata", "file", name)
				_ = os.RemoveAll(path)
			}
			continue
		}
		if cur, readable := gens[id]; readable && cur != gen {
			// A generation replaced by AddTables, or one whose metadata
			// was never switched to it. One with unreadable metadata is
			// kept for a person to look at.
			s.log.Info("dataset: removing a database generation the metadata does not name", "file", name)
			_ = os.RemoveAll(path)
		}
	}
	return nil
}

// parseDBName returns the id and generation of a database file name
// ("ds_x.duckdb", "ds_x.g2.duckdb", "ds_x.duckdb.wal", "ds_x.duckdb.tmp").
func parseDBName(name string) (id string, gen int, ok bool) {
	m := dbNamePattern.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	if m[2] != "" {
		gen, _ = strconv.Atoi(m[2])
	}
	return m[1], gen, true
}

func readMetadata(path string) (metadata, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return metadata{}, err
	}
	return decodeMetadata(b)
}

// decodeMetadata is also used right after writing, so a dataset looks the
// same before and after a restart (numbers as json.Number, exact).
// Version 1 metadata becomes a dataset of one table named data.
func decodeMetadata(b []byte) (metadata, error) {
	var m metadata
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return metadata{}, err
	}
	switch m.Version {
	case 1:
		prof := Profile{}
		if m.Profile != nil {
			prof = *m.Profile
		}
		d := &m.Dataset
		d.Tables = []Table{{Name: DataAlias, Format: d.Format, Rows: d.Rows, Columns: d.Columns, SizeBytes: d.SizeBytes, Profile: prof}}
		m.Version, m.Profile, m.Generation = metadataVersion, nil, 0
	case metadataVersion:
	default:
		return metadata{}, fmt.Errorf("unsupported metadata version %d", m.Version)
	}
	if m.Generation < 0 {
		return metadata{}, fmt.Errorf("bad generation %d", m.Generation)
	}
	if len(m.Dataset.Tables) == 0 {
		return metadata{}, errors.New("the dataset has no tables")
	}
	for i := range m.Dataset.Tables {
		t := &m.Dataset.Tables[i]
		if t.Columns == nil {
			t.Columns = []Column{}
		}
		if t.Profile.Columns == nil {
			t.Profile.Columns = []ColumnProfile{}
		}
		for k := range t.Profile.Columns {
			if t.Profile.Columns[k].TopValues == nil {
				t.Profile.Columns[k].TopValues = []TopValue{}
			}
		}
	}
	summarize(&m.Dataset)
	return m, nil
}

// encodeMetadata returns m's bytes and m as a reader of those bytes will
// see it.
func encodeMetadata(m metadata) ([]byte, metadata, error) {
	m.Version = metadataVersion
	summarize(&m.Dataset)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, metadata{}, fmt.Errorf("dataset: encode metadata: %w", err)
	}
	// What callers see now is exactly what they will see after a restart.
	back, err := decodeMetadata(b)
	if err != nil {
		return nil, metadata{}, fmt.Errorf("dataset: decode metadata: %w", err)
	}
	return b, back, nil
}

// dbPath is the database file of a dataset's generation.
func (s *Store) dbPath(id string, gen int) string {
	if gen == 0 {
		return filepath.Join(s.cfg.Dir, id+dbExt)
	}
	return filepath.Join(s.cfg.Dir, id+".g"+strconv.Itoa(gen)+dbExt)
}

func (s *Store) metaPath(id string) string { return filepath.Join(s.cfg.Dir, id+metaExt) }

// Close stops the worker processes; a job still running fails. Files of
// deleted datasets still in use are removed when their Sessions close.
// Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.pool.close()
	return nil
}

// Stats is a snapshot of the Store's size, for metrics.
type Stats struct {
	// Datasets is how many datasets are stored.
	Datasets int
	// OpenHandles is how many read-only DuckDB handles the workers keep
	// open (at most Config.MaxOpen each), as of each worker's last job.
	OpenHandles int
	// Workers is the worker pool's state.
	Workers PoolStats
	// InlineLoads is how many inline loads are in flight (at most
	// Config.MaxInlineLoads), waiting for a worker or loading.
	InlineLoads int
}

// Stats returns the Store's current size and its workers' state.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	n := len(s.datasets)
	s.mu.Unlock()
	return Stats{Datasets: n, OpenHandles: s.pool.openHandles(), Workers: s.pool.stats(), InlineLoads: len(s.inline)}
}

func (s *Store) newEntry(meta metadata) *entry {
	return &entry{adding: make(chan struct{}, 1), cur: s.newGeneration(meta)}
}

func (s *Store) newGeneration(meta metadata) *generation {
	return &generation{meta: meta, path: s.dbPath(meta.Dataset.ID, meta.Generation)}
}

// List returns every dataset, oldest first (by CreatedAt, then ID),
// without their tables (TableCount says how many).
func (s *Store) List(ctx context.Context) ([]Dataset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	out := make([]Dataset, 0, len(s.datasets))
	for _, e := range s.datasets {
		d := e.cur.meta.Dataset
		d.Columns = slices.Clone(d.Columns)
		d.Tables = nil
		out = append(out, d)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Dataset) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Get returns one dataset with its tables and their profiles; an unknown
// id gives an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Dataset, error) {
	m, err := s.metadata(ctx, id)
	return m.dataset(), err
}

// Profile returns the profile of a dataset of one table, computed at
// upload; it costs no query. A dataset of several tables has an empty
// profile here: each table's is in Get's Tables.
func (s *Store) Profile(ctx context.Context, id string) (Profile, error) {
	m, err := s.metadata(ctx, id)
	if err != nil {
		return Profile{}, err
	}
	return m.profile(), nil
}

func (s *Store) metadata(ctx context.Context, id string) (metadata, error) {
	if err := ctx.Err(); err != nil {
		return metadata{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.datasets[id]
	if !ok {
		return metadata{}, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	return e.cur.meta, nil
}

// Delete removes a dataset. It is unknown (ErrNotFound) as soon as Delete
// returns; queries already running on it finish, and its database file is
// removed when the last Session on it closes.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	e, ok := s.datasets[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	delete(s.datasets, id)
	e.deleted = true
	g := e.cur
	g.retired = true
	idle := g.refs == 0
	s.mu.Unlock()

	// Metadata first: from here on the dataset does not exist, even after a
	// crash (Open removes the orphaned database).
	if err := os.Remove(s.metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dataset: delete %s: %w", id, err)
	}
	syncDir(s.cfg.Dir)
	s.log.Info("dataset: deleted", "id", id)
	if idle {
		return removeDBFiles(g.path)
	}
	return nil
}

// removeDBFiles removes a database file and what DuckDB keeps beside it.
// A worker that still holds the file open notices on its next job and
// closes it.
func removeDBFiles(path string) error {
	var err error
	for _, p := range []string{path, path + ".wal", path + ".tmp"} {
		if rmErr := os.RemoveAll(p); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	return err
}

// acquire takes a reference to a dataset's current generation for a
// Session.
func (s *Store) acquire(id string) (*generation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e, ok := s.datasets[id]
	if !ok {
		return nil, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	e.cur.refs++
	return e.cur, nil
}

// release drops a Session's reference and removes the generation's file
// once it is retired (replaced or deleted) and unused.
func (s *Store) release(g *generation) error {
	s.mu.Lock()
	g.refs--
	remove := g.refs == 0 && g.retired
	s.mu.Unlock()
	if remove {
		return removeDBFiles(g.path)
	}
	return nil
}

// syncDir makes renames and removals in dir durable. Errors are ignored:
// not every file system supports syncing a directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
