package api

import (
	"testing"

	"github.com/nexus/nexus/internal/infra/circuit"
)

// overallHealth is exercised end to end in test/; the all-open case needs
// every circuit open, and two of the four have no endpoint yet.
func TestOverallHealth(t *testing.T) {
	t.Parallel()
	st := func(states ...string) []circuit.CircuitStatus {
		out := make([]circuit.CircuitStatus, len(states))
		for i, s := range states {
			out[i].State = s
		}
		return out
	}
	cases := []struct {
		name   string
		states []circuit.CircuitStatus
		want   string
	}{
		{"all closed", st("closed", "closed", "closed", "closed"), "healthy"},
		{"all disabled", st("disabled", "disabled"), "healthy"},
		{"all open", st("open", "open", "open", "open"), "unhealthy"},
		{"one open", st("open", "closed", "closed", "closed"), "degraded"},
		{"one half-open", st("half-open", "closed"), "degraded"},
		{"open and half-open", st("open", "half-open"), "degraded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := overallHealth(tc.states); got != tc.want {
				t.Fatalf("overallHealth = %q, want %q", got, tc.want)
			}
		})
	}
}
