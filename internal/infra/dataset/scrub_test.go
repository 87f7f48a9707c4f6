package dataset

// An internal test: the scrubber is unexported, and its two jobs (server
// paths, then the shared URL and token policy) are easiest seen side by side.

import "testing"

func TestScrubShouldHidePathsAndFollowTheRedactionPolicy(t *testing.T) {
	t.Parallel()
	sc := newScrubber("/srv/nexus/data")
	tests := []struct{ name, in, want string }{
		{"data dir", `could not open "/srv/nexus/data/ds_1.duckdb"`, `could not open "<path>"`},
		{"other absolute path", "no such file: /home/alice/x.csv", "no such file: <path>"},
		{"URL keeps scheme and host only", `read_csv("https://u:pw@h.example/srv/x.csv?sig=abc") failed`,
			`read_csv("https://h.example") failed`},
		{"key echoed in SQL", "near 'sk-abcdef123456'", "near '[REDACTED]'"},
		{"SQL left alone", `column "task-manager" not found; x/2 is fine`, `column "task-manager" not found; x/2 is fine`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sc.scrub(tt.in); got != tt.want {
				t.Fatalf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
