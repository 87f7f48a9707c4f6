package config_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/config"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One save is one reload; a rename into place counts; other files in the
// directory (a log file) never trigger one.
func TestWatchShouldReactOnlyToTheConfigFileDebounced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "cot_review_config.json")
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	if err := config.Watch(ctx, path, 50*time.Millisecond, slog.New(slog.DiscardHandler), func() { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	// Several writes in one save.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_, _ = f.WriteString(`{"a":1}`)
	}
	f.Close()
	waitFor(t, "one reload", func() bool { return calls.Load() == 1 })

	// A log file in the same directory.
	for i := 0; i < 3; i++ {
		if err := os.WriteFile(filepath.Join(dir, "nexus.log"), []byte("line\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// An editor's replace: write aside, rename into place.
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(`{"b":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second reload", func() bool { return calls.Load() == 2 })
	time.Sleep(200 * time.Millisecond) // settle: nothing else may arrive
	if got := calls.Load(); got != 2 {
		t.Fatalf("reloads = %d, want 2", got)
	}
}
