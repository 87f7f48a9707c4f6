package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestConcurrentCreateQueryDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	keep := mustCreate(t, s, "keep.csv", seqCSV(500))

	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for w := range workers {
		// Readers of a dataset nobody deletes.
		wg.Go(func() {
			for range 10 {
				q, err := s.Session(ctx, keep.ID)
				if err != nil {
					report(err)
					return
				}
				res, err := q.Query(ctx, "SELECT sum(n) AS s FROM data")
				if err == nil && fmt.Sprint(res.Rows[0][0]) != "125250" {
					err = fmt.Errorf("sum: %v", res.Rows)
				}
				if cerr := q.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					report(err)
				}
			}
		})
		// Writers: create, query and delete their own datasets, while
		// another goroutine may race to delete the same one.
		wg.Go(func() {
			for i := range 5 {
				ds, err := s.Create(ctx, "", fmt.Sprintf("w%d-%d.csv", w, i), strings.NewReader(string(seqCSV(50))))
				if err != nil {
					report(err)
					return
				}
				q, err := s.Session(ctx, ds.ID)
				if err != nil {
					report(err)
					return
				}
				var inner sync.WaitGroup
				inner.Go(func() {
					if _, err := q.Query(ctx, "SELECT count(*) FROM data, range(2000)"); err != nil {
						report(fmt.Errorf("query during delete: %w", err))
					}
				})
				var deleted int
				var mu sync.Mutex
				for range 2 {
					inner.Go(func() {
						err := s.Delete(ctx, ds.ID)
						switch {
						case err == nil:
							mu.Lock()
							deleted++
							mu.Unlock()
						case !errors.Is(err, dataset.ErrNotFound):
							report(err)
						}
					})
				}
				inner.Wait()
				if deleted != 1 {
					report(fmt.Errorf("dataset deleted %d times", deleted))
				}
				if err := q.Close(); err != nil {
					report(err)
				}
			}
		})
	}
	// Inline sessions alongside.
	wg.Go(func() {
		for range 5 {
			q, err := s.OpenInline(ctx, "json", `[{"a":1},{"a":2}]`)
			if err != nil {
				report(err)
				return
			}
			if _, err := q.Query(ctx, "SELECT sum(a) FROM data"); err != nil {
				report(err)
			}
			_ = q.Close()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != keep.ID {
		t.Errorf("left listed: %v", list)
	}
	want := []string{keep.ID + ".duckdb", keep.ID + ".json"}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("files left: %v, want %v", got, want)
	}
}

func TestStoreCloseWithOpenSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := dataset.Open(dataset.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := mustCreate(t, s, "a.csv", seqCSV(3))
	q, err := s.Session(ctx, ds.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, err := range map[string]error{
		"Create":  func() error { _, err := s.Create(ctx, "", "b.csv", strings.NewReader("a\n1\n")); return err }(),
		"Session": func() error { _, err := s.Session(ctx, ds.ID); return err }(),
		"Delete":  s.Delete(ctx, ds.ID),
	} {
		if !errors.Is(err, dataset.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
	if err := q.Close(); err != nil {
		t.Errorf("Session.Close after Store.Close: %v", err)
	}
	// The dataset is still on disk for the next start.
	s2 := mustOpen(t, dataset.Config{Dir: dir})
	if _, err := s2.Get(ctx, ds.ID); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}
