package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/logging"
)

func decodeLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not a JSON line: %v\n%s", err, line)
	}
	return m
}

func TestNewShouldWriteOneJSONLinePerRecordWithOneTime(t *testing.T) {
	// Given a logger at info
	var out bytes.Buffer
	log := logging.New(&out, slog.LevelInfo)
	before := time.Now().UTC()

	// When it logs an access line, a debug line and a warning
	log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", "abc"), slog.Int("status", 200), slog.Float64("duration_ms", 0.25))
	log.Debug("hidden")
	log.Warn("careful", slog.Any("error", errors.New("boom")), slog.Bool("forced", true))

	// Then there are two lines, each with one RFC 3339 UTC time in
	// nanoseconds, its level, message and fields
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		if n := strings.Count(l, `"time":`); n != 1 {
			t.Fatalf("%d time keys in %s", n, l)
		}
	}
	first := decodeLine(t, lines[0])
	at, err := time.Parse(time.RFC3339Nano, first["time"].(string))
	if err != nil || at.Location() != time.UTC || at.Before(before.Truncate(time.Microsecond)) {
		t.Fatalf("time %v: %v", first["time"], err)
	}
	if first["level"] != "info" || first["message"] != "request" || first["request_id"] != "abc" ||
		first["status"] != 200.0 || first["duration_ms"] != 0.25 {
		t.Fatalf("access line: %v", first)
	}
	// slog-zerolog writes an error as an object: {"error": "boom", ...}.
	second := decodeLine(t, lines[1])
	errObj, _ := second["error"].(map[string]any)
	if second["level"] != "warn" || errObj["error"] != "boom" || second["forced"] != true {
		t.Fatalf("warning: %v", second)
	}
}

func TestNewShouldNestGroupsAsObjects(t *testing.T) {
	// Given a logger
	var out bytes.Buffer
	log := logging.New(&out, slog.LevelInfo)

	// When a record and the logger carry groups, nested and empty ones
	log.With(slog.Group("build", slog.String("version", "dev"))).Info("effective config",
		slog.String("path", "/etc/nexus.json"),
		slog.Group("datasets", slog.Int("max_rows", 1000),
			slog.Group("limits", slog.Duration("timeout", 2*time.Second))),
		slog.Group("empty"),
		slog.Group("", slog.String("inlined", "yes")))

	// Then each named group is a JSON object, an empty one is left out and
	// an unnamed one is inlined
	m := decodeLine(t, strings.TrimSpace(out.String()))
	ds, _ := m["datasets"].(map[string]any)
	limits, _ := ds["limits"].(map[string]any)
	build, _ := m["build"].(map[string]any)
	if m["path"] != "/etc/nexus.json" || ds["max_rows"] != 1000.0 || limits["timeout"] == nil ||
		build["version"] != "dev" || m["inlined"] != "yes" {
		t.Fatalf("line: %v", m)
	}
	if _, ok := m["empty"]; ok {
		t.Fatalf("empty group written: %v", m)
	}
}

func TestNewShouldHonourAnySlogLevel(t *testing.T) {
	// Given a logger at warn+2, between zerolog's warn and error
	var out bytes.Buffer
	log := logging.New(&out, slog.LevelWarn+2)

	// When it logs at warn and at error
	log.Warn("dropped")
	log.Error("kept")

	// Then only the error is written
	if s := out.String(); strings.Contains(s, "dropped") || !strings.Contains(s, "kept") {
		t.Fatalf("output: %s", s)
	}
}

// BenchmarkAccessLine is one access-log line as the middleware writes it,
// through the logger alone (to io.Discard) and through the Sink.
func BenchmarkAccessLine(b *testing.B) {
	line := func(log *slog.Logger) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("request_id", "0123456789abcdef01234567"),
			slog.String("method", "POST"),
			slog.String("route", "/generate"),
			slog.Int("status", 200),
			slog.Float64("duration_ms", 0.512))
	}
	b.Run("logger", func(b *testing.B) {
		log := logging.New(io.Discard, slog.LevelInfo)
		b.ReportAllocs()
		for b.Loop() {
			line(log)
		}
	})
	b.Run("logger+sink", func(b *testing.B) {
		s := logging.NewSink(io.Discard, 0, 0)
		defer s.Close()
		log := logging.New(s, slog.LevelInfo)
		b.ReportAllocs()
		for b.Loop() {
			line(log)
		}
	})
}
