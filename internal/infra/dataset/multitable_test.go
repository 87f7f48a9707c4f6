package dataset_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/internal/infra/dataset"
)

const (
	customersCSV = "customer_id,name\n1,Ann\n2,Bob\n3,Cy\n"
	ordersCSV    = "order_id,customer_id,amount\n10,1,25\n11,1,15\n12,2,40\n13,3,5\n"
	salesCSV     = "month,customer_id,total\n2024-01,1,100\n2024-02,2,50\n"
)

// file is one file of an upload.
type file struct{ name, content string }

// upload sends files as one upload of a new dataset.
func upload(ctx context.Context, s *dataset.Store, files ...file) (dataset.Dataset, error) {
	u, err := s.NewUpload(ctx)
	if err != nil {
		return dataset.Dataset{}, err
	}
	defer u.Close()
	for _, f := range files {
		if err := u.Add(ctx, f.name, strings.NewReader(f.content)); err != nil {
			return dataset.Dataset{}, err
		}
	}
	return u.Commit(ctx, "")
}

// addTables adds files to dataset id as one upload.
func addTables(ctx context.Context, s *dataset.Store, id string, files ...file) (dataset.Dataset, error) {
	u, err := s.NewTablesUpload(ctx, id)
	if err != nil {
		return dataset.Dataset{}, err
	}
	defer u.Close()
	for _, f := range files {
		if err := u.Add(ctx, f.name, strings.NewReader(f.content)); err != nil {
			return dataset.Dataset{}, err
		}
	}
	return u.Commit(ctx, "")
}

func tableNames(ts []dataset.Table) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func TestTableNameShouldFollowTheNamingRule(t *testing.T) {
	t.Parallel()
	tests := []struct{ file, want string }{
		{"customers.csv", "customers"},
		{"Orders.CSV", "orders"},
		{"2024 Sales.csv", "t_2024_sales"},
		{"my-data.v2.parquet", "my_data_v2"},
		{"Ventes été.xlsx", "ventes__t_"},
		{"../../etc/passwd.csv", "passwd"},
		{`C:\exports\Q1 (final).tsv`, "q1__final_"},
		{"/.secret.csv", "secret"},
		{"noext", "noext"},
		{"_x.csv", "_x"},
		{"9.csv", "t_9"},
		{"order.csv", "order"},
		{"../.csv", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := dataset.TableName(tt.file); got != tt.want {
			t.Errorf("TableName(%q) = %q, want %q", tt.file, got, tt.want)
		}
	}
}

// Several files make one dataset of several tables, each profiled, in one
// database file; the top level sums them up.
func TestUploadShouldMakeOneTablePerFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds, err := upload(ctx, s, file{"customers.csv", customersCSV}, file{"orders.csv", ordersCSV}, file{"2024 Sales.csv", salesCSV})
	if err != nil {
		t.Fatal(err)
	}
	if got := tableNames(ds.Tables); !slices.Equal(got, []string{"customers", "orders", "t_2024_sales"}) {
		t.Fatalf("tables = %v", got)
	}
	if ds.TableCount != 3 || ds.Rows != 9 || len(ds.Columns) != 0 || ds.Format != "csv" || ds.Name != "customers" ||
		ds.SizeBytes != int64(len(customersCSV)+len(ordersCSV)+len(salesCSV)) {
		t.Fatalf("dataset = %+v", ds)
	}
	o := ds.Tables[1]
	if o.File != "orders.csv" || o.Rows != 4 || o.Profile.RowCount != 4 || len(o.Columns) != 3 || o.Columns[1] != (dataset.Column{Name: "customer_id", Type: "BIGINT"}) {
		t.Fatalf("orders = %+v", o)
	}
	if got, _ := s.Get(ctx, ds.ID); !reflect.DeepEqual(got, ds) {
		t.Fatalf("Get = %+v\nwant %+v", got, ds)
	}
	list, _ := s.List(ctx)
	if len(list) != 1 || list[0].TableCount != 3 || list[0].Tables != nil {
		t.Fatalf("list = %+v", list)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{ds.ID + ".duckdb", ds.ID + ".json"}) {
		t.Fatalf("files = %v", names)
	}
	q := mustSession(t, s, ds.ID)
	res := mustQuery(t, q, `SELECT c.name, sum(o.amount) AS spent FROM customers c JOIN orders o USING (customer_id) GROUP BY c.name ORDER BY spent DESC, c.name`)
	if fmt.Sprint(res.Rows) != "[[Ann 40] [Bob 40] [Cy 5]]" {
		t.Fatalf("join = %v", res.Rows)
	}
	rows, err := q.Rows(ctx, "orders", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows.Rows) != "[[11 1 15] [12 2 40]]" {
		t.Fatalf("rows = %v", rows.Rows)
	}
	if _, err := q.Rows(ctx, "nope", 2, 0); kindOf(err) != dataset.KindInvalid {
		t.Fatalf("rows of an unknown table: %v", err)
	}
	if q.Schema() != nil {
		t.Fatalf("Schema of several tables = %v", q.Schema())
	}
}

