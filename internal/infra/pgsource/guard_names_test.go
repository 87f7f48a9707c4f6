package pgsource

import (
	"testing"
)

// The cap on a protocol message leaves room for plans and the catalog
// whatever the result cap, and grows with it.
func TestMaxMessageBodyLenShouldBeTwiceTheResultCapAtLeast8MiB(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cap  int64
		want int
	}{{1000, 8 << 20}, {1 << 20, 8 << 20}, {16 << 20, 32 << 20}, {1 << 40, 1<<31 - 1}} {
		if got := maxMessageBodyLen(Config{MaxResultBytes: tc.cap}); got != tc.want {
			t.Errorf("maxMessageBodyLen(%d) = %d, want %d", tc.cap, got, tc.want)
		}
	}
}
