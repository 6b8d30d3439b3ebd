package testserver

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDBServer is a running DynamoDB-compatible server (dynalite or moto).
type DynamoDBServer struct {
	// URL is the endpoint, "http://127.0.0.1:<port>".
	URL string
}

// Client returns a DynamoDB client for the server, with static test
// credentials and region us-east-1.
func (s *DynamoDBServer) Client() *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		BaseEndpoint: aws.String(s.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("runnel", "runnel", ""),
	})
}

// Scan reads a whole table; a table that does not exist (yet) reads as
// empty. Any other error fails the test.
func (s *DynamoDBServer) Scan(t testing.TB, table string) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(s.Client(), &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			t.Fatalf("testserver: scanning table %s: %v", table, err)
		}
		items = append(items, out.Items...)
	}
	return items
}

// dynaliteCLI finds dynalite's cli.js: $RUNNEL_DYNALITE (the cli.js, the
// package directory, or an npm prefix holding it), else the npm prefix
// <user cache dir>/runnel/dynalite that .ci/run installs into.
func dynaliteCLI() (string, bool) {
	var roots []string
	if p := os.Getenv("RUNNEL_DYNALITE"); p != "" {
		roots = append(roots, p)
	}
	if d, err := os.UserCacheDir(); err == nil {
		roots = append(roots, filepath.Join(d, "runnel", "dynalite"))
	}
	for _, r := range roots {
		for _, c := range []string{r, filepath.Join(r, "cli.js"), filepath.Join(r, "node_modules", "dynalite", "cli.js")} {
			if st, err := os.Stat(c); err == nil && !st.IsDir() {
				return c, true
			}
		}
	}
	return "", false
}

// DynamoDB runs dynalite on a free 127.0.0.1 port (in memory, tables
// created and deleted at once) until the test ends. It skips the test
// when node or dynalite is missing (install with
// `npm install --prefix ~/.cache/runnel/dynalite dynalite`, or set
// RUNNEL_DYNALITE), and fails it instead when RUNNEL_INTEGRATION=required.
func DynamoDB(t testing.TB) *DynamoDBServer {
	t.Helper()
	node, err := exec.LookPath("node")
	cli, ok := dynaliteCLI()
	if err != nil || !ok {
		msg := "node and dynalite are needed: npm install --prefix ~/.cache/runnel/dynalite dynalite, or set RUNNEL_DYNALITE"
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// dynalite takes no port 0: a free port is chosen here, and another
	// one if some other process took it before dynalite could.
	var lastErr error
	for range 3 {
		port, err := loopbackPort()
		if err != nil {
			t.Fatalf("testserver: finding a free port: %v", err)
		}
		cmd := exec.Command(node, "-e", dynaliteGuard, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
		out := newReadyOutput(dynaliteReady)
		exited, err := startReady(cmd, out, 20*time.Second)
		if err != nil {
			lastErr = err
			continue
		}
		killAtCleanup(t, "dynalite", cmd, exited, out)
		return &DynamoDBServer{URL: "http://" + out.Match()[1]}
	}
	t.Fatalf("testserver: dynalite: %v", lastErr)
	return nil
}

// dynaliteReady is the line dynalite prints once it listens.
var dynaliteReady = regexp.MustCompile(`listening at: http://(127\.0\.0\.1:\d+)`)

// dynaliteGuard runs dynalite's cli.js (the first argument after the
// script) with the rest as its arguments, and keeps it alive when a client
// aborts a request mid-body: dynalite rethrows that socket error from its
// request handler, which would end the whole process, while a real
// DynamoDB only drops the aborted request. Clients abort requests whose
// context ends (a lease renewal bounded by the lease's validity, a worker
// stopping), so without the guard one such abort fails every later request
// of the test with "connection refused". Any other uncaught error still
// ends dynalite with its stack.
const dynaliteGuard = `
process.on('uncaughtException', function (err) {
  if (err && (err.code === 'ECONNRESET' || err.code === 'ECONNABORTED' || err.message === 'aborted')) {
    console.error('dynalite: a client aborted a request (' + err.message + '); it is dropped')
    return
  }
  console.error(err && err.stack || err)
  process.exit(1)
})
require(process.argv[1])
`

// loopbackPort returns a port that was free on 127.0.0.1 a moment ago.
func loopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