// The guard allows exactly the session's tables, and data only when
// there is one.
func TestGuardShouldAllowExactlyTheDatasetsTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustOpen(t, dataset.Config{})
	multi, err := upload(ctx, s, file{"customers.csv", customersCSV}, file{"orders.csv", ordersCSV})
	if err != nil {
		t.Fatal(err)
	}
	single := mustCreate(t, s, "Sales Q1.csv", []byte(salesCSV))
	other := mustCreate(t, s, "other.csv", []byte("x\n1\n"))
	if tableNames(single.Tables)[0] != "sales_q1" {
		t.Fatalf("single = %+v", single.Tables)
	}
	tests := []struct {
		id      string
		sql     string
		refused string // "" when allowed
	}{
		{multi.ID, "SELECT count(*) FROM customers", ""},
		{multi.ID, "SELECT count(*) FROM ORDERS o JOIN main.customers USING (customer_id)", ""},
		{multi.ID, `WITH data AS (SELECT 1 AS x) SELECT * FROM data`, ""},
		{multi.ID, "SELECT * FROM data", "the table data is not allowed: only customers, orders can be read"},
		{multi.ID, "SELECT * FROM other", "the table other is not allowed: only customers, orders can be read"},
		{multi.ID, "SELECT * FROM customers, sales_q1", "the table sales_q1 is not allowed: only customers, orders can be read"},
		{single.ID, "SELECT count(*) FROM data", ""},
		{single.ID, "SELECT count(*) FROM sales_q1", ""},
		{single.ID, "SELECT * FROM customers", "the table customers is not allowed: only sales_q1, data can be read"},
		{other.ID, "SELECT * FROM orders", "the table orders is not allowed: only other, data can be read"},
	}
	for _, tt := range tests {
		q := mustSession(t, s, tt.id)
		_, err := q.Query(ctx, tt.sql)
		verr := q.Validate(ctx, tt.sql)
		if tt.refused == "" {
			if err != nil || verr != nil {
				t.Errorf("%s: Query %v, Validate %v", tt.sql, err, verr)
			}
			continue
		}
		for what, err := range map[string]error{"Query": err, "Validate": verr} {
			if e := requireKind(t, err, dataset.KindUnsafeSQL); e.Message != tt.refused {
				t.Errorf("%s %q: message %q, want %q", what, tt.sql, e.Message, tt.refused)
			}
		}
	}
}

