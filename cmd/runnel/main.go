// Command runnel serves the Amazon Kinesis Data Streams API with durable
// local storage and talks to any Kinesis endpoint.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/cli"
)

// gcPercent is the garbage collector's target unless GOGC is set. Most of
// what runnel allocates is short-lived (request bodies, batches, answers),
// so collecting at 5× the live heap rather than Go's 2× spends far less
// CPU in the collector and its write barriers: on 2 cores a million-record
// `runnel bench` put 1.3× and read 1.4× as fast, for a larger peak heap.
// GOGC and GOMEMLIMIT set in the environment take precedence.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// go-redis prints its own connection-pool complaints on stderr (a
	// "redis: ... failed to dial" line when the demo looks for a Redis
	// that is not there); runnel reports the errors its calls return.
	redis.SetLogger(quietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// quietRedis discards go-redis's log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
