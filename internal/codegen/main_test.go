package codegen_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/nexus/nexus/internal/infra/dataset"
)

func TestMain(m *testing.M) {
	// The SQL review runs in dataset.Store workers: this test binary,
	// started with dataset.WorkerArg.
	if dataset.IsWorker(os.Args) {
		os.Exit(dataset.RunWorker(os.Args[2:]))
	}
	goleak.VerifyTestMain(m)
}