// Names that collide or are reserved are refused, naming the file, and
// nothing is created.
func TestUploadShouldRefuseBadTableNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	tests := []struct {
		name  string
		files []file
		want  string
	}{
		{"collision", []file{{"2024 sales.csv", salesCSV}, {"2024_Sales.csv", salesCSV}},
			`file "2024_Sales.csv": its table name "t_2024_sales" is the same as that of file "2024 sales.csv"`},
		{"duckdb prefix", []file{{"duckdb_tables.csv", salesCSV}},
			`file "duckdb_tables.csv": the table name "duckdb_tables" is reserved: names starting with duckdb_ belong to DuckDB's system catalog; rename the file`},
		{"pg prefix", []file{{"a.csv", salesCSV}, {"pg_stats.csv", salesCSV}},
			`file "pg_stats.csv": the table name "pg_stats" is reserved: names starting with pg_ belong to DuckDB's system catalog; rename the file`},
		{"sqlite prefix", []file{{"sqlite_master.csv", salesCSV}},
			`file "sqlite_master.csv": the table name "sqlite_master" is reserved: names starting with sqlite_ belong to DuckDB's system catalog; rename the file`},
		{"information_schema", []file{{"information_schema.csv", salesCSV}},
			`file "information_schema.csv": the table name "information_schema" is reserved: it names DuckDB's system catalog; rename the file`},
		{"data among several", []file{{"data.csv", salesCSV}, {"b.csv", salesCSV}},
			`file "data.csv": the table name "data" is reserved: it is the name of a dataset's only table; rename the file`},
		{"data second", []file{{"a.csv", salesCSV}, {"Data.csv", salesCSV}},
			`file "Data.csv": the table name "data" is reserved: it is the name of a dataset's only table; rename the file`},
		{"nameless among several", []file{{"a.csv", salesCSV}, {".csv", salesCSV}},
			`file ".csv": no table name can be made from the file name; rename the file (letters, digits or _)`},
	}
	for _, tt := range tests {
		_, err := upload(ctx, s, tt.files...)
		if e := requireKind(t, err, dataset.KindInvalid); e.Message != tt.want {
			t.Errorf("%s: message %q, want %q", tt.name, e.Message, tt.want)
		}
	}
	requireEmptyDir(t, dir)
	// data alone is the dataset's only table, and a nameless single file
	// becomes data.
	for _, f := range []string{"data.csv", "../.csv"} {
		ds, err := upload(ctx, s, file{f, salesCSV})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := tableNames(ds.Tables); !slices.Equal(got, []string{"data"}) {
			t.Errorf("%s: tables %v", f, got)
		}
	}
}

// One bad file fails the whole upload: nothing is listed, nothing is left.
func TestUploadShouldBeAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir, MaxUploadBytes: 200})
	_, err := upload(ctx, s, file{"customers.csv", customersCSV}, file{"orders.json", `[{"a":1},`}, file{"c.csv", salesCSV})
	if e := requireKind(t, err, dataset.KindInvalid); !strings.HasPrefix(e.Message, `file "orders.json": invalid JSON`) {
		t.Fatalf("message %q", e.Message)
	}
	requireEmptyDir(t, dir)
	// The limit counts every file together.
	_, err = upload(ctx, s, file{"customers.csv", customersCSV}, file{"orders.csv", ordersCSV}, file{"more.csv", ordersCSV + ordersCSV})
	if e := requireKind(t, err, dataset.KindTooLarge); e.Message != `file "more.csv": the files together are larger than the limit of 200 bytes` {
		t.Fatalf("message %q", e.Message)
	}
	requireEmptyDir(t, dir)
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("listed: %v", list)
	}
}

