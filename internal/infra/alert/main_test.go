package alert_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind, which is
// how "Close leaves no goroutine behind" is checked.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
