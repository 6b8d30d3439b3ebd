// Command runnel serves the Amazon Kinesis Data Streams API with durable
// local storage and talks to any Kinesis endpoint.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/runnel-dev/runnel/internal/cli"
)

func main() {
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