// Tables added later are queryable by new Sessions; a Session opened
// before keeps seeing exactly the tables it started with, data alias
// included, until it closes; then the old database file goes.
func TestAddTablesShouldSwapGenerationsAtomically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds := mustCreate(t, s, "customers.csv", []byte(customersCSV))
	before := mustSession(t, s, ds.ID)

	got, err := addTables(ctx, s, ds.ID, file{"orders.csv", ordersCSV}, file{"2024 Sales.csv", salesCSV})
	if err != nil {
		t.Fatal(err)
	}
	if names := tableNames(got.Tables); !slices.Equal(names, []string{"customers", "orders", "t_2024_sales"}) || got.TableCount != 3 || got.CreatedAt != ds.CreatedAt {
		t.Fatalf("after adding: %+v", got)
	}
	after := mustSession(t, s, ds.ID)
	if n := mustQuery(t, after, "SELECT count(*) FROM orders JOIN customers USING (customer_id)").Rows[0][0]; n != int64(4) {
		t.Fatalf("join count = %v", n)
	}
	if _, err := after.Query(ctx, "SELECT * FROM data"); kindOf(err) != dataset.KindUnsafeSQL {
		t.Fatalf("data after a second table: %v", err)
	}
	// The old Session: its tables, its alias, its file.
	if n := mustCount(t, before); n != 3 {
		t.Fatalf("old session count = %d", n)
	}
	if _, err := before.Query(ctx, "SELECT * FROM orders"); kindOf(err) != dataset.KindUnsafeSQL {
		t.Fatalf("old session reads orders: %v", err)
	}
	for q, want := range map[*dataset.Session]int64{before: 1, after: 3} {
		res, err := q.QueryUnguarded(ctx, "SELECT count(*) FROM duckdb_tables()")
		if err != nil || res.Rows[0][0] != want {
			t.Fatalf("tables in the file = %v (%v), want %d", res.Rows, err, want)
		}
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{ds.ID + ".duckdb", ds.ID + ".g1.duckdb", ds.ID + ".json"}) {
		t.Fatalf("files while the old session is open = %v", names)
	}
	_ = before.Close()
	if names := dirNames(t, dir); !slices.Equal(names, []string{ds.ID + ".g1.duckdb", ds.ID + ".json"}) {
		t.Fatalf("files after = %v", names)
	}

	// Collisions with existing tables, and data, are refused; a bad file
	// leaves the dataset as it was.
	for _, tt := range []struct {
		files []file
		kind  dataset.Kind
		want  string
	}{
		{[]file{{"Orders.csv", ordersCSV}}, dataset.KindInvalid, `file "Orders.csv": the dataset already has a table named "orders"`},
		{[]file{{"data.csv", ordersCSV}}, dataset.KindInvalid, `file "data.csv": the table name "data" is reserved: it is the name of a dataset's only table; rename the file`},
		{[]file{{"x.csv", ordersCSV}, {"y.json", `[{"a":`}}, dataset.KindInvalid, `file "y.json": invalid JSON`},
	} {
		_, err := addTables(ctx, s, ds.ID, tt.files...)
		if e := requireKind(t, err, tt.kind); !strings.HasPrefix(e.Message, tt.want) {
			t.Errorf("message %q, want prefix %q", e.Message, tt.want)
		}
	}
	if cur, _ := s.Get(ctx, ds.ID); !reflect.DeepEqual(cur, got) {
		t.Fatalf("after failed additions: %+v", cur)
	}
	if _, err := addTables(ctx, s, "ds_0000000000000000", file{"x.csv", ordersCSV}); !errors.Is(err, dataset.ErrNotFound) {
		t.Fatalf("unknown dataset: %v", err)
	}
	after.Close()
	if names := dirNames(t, dir); !slices.Equal(names, []string{ds.ID + ".g1.duckdb", ds.ID + ".json"}) {
		t.Fatalf("files after failed additions = %v", names)
	}

	// A restart finds the current generation.
	s2 := mustOpen(t, dataset.Config{Dir: dir})
	again, err := s2.Get(ctx, ds.ID)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("after restart: %+v %v", again, err)
	}
	if n := mustQuery(t, mustSession(t, s2, ds.ID), "SELECT count(*) FROM t_2024_sales").Rows[0][0]; n != int64(2) {
		t.Fatalf("count after restart = %v", n)
	}
}

