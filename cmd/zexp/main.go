package main

import (
	"database/sql"
	"fmt"
	"os"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	db, _ := sql.Open("duckdb", "")
	for _, q := range os.Args[1:] {
		var s string
		err := db.QueryRow("SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", q).Scan(&s)
		fmt.Println(s, err)
	}
}
