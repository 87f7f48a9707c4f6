package agent_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/agent"
	"github.com/nexus/nexus/internal/infra/circuit"
	"github.com/nexus/nexus/internal/infra/dataset"
)

// shopTables is a dataset of three tables: customers and orders share
// customer_id (BIGINT in both), sales has it as INTEGER (compatible), and
// note shares a name with a type that is not.
func shopTables(r *rig) {
	col := func(name, typ string) dataset.Column { return dataset.Column{Name: name, Type: typ} }
	customers := []dataset.Column{col("customer_id", "BIGINT"), col("name", "VARCHAR"), col("note", "VARCHAR")}
	orders := []dataset.Column{col("order_id", "BIGINT"), col("customer_id", "BIGINT"), col("amount", "DOUBLE"), col("note", "DATE")}
	sales := []dataset.Column{col("Customer_ID", "INTEGER"), col("total", "DECIMAL(10,2)")}
	prof := func(rows int64) dataset.Profile {
		return dataset.Profile{RowCount: rows, Columns: []dataset.ColumnProfile{}}
	}
	r.table.multi = []dataset.Table{
		{Name: "customers", Rows: 3, Columns: customers, Profile: prof(3)},
		{Name: "orders", Rows: 4, Columns: orders, Profile: prof(4)},
		{Name: "t_2024_sales", Rows: 2, Columns: sales, Profile: prof(2)},
	}
	r.tables.stored["ds_shop"] = r.table
	r.table.samples = map[string]dataset.Result{
		"customers":    {Columns: customers, Rows: [][]any{{int64(1), "Ann", nil}}, RowCount: 1},
		"orders":       {Columns: orders, Rows: [][]any{{int64(10), int64(1), 25.5, "2024-01-01"}}, RowCount: 1},
		"t_2024_sales": {Columns: sales, Rows: [][]any{{int64(1), 100.0}}, RowCount: 1},
	}
}

const byCustomer = "SELECT c.name, sum(o.amount) AS spent FROM customers c JOIN orders o USING (customer_id) GROUP BY c.name"

// The planner of a dataset of several tables sees every table with its
// columns and sample, and the likely join keys; a failed query is sent
// back asking for SQL over the tables listed.
func TestAnalyzeShouldDescribeEveryTableAndTheJoinKeys(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	shopTables(r)
	r.planner.then(saysSQL("SELECT nope FROM customers"), saysSQL(byCustomer))
	res := dataset.Result{Columns: []dataset.Column{{Name: "name", Type: "VARCHAR"}, {Name: "spent", Type: "DOUBLE"}},
		Rows: [][]any{{"Ann", 40.0}}, RowCount: 1}
	r.table.script = []query{{err: sqlError(`Referenced column "nope" not found`)}, {res: res}}
	r.answerer.then(says("Ann spent 40."))

	ans := r.mustAnalyze(t, agent.Request{Query: "Who spent most?", DatasetID: "ds_shop"})

	if ans.Answer != "Ann spent 40." || ans.SQL != byCustomer {
		t.Fatalf("answer: %+v", ans)
	}
	first := r.planner.calls[0].Messages
	if sys := first[0].Content; !strings.Contains(sys, "The data is in the tables listed; use only those tables and their columns") ||
		strings.Contains(sys, "table named data") {
		t.Errorf("system prompt:\n%s", sys)
	}
	want := "The data has 3 tables: customers, orders, t_2024_sales.\n\n" +
		"Table `customers`: 3 rows, 3 columns.\nColumns:\n" +
		"- \"customer_id\" BIGINT\n- \"name\" VARCHAR\n- \"note\" VARCHAR\n" +
		"Sample rows:\ncustomer_id | name | note\n1 | Ann | NULL\n\n" +
		"Table `orders`: 4 rows, 4 columns.\nColumns:\n" +
		"- \"order_id\" BIGINT\n- \"customer_id\" BIGINT\n- \"amount\" DOUBLE\n- \"note\" DATE\n" +
		"Sample rows:\norder_id | customer_id | amount | note\n10 | 1 | 25.5 | 2024-01-01\n\n" +
		"Table `t_2024_sales`: 2 rows, 2 columns.\nColumns:\n" +
		"- \"Customer_ID\" INTEGER\n- \"total\" DECIMAL(10,2)\n" +
		"Sample rows:\nCustomer_ID | total\n1 | 100\n\n" +
		"Likely join keys (the same column name with a compatible type in two tables):\n" +
		"- customers.customer_id = orders.customer_id (BIGINT)\n" +
		"- customers.customer_id = t_2024_sales.\"Customer_ID\" (BIGINT, INTEGER)\n" +
		"- orders.customer_id = t_2024_sales.\"Customer_ID\" (BIGINT, INTEGER)\n" +
		"\nQuestion: Who spent most?"
	if got := first[1].Content; got != want {
		t.Errorf("plan prompt:\n%s\nwant:\n%s", got, want)
	}
	if retry := r.planner.lastMessage(t, 1); retry != "That query failed: Referenced column \"nope\" not found\n"+
		"Write one corrected DuckDB SELECT over the tables listed, in a ```sql block." {
		t.Errorf("retry prompt: %q", retry)
	}
}

// With no path to an answer, the error names the dataset, which can still
// be read without the LLM, and carries no single-table profile.
func TestAnalyzeOfSeveralTablesShouldBeUnavailableWithTheDatasetID(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	shopTables(r)
	r.planner.then(fails(circuitOpen("code_generator")))
	r.answerer.then(fails(circuitOpen("data_analyst")))

	_, err := r.analyze(t.Context(), agent.Request{Query: "Who spent most?", DatasetID: "ds_shop"})

	var ue *agent.UnavailableError
	var le *circuit.LLMError
	if !errors.As(err, &ue) || !errors.As(err, &le) || le.Circuit != "data_analyst" {
		t.Fatalf("err = %#v", err)
	}
	if ue.DatasetID != "ds_shop" || ue.Profile != nil {
		t.Fatalf("unavailable: %+v", ue)
	}
	if got := r.answerer.lastMessage(t, 0); !strings.HasPrefix(got, "The data has 3 tables: customers, orders, t_2024_sales.") {
		t.Errorf("profile prompt:\n%s", got)
	}
}
