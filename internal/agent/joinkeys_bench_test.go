package agent

import (
	"fmt"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

// BenchmarkJoinKeys: the largest dataset the limits allow (64 tables of
// 1,024 columns, no shared names) once pairing every column of every pair
// took 14.5 s of CPU per /analyze; the index by name makes it one pass.
//
//	go test -run x -bench JoinKeys ./internal/agent
func BenchmarkJoinKeys(b *testing.B) {
	tables := make([]dataset.Table, 64)
	for i := range tables {
		cols := make([]dataset.Column, 1024)
		for k := range cols {
			cols[k] = dataset.Column{Name: fmt.Sprintf("t%02d_column_%04d", i, k), Type: "BIGINT"}
		}
		tables[i] = dataset.Table{Name: fmt.Sprintf("t%02d", i), Columns: cols}
	}
	for b.Loop() {
		_ = joinKeys(tables)
	}
}
