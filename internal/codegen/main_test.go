package codegen_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestMain(m *testing.M) {
	// The SQL review runs in dataset.Store workers: this test binary,
	// started with dataset.WorkerArg.
	dataset.RunIfWorker()
	goleak.VerifyTestMain(m)
}
