package testserver

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// duckdbQuery runs one query with DuckDB and prints its rows as JSON objects
// (values DuckDB has no JSON form for, such as timestamps, as text).
const duckdbQuery = `
import duckdb, json, sys
con = duckdb.connect()
for stmt in sys.argv[1:-1]:
    con.execute(stmt)
cur = con.execute(sys.argv[-1])
cols = [d[0] for d in cur.description]
print(json.dumps([dict(zip(cols, row)) for row in cur.fetchall()], default=str))
`

// DuckDB runs the statements, then the query, in an in-memory DuckDB (the
// duckdb Python package .ci/run installs into PyClients()) and returns the
// query's rows. Numbers come back as float64, timestamps as text. It skips
// the test when DuckDB is not installed, and fails it instead when
// RUNNEL_INTEGRATION=required.
func DuckDB(t testing.TB, query string, statements ...string) []map[string]any {
	t.Helper()
	python := filepath.Join(PyClients(), "bin", "python")
	if err := exec.Command(python, "-c", "import duckdb").Run(); err != nil {
		msg := "DuckDB is needed: ~/.cache/runnel/pyclients/bin/pip install duckdb (see .ci/run), or set RUNNEL_PYCLIENTS: " + err.Error()
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(python, append(append([]string{"-c", duckdbQuery}, statements...), query)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %s: %v\n%s", query, err, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb: reading the rows of %s: %v\n%s", query, err, out)
	}
	return rows
}