// Additions to one dataset run one at a time, each building on the last:
// concurrent additions of different tables all land, and readers see
// whole generations only.
func TestConcurrentAddTablesShouldAllLand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds := mustCreate(t, s, "base.csv", []byte("x\n1\n"))
	const adders = 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*adders)
	stop := make(chan struct{})
	for i := range adders {
		wg.Go(func() {
			if _, err := addTables(ctx, s, ds.ID, file{fmt.Sprintf("t%d.csv", i), "y\n1\n2\n"}); err != nil {
				errs <- err
			}
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			q, err := s.Session(ctx, ds.ID)
			if err != nil {
				errs <- err
				return
			}
			// The file holds exactly the tables the session was given.
			res, err := q.QueryUnguarded(ctx, "SELECT count(*) FROM duckdb_tables()")
			if err == nil && res.Rows[0][0] != int64(len(q.Tables())) {
				err = fmt.Errorf("file has %v tables, session %d", res.Rows[0][0], len(q.Tables()))
			}
			_ = q.Close()
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _ := s.Get(ctx, ds.ID)
	names := tableNames(got.Tables)
	slices.Sort(names)
	if !slices.Equal(names, []string{"base", "t0", "t1", "t2", "t3"}) {
		t.Fatalf("tables = %v", names)
	}
	if files := dirNames(t, dir); !slices.Equal(files, []string{fmt.Sprintf("%s.g%d.duckdb", ds.ID, adders), ds.ID + ".json"}) {
		t.Fatalf("files = %v", files)
	}
}

// Deleting a dataset while tables are being added to it wins: the
// addition fails and nothing is left.
func TestDeleteShouldWinOverAddTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds := mustCreate(t, s, "base.csv", []byte("x\n1\n"))
	u, err := s.NewTablesUpload(ctx, ds.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Add(ctx, "more.csv", strings.NewReader("y\n2\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, ds.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, ""); !errors.Is(err, dataset.ErrNotFound) {
		t.Fatalf("Commit after Delete: %v", err)
	}
	u.Close()
	requireEmptyDir(t, dir)
}

// A dataset stored before datasets had several tables (metadata version
// 1, one table named data) still loads, and keeps data as a real table
// when tables are added.
func TestVersion1DatasetShouldLoadAndGrow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const id = "ds_00000000000000c1"
	db, err := sql.Open("duckdb", filepath.Join(dir, id+".duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE data AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) t(customer_id, tag); CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	meta := `{"version": 1, "dataset": {"id": "` + id + `", "name": "old", "format": "csv", "rows": 2,
		"columns": [{"name": "customer_id", "type": "INTEGER"}, {"name": "tag", "type": "VARCHAR"}],
		"size_bytes": 20, "created_at": "2025-01-01T00:00:00Z"},
		"profile": {"row_count": 2, "columns": []}}`
	if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(meta), 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dataset.Config{Dir: dir})
	ds, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ds.TableCount != 1 || len(ds.Tables) != 1 || ds.Tables[0].Name != "data" || ds.Tables[0].Rows != 2 || ds.Rows != 2 || len(ds.Columns) != 2 {
		t.Fatalf("v1 dataset = %+v", ds)
	}
	if n := mustCount(t, mustSession(t, s, id)); n != 2 {
		t.Fatalf("count = %d", n)
	}
	got, err := addTables(ctx, s, id, file{"customers.csv", customersCSV})
	if err != nil {
		t.Fatal(err)
	}
	if names := tableNames(got.Tables); !slices.Equal(names, []string{"data", "customers"}) {
		t.Fatalf("tables = %v", names)
	}
	res := mustQuery(t, mustSession(t, s, id), "SELECT tag, name FROM data JOIN customers USING (customer_id) ORDER BY tag")
	if fmt.Sprint(res.Rows) != "[[a Ann] [b Bob]]" {
		t.Fatalf("join = %v", res.Rows)
	}
}
